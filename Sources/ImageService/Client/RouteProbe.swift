#if canImport(Glibc)
    import Glibc
#endif
import Transport
import Platform

/// The address of the local interface that routing picks toward `host`: what a node joins
/// the multicast group on when `--interface` is not given (the boot NIC, in the initrd).
enum RouteProbe {
    static func localAddress(toward host: String) throws(QlustarError) -> IPv4Address {
        guard let target = IPv4Address(host) ?? resolve(host) else {
            throw QlustarError(.invalidArgument, "cannot resolve the server '\(host)' to an IPv4 address; give --interface")
        }
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw QlustarError(.io, "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var to = sockaddr_in()
        to.sin_family = sa_family_t(AF_INET)
        to.sin_port = UInt16(9).bigEndian
        to.sin_addr.s_addr = target.value.bigEndian
        // A UDP connect sends nothing: it only asks the routing table for a source address.
        let connected = withUnsafePointer(to: &to) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            throw QlustarError(.unreachable, "no route to the server \(host): \(String(cString: strerror(errno)))")
        }
        var local = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard ok == 0 else { throw QlustarError(.io, "getsockname: \(String(cString: strerror(errno)))") }
        return IPv4Address(UInt32(bigEndian: local.sin_addr.s_addr))
    }

    private static func resolve(_ host: String) -> IPv4Address? {
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return nil }
        defer { freeaddrinfo(result) }
        return first.pointee.ai_addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
            IPv4Address(UInt32(bigEndian: $0.pointee.sin_addr.s_addr))
        }
    }
}
