import Foundation
import Platform

/// The disk configuration config class: which local disks a node initialises and mounts,
/// written to `/etc/qlustar/options.d/disk-config` (`DiskConfig.Disk.line`) and carried out by
/// `qluman-execd --init-disks` before the init.d scripts. Disks it does not name are never touched.
public struct DiskConfig: Codable, Sendable, Equatable {
    public enum Action: String, Codable, Sendable {
        /// Make a new file system at every boot (scratch).
        case format
        /// Keep the file system (make one only when the disk has none).
        case keep
    }

    public enum FileSystem: String, Codable, Sendable, CaseIterable { case ext4, xfs, swap }

    public struct Disk: Codable, Sendable, Equatable {
        /// The block device (`/dev/sdb`, `/dev/disk/by-path/…`).
        public var device: String
        public var action: Action
        public var fsType: FileSystem
        /// Where to mount it (none for swap).
        public var mountpoint: String?
        public var options: String?

        public init(device: String, action: Action, fsType: FileSystem, mountpoint: String?, options: String?) {
            self.device = device
            self.action = action
            self.fsType = fsType
            self.mountpoint = mountpoint
            self.options = options
        }

        /// `DEVICE ACTION FSTYPE MOUNTPOINT OPTIONS` (`-` for none).
        public var line: String {
            "\(device) \(action.rawValue) \(fsType.rawValue) \(mountpoint ?? "-") \(options ?? "-")"
        }

        func validate(_ what: String) throws(QlustarError) {
            let device = try FieldCheck.absolutePath(self.device, what + ".device")
            guard device.hasPrefix("/dev/"), device.count > 5 else {
                throw FieldCheck.fail(what + ".device", "\(device) is not below /dev")
            }
            if fsType == .swap {
                guard mountpoint == nil else { throw FieldCheck.fail(what, "swap has no mountpoint") }
            } else {
                guard let m = mountpoint else {
                    throw FieldCheck.fail(what, "a \(fsType.rawValue) disk needs a mountpoint")
                }
                guard try FieldCheck.absolutePath(m, what + ".mountpoint") != "/" else {
                    throw FieldCheck.fail(what, "cannot mount over /")
                }
            }
            if let o = options { _ = try FieldCheck.line(o, what + ".options", allowSpaces: false) }
        }
    }

    public var disks: [Disk]

    public init(disks: [Disk]) { self.disks = disks }

    public func validate() throws(QlustarError) {
        guard !disks.isEmpty else { throw FieldCheck.fail("disk", "needs at least one disk") }
        for (i, d) in disks.enumerated() { try d.validate("disks[\(i)]") }
        guard Set(disks.map(\.device)).count == disks.count else {
            throw FieldCheck.fail("disk", "a device is listed twice")
        }
        let mounts = disks.compactMap(\.mountpoint)
        guard Set(mounts).count == mounts.count else { throw FieldCheck.fail("disk", "a mountpoint is used twice") }
    }

    /// The text of `options.d/disk-config` (after the header).
    public var text: String { "# DEVICE ACTION FSTYPE MOUNTPOINT OPTIONS\n" + disks.map { $0.line + "\n" }.joined() }

    /// Reads a `disk-config` file back (on the node), checking every line.
    /// - Throws: `.invalidArgument` naming the line.
    public static func parse(_ text: String) throws(QlustarError) -> DiskConfig {
        var disks: [Disk] = []
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let f = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard f.count == 5, let action = Action(rawValue: f[1]), let fs = FileSystem(rawValue: f[2]) else {
                throw QlustarError(
                    .invalidArgument,
                    "disk-config line \(n + 1): expected DEVICE format|keep ext4|xfs|swap MOUNTPOINT OPTIONS")
            }
            let disk = Disk(
                device: f[0], action: action, fsType: fs, mountpoint: f[3] == "-" ? nil : f[3],
                options: f[4] == "-" ? nil : f[4])
            try disk.validate("disk-config line \(n + 1)")
            disks.append(disk)
        }
        let config = DiskConfig(disks: disks)
        if !disks.isEmpty { try config.validate() }
        return config
    }
}

extension ConfigClass {
    public static let disk = ConfigClass(declaring: "disk")
}

extension DiskConfig: NodeConfigClass {
    public static var kind: ConfigClass { .disk }
    public static var optionsKey: String? { "disk" }
    public static var example: String {
        #"{"disks":[{"device":"/dev/sdb","action":"format","fsType":"ext4","mountpoint":"/scratch","options":"noatime"}]}"#
    }

    public static func render(
        _ configs: [NodeOptions.Named<Self>], into plan: inout FilePlan, _ context: inout RenderContext
    ) {
        guard let disk = configs.last?.config else { return }
        let source = context.source(kind)
        plan.file(NodeRenderer.optionsDirectory + "/disk-config", context.header(source) + disk.text, origin: source)
    }
}
