#if canImport(Glibc)
    import Glibc
#endif

/// An IPv4 address (network byte order kept inside), parsed and printed dotted-quad.
public struct IPv4Address: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Host byte order value.
    public let value: UInt32

    public init(_ value: UInt32) { self.value = value }

    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for p in parts {
            guard p.count <= 3, let o = UInt8(p) else { return nil }
            v = v << 8 | UInt32(o)
        }
        value = v
    }

    public static let any = IPv4Address(0)

    public var isMulticast: Bool { value >> 28 == 0xE }
    public var description: String { "\(value >> 24).\(value >> 16 & 0xFF).\(value >> 8 & 0xFF).\(value & 0xFF)" }
    var inAddr: in_addr { in_addr(s_addr: value.bigEndian) }

    public init(from decoder: any Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        guard let a = IPv4Address(s) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "not an IPv4 address: \(s)"))
        }
        self = a
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// A multicast group and UDP port: where one session's datagrams go.
public struct MulticastEndpoint: Sendable, Hashable, Codable, CustomStringConvertible {
    public let group: IPv4Address
    public let port: UInt16

    public init(group: IPv4Address, port: UInt16) throws(TransportError) {
        guard group.isMulticast else {
            throw TransportError(.invalidArgument, "\(group) is not a multicast address (224.0.0.0/4)")
        }
        guard port != 0 else { throw TransportError(.invalidArgument, "port 0 is not a usable multicast port") }
        self.group = group
        self.port = port
    }

    /// Parses `GROUP:PORT`, e.g. `239.255.1.1:30000`.
    public init(parsing text: String) throws(TransportError) {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let g = IPv4Address(String(parts[0])), let p = UInt16(parts[1]) else {
            throw TransportError(.invalidArgument, "'\(text)' is not GROUP:PORT (e.g. 239.255.1.1:30000)")
        }
        try self.init(group: g, port: p)
    }

    public var description: String { "\(group):\(port)" }

    var sockaddr: sockaddr_in {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = port.bigEndian
        a.sin_addr = group.inAddr
        return a
    }
}
