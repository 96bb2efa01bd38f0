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
        public var line: String { "\(device) \(action.rawValue) \(fsType.rawValue) \(mountpoint ?? "-") \(options ?? "-")" }

        func validate(_ what: String) throws(QlustarError) {
            let device = try FieldCheck.absolutePath(self.device, what + ".device")
            guard device.hasPrefix("/dev/"), device.count > 5 else { throw FieldCheck.fail(what + ".device", "\(device) is not below /dev") }
            if fsType == .swap {
                guard mountpoint == nil else { throw FieldCheck.fail(what, "swap has no mountpoint") }
            } else {
                guard let m = mountpoint else { throw FieldCheck.fail(what, "a \(fsType.rawValue) disk needs a mountpoint") }
                guard try FieldCheck.absolutePath(m, what + ".mountpoint") != "/" else { throw FieldCheck.fail(what, "cannot mount over /") }
            }
            if let o = options { _ = try FieldCheck.line(o, what + ".options", allowSpaces: false) }
        }
    }

    public var disks: [Disk]

    public init(disks: [Disk]) { self.disks = disks }

    func validate() throws(QlustarError) {
        guard !disks.isEmpty else { throw FieldCheck.fail("disk", "needs at least one disk") }
        for (i, d) in disks.enumerated() { try d.validate("disks[\(i)]") }
        guard Set(disks.map(\.device)).count == disks.count else { throw FieldCheck.fail("disk", "a device is listed twice") }
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
                throw QlustarError(.invalidArgument, "disk-config line \(n + 1): expected DEVICE format|keep ext4|xfs|swap MOUNTPOINT OPTIONS")
            }
            let disk = Disk(device: f[0], action: action, fsType: fs, mountpoint: f[3] == "-" ? nil : f[3], options: f[4] == "-" ? nil : f[4])
            try disk.validate("disk-config line \(n + 1)")
            disks.append(disk)
        }
        let config = DiskConfig(disks: disks)
        if !disks.isEmpty { try config.validate() }
        return config
    }
}

/// The OpenSM config class: whether the node runs the InfiniBand subnet manager.
public struct OpenSMConfig: Codable, Sendable, Equatable {
    public var enabled: Bool
    /// SM priority 0–15 (the highest wins mastership).
    public var priority: Int?
    /// Port GUIDs to bind (0x…); all ports when absent.
    public var ports: [String]?

    func validate() throws(QlustarError) {
        if let p = priority, !(0...15).contains(p) { throw FieldCheck.fail("opensm.priority", "must be 0–15") }
        for g in ports ?? [] {
            guard g.hasPrefix("0x"), (3...18).contains(g.count), UInt64(g.dropFirst(2), radix: 16) != nil else {
                throw FieldCheck.fail("opensm.ports", "\(ImageName.quoted(g)) is not a port GUID like 0x0002c903000e0b21")
            }
        }
    }
}

/// The IPMI config class: the BMC's address follows the node's host number in `network`.
public struct IPMIConfig: Codable, Sendable, Equatable {
    public var network: String
    public var gateway: String?
    /// The LAN channel (default 1).
    public var channel: Int?

    func validate() throws(QlustarError) {
        _ = try FieldCheck.network(network, "ipmi.network")
        if let g = gateway { _ = try FieldCheck.ipv4(g, "ipmi.gateway") }
        if let c = channel, !(1...15).contains(c) { throw FieldCheck.fail("ipmi.channel", "must be 1–15") }
    }
}

/// The unionFS chroot config class: the chroot set up instead of the image's.
public struct ChrootConfig: Codable, Sendable, Equatable {
    public var chroot: String

    func validate() throws(QlustarError) { _ = try FieldCheck.name(chroot, "chroot name") }
}

/// The Root FS Customization config class: the tree below
/// `/var/lib/qlustar/root-fs/<name>` on the head node, copied onto the node.
public struct RootFSConfig: Codable, Sendable, Equatable {
    public var description: String?

    func validate() throws(QlustarError) {
        if let d = description { _ = try FieldCheck.line(d, "root-fs.description") }
    }
}

/// The miscellaneous config class: mail transport and the slurm-job ssh restriction.
public struct MiscConfig: Codable, Sendable, Equatable {
    /// Relay host for outgoing mail (mail transport on when set).
    public var mailRelay: String?
    /// Only users with a running slurm job on the node may log in by ssh (pam).
    public var sshSlurmOnly: Bool?

    func validate() throws(QlustarError) {
        if let r = mailRelay { _ = try FieldCheck.line(r, "misc.mailRelay", limit: 253, allowSpaces: false) }
    }
}
