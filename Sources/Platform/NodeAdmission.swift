/// Who the head node serves: the registered nodes, recognised by what the kernel saw on the wire
/// (the neighbour table's MAC for the source address), not by what a host says about itself.
///
/// ql-mcastd asks its `NodeAdmission` before it answers `request-image`, `list-images` or `fetch`;
/// qlumand identifies nodes the same way. NodeRegistry implements it (`RegistryAdmission`) and
/// ql-mcastd's tool hands that to the server: the image service and the registry, both on this
/// floor, never import each other.
public protocol NodeAdmission: Sendable {
    /// The registered node at `address` whose registered MACs include `mac` (the neighbour
    /// table's entry for the address) and whose token, if it has one, is `token`.
    func admit(address: String, mac: String?, token: String?) -> AdmissionVerdict
}

public enum AdmissionVerdict: Sendable, Equatable {
    case admitted(node: String)
    /// `reason` is a counter key (`not-registered`, `mac-mismatch`, `token`); `message` says what
    /// was wrong without repeating any secret.
    case refused(reason: String, message: String)
}

/// The kernel's IPv4 neighbour table (`/proc/net/arp` of the daemon's network namespace).
public enum NeighbourTable {
    /// The MAC address (lower case, colon-separated) of the complete entry for `address`, or nil.
    public static func mac(of address: String, table path: String = "/proc/net/arp") -> String? {
        // ≈ 80 bytes a neighbour: 4 MiB is 50,000 of them.
        guard let bytes = try? FileSystem.readFile(path, limit: 4 << 20) else { return nil }
        return mac(of: address, inTable: String(decoding: bytes, as: UTF8.self))
    }

    /// `address` as the neighbour table writes it: an IPv4-mapped IPv6 peer (a server listening
    /// on `::`) is the IPv4 address.
    public static func plainIPv4(_ address: String) -> String {
        address.lowercased().hasPrefix("::ffff:") && address.contains(".") ? String(address.dropFirst(7)) : address
    }

    /// The same, from the text of a table:
    /// `IP address  HW type  Flags  HW address  Mask  Device` (flags 0x2: complete).
    public static func mac(of address: String, inTable text: String) -> String? {
        for line in text.split(separator: "\n").dropFirst() {
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard f.count >= 4, f[0] == address, let flags = UInt32(f[2].dropFirst(2), radix: 16), flags & 0x2 != 0
            else { continue }
            let mac = f[3].lowercased()
            return mac == "00:00:00:00:00:00" ? nil : mac
        }
        return nil
    }
}
