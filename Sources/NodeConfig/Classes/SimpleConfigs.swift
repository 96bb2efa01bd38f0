import ImageService

/// The disk configuration config class: the text written to `/etc/qlustar/options.d/disk-config`
/// for the disk initialisation script.
public struct DiskConfig: Codable, Sendable, Equatable {
    public var text: String

    func validate() throws(ServiceError) {
        guard !text.isEmpty, text.utf8.count <= 65_536 else { throw FieldCheck.fail("disk", "text must be 1–65536 bytes") }
        guard !text.unicodeScalars.contains(where: { ($0.value < 0x20 && $0 != "\n" && $0 != "\t") || $0.value == 0x7F }) else {
            throw FieldCheck.fail("disk", "text contains control characters")
        }
    }
}

/// The OpenSM config class: whether the node runs the InfiniBand subnet manager.
public struct OpenSMConfig: Codable, Sendable, Equatable {
    public var enabled: Bool
    /// SM priority 0–15 (the highest wins mastership).
    public var priority: Int?
    /// Port GUIDs to bind (0x…); all ports when absent.
    public var ports: [String]?

    func validate() throws(ServiceError) {
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

    func validate() throws(ServiceError) {
        _ = try FieldCheck.network(network, "ipmi.network")
        if let g = gateway { _ = try FieldCheck.ipv4(g, "ipmi.gateway") }
        if let c = channel, !(1...15).contains(c) { throw FieldCheck.fail("ipmi.channel", "must be 1–15") }
    }
}

/// The unionFS chroot config class: the chroot set up instead of the image's.
public struct ChrootConfig: Codable, Sendable, Equatable {
    public var chroot: String

    func validate() throws(ServiceError) { _ = try FieldCheck.name(chroot, "chroot name") }
}

/// The Root FS Customization config class: the tree below
/// `/var/lib/qlustar/root-fs/<name>` on the head node, copied onto the node.
public struct RootFSConfig: Codable, Sendable, Equatable {
    public var description: String?

    func validate() throws(ServiceError) {
        if let d = description { _ = try FieldCheck.line(d, "root-fs.description") }
    }
}

/// The miscellaneous config class: mail transport and the slurm-job ssh restriction.
public struct MiscConfig: Codable, Sendable, Equatable {
    /// Relay host for outgoing mail (mail transport on when set).
    public var mailRelay: String?
    /// Only users with a running slurm job on the node may log in by ssh (pam).
    public var sshSlurmOnly: Bool?

    func validate() throws(ServiceError) {
        if let r = mailRelay { _ = try FieldCheck.line(r, "misc.mailRelay", limit: 253, allowSpaces: false) }
    }
}
