/// Hands out multicast group:port pairs for sessions from a configured pool, never one in use.
///
/// The pool is a block of group addresses (`239.255.1.0/24`) times a port range
/// (`30000-30999`). Allocation walks the pairs round-robin from where the last one was taken, so
/// a pair just released is the last to be reused (late datagrams of an ended session then meet
/// no new one). Not thread-safe: its owner (the daemon's session manager) serialises access.
public struct GroupPool: Sendable {
    public let network: IPv4Address
    public let prefixLength: Int
    public let ports: ClosedRange<UInt16>
    private var inUse: Set<MulticastEndpoint> = []
    private var cursor: UInt64 = 0

    /// - Parameters:
    ///   - cidr: A multicast block like `239.255.1.0/24` (the whole block must be 224.0.0.0/4,
    ///     prefix /8…/32); the network and broadcast-like ends are usable, multicast has none.
    ///   - ports: A range like `30000-30999`.
    /// - Throws: `.invalidArgument` naming what is wrong.
    public init(cidr: String, ports: String) throws(TransportError) {
        let parts = cidr.split(separator: "/")
        guard parts.count == 2, let base = IPv4Address(String(parts[0])), let len = Int(parts[1]),
            (8...32).contains(len)
        else {
            throw TransportError(.invalidArgument, "group pool '\(cidr)' is not ADDRESS/PREFIX like 239.255.1.0/24")
        }
        let mask: UInt32 = len == 0 ? 0 : ~UInt32(0) << UInt32(32 - len)
        let network = IPv4Address(base.value & mask)
        let last = IPv4Address(network.value | ~mask)
        guard network.isMulticast, last.isMulticast else {
            throw TransportError(.invalidArgument, "group pool \(cidr) is not inside 224.0.0.0/4")
        }
        guard network.value >> 8 != 0xE000_00 else {
            throw TransportError(.invalidArgument, "group pool \(cidr) overlaps 224.0.0.0/24 (link-local control)")
        }
        let p = ports.split(separator: "-")
        guard p.count == 2, let lo = UInt16(p[0]), let hi = UInt16(p[1]), lo >= 1_024, lo <= hi else {
            throw TransportError(.invalidArgument, "port range '\(ports)' is not LOW-HIGH within 1024-65535")
        }
        self.network = network
        prefixLength = len
        self.ports = lo...hi
    }

    /// Number of distinct group:port pairs.
    public var capacity: UInt64 { (UInt64(1) << UInt64(32 - prefixLength)) * UInt64(ports.count) }
    public var allocated: Int { inUse.count }

    /// Takes a free pair.
    /// - Throws: `.invalidArgument` ("exhausted") when every pair is in use.
    public mutating func allocate() throws(TransportError) -> MulticastEndpoint {
        guard UInt64(inUse.count) < capacity else {
            throw TransportError(
                .invalidArgument,
                "all \(capacity) group:port pairs of \(network)/\(prefixLength) × \(ports.lowerBound)-\(ports.upperBound) are in use"
            )
        }
        let groups = UInt64(1) << UInt64(32 - prefixLength)
        while true {
            let i = cursor % capacity
            cursor &+= 1
            // Vary the group first: consecutive sessions land on different groups, so a host
            // joined to one never even receives the other's traffic.
            let group = IPv4Address(network.value + UInt32(i % groups))
            let port = ports.lowerBound + UInt16(i / groups)
            let endpoint = try MulticastEndpoint(group: group, port: port)
            if !inUse.contains(endpoint) {
                inUse.insert(endpoint)
                return endpoint
            }
        }
    }

    /// Returns a pair to the pool (a pair not taken from it is ignored).
    public mutating func release(_ endpoint: MulticastEndpoint) {
        inUse.remove(endpoint)
    }
}
