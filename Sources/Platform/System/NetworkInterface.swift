#if canImport(Glibc)
    import Glibc
#endif

/// A local network interface named the way an administrator types it: by name (`eth0`) or by
/// its IPv4 address (`192.168.52.1`). Every tool's `--interface` takes either and resolves it here,
/// so the option means the same everywhere: tools that send or join multicast need the address,
/// a packet capture needs the name.
public struct NetworkInterface: Sendable, Equatable {
    public var name: String
    /// Its first IPv4 address (dotted quad).
    public var address: String

    public init(name: String, address: String) {
        self.name = name
        self.address = address
    }

    /// The local interface `text` names (an interface name or one of its IPv4 addresses).
    /// - Throws: `.invalidArgument` naming the interfaces there are when none matches, or when
    ///   the named interface has no IPv4 address.
    public static func resolve(_ text: String) throws(QlustarError) -> NetworkInterface {
        let all = list()
        if let byAddress = all.first(where: { $0.address == text }) { return byAddress }
        if let byName = all.first(where: { $0.name == text }) { return byName }
        let names = Array(Set(all.map(\.name))).sorted()
        if isDottedQuad(text) {
            throw QlustarError(
                .invalidArgument,
                "no local interface has the address \(text) (interfaces: \(names.joined(separator: ", ")))")
        }
        throw QlustarError(
            .invalidArgument,
            "no interface \(ImageName.quoted(text)) with an IPv4 address here (interfaces with one: \(names.joined(separator: ", ")))"
        )
    }

    /// Every interface with an IPv4 address, in the kernel's order (one entry per address).
    public static func list() -> [NetworkInterface] {
        var first: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&first) == 0 else { return [] }
        defer { freeifaddrs(first) }
        var out: [NetworkInterface] = []
        var next = first
        while let entry = next {
            defer { next = entry.pointee.ifa_next }
            guard let sa = entry.pointee.ifa_addr, sa.pointee.sa_family == sa_family_t(AF_INET) else { continue }
            // AF_INET: the address is a sockaddr_in (the kernel's promise for this family).
            let quad = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin -> String in
                let v = UInt32(bigEndian: sin.pointee.sin_addr.s_addr)
                return "\(v >> 24).\(v >> 16 & 0xFF).\(v >> 8 & 0xFF).\(v & 0xFF)"
            }
            out.append(NetworkInterface(name: String(cString: entry.pointee.ifa_name), address: quad))
        }
        return out
    }

    static func isDottedQuad(_ text: String) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4
            && parts.allSatisfy { !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isASCII) && UInt8($0) != nil }
    }
}
