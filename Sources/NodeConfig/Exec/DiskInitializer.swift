import Foundation
import Logging
import Platform

#if canImport(Glibc)
    import Glibc
#endif

/// `qluman-execd --init-disks`: the local disks of `/etc/qlustar/options.d/disk-config`,
/// initialised and mounted before the init.d scripts run (boot step 5). Only the devices the
/// configuration names are touched, and only when present: `format` makes a new file system at
/// every boot, `keep` makes one only on an empty disk and refuses a disk holding another kind.
/// Mountpoints hang below the root; `--dry-run` prints the actions instead.
public struct DiskInitializer {
    public struct Step: Sendable, Equatable, Codable {
        public var device: String
        /// "absent", "mkfs", "mount", "swapon", "refused"
        public var action: String
        public var detail: String
    }

    public let root: Root
    public var dryRun = false
    let log: Logger

    public init(root: Root, log: Logger) {
        self.root = root
        self.log = log
    }

    /// Carries out (or, dry, lists) what `config` says.
    /// - Returns: The steps, in order. A disk that cannot be done is reported and the others still are.
    public func run(_ config: DiskConfig) -> [Step] {
        var steps: [Step] = []
        for disk in config.disks {
            guard let st = try? FileSystem.status(disk.device), st.st_mode & S_IFMT == S_IFBLK else {
                steps.append(note(disk, "absent", "\(disk.device) is not present (or not a block device): skipped"))
                continue
            }
            let current = Self.fileSystem(of: disk.device)
            let mkfs: Bool
            switch disk.action {
            case .format: mkfs = true
            case .keep:
                if let current, current != disk.fsType.rawValue {
                    steps.append(
                        note(
                            disk, "refused",
                            "\(disk.device) holds \(current), the configuration says \(disk.fsType.rawValue): left alone"
                        ))
                    continue
                }
                mkfs = current == nil
            }
            if mkfs {
                let (program, arguments) = Self.mkfs(disk)
                guard perform(disk, "mkfs", program, arguments, &steps) else { continue }
            }
            if disk.fsType == .swap {
                _ = perform(disk, "swapon", "swapon", [disk.device], &steps)
            } else if let mountpoint = disk.mountpoint {
                let target = root.path(mountpoint)
                if !dryRun {
                    do { try FileSystem.makeDirectories(target) } catch {
                        steps.append(note(disk, "refused", error.message))
                        continue
                    }
                }
                _ = perform(
                    disk, "mount", "mount",
                    ["-t", disk.fsType.rawValue] + (disk.options.map { ["-o", $0] } ?? []) + [disk.device, target],
                    &steps)
            }
        }
        return steps
    }

    /// The file system on `device` (blkid), nil when it has none.
    static func fileSystem(of device: String) -> String? {
        let program = Subprocess.locate(ConfigureRun.searchPath("blkid"))
        guard let out = try? Subprocess.run(program, ["-o", "value", "-s", "TYPE", device], step: "probe \(device)")
        else { return nil }
        let type = out.trimmingCharacters(in: .whitespacesAndNewlines)
        return type.isEmpty ? nil : type
    }

    static func mkfs(_ disk: DiskConfig.Disk) -> (String, [String]) {
        switch disk.fsType {
        case .ext4: ("mkfs.ext4", ["-F", "-q", disk.device])
        case .xfs: ("mkfs.xfs", ["-f", "-q", disk.device])
        case .swap: ("mkswap", [disk.device])
        }
    }

    private func perform(
        _ disk: DiskConfig.Disk, _ action: String, _ program: String, _ arguments: [String], _ steps: inout [Step]
    ) -> Bool {
        let command = ([program] + arguments).joined(separator: " ")
        if dryRun {
            steps.append(note(disk, action, "would run: \(command)"))
            return true
        }
        let path = Subprocess.locate(ConfigureRun.searchPath(program))
        do {
            try Subprocess.run(path, arguments, step: "\(action) \(disk.device)")
            steps.append(note(disk, action, command))
            return true
        } catch {
            steps.append(note(disk, "refused", error.message))
            return false
        }
    }

    private func note(_ disk: DiskConfig.Disk, _ action: String, _ detail: String) -> Step {
        let level: Logger.Level = action == "refused" ? .error : .info
        log.log(level: level, "disks: \(detail)")
        return Step(device: disk.device, action: action, detail: detail)
    }
}
