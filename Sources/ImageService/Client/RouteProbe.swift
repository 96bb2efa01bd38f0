import Platform
import Transport

#if canImport(Glibc)
    import Glibc
#endif

/// The address of the local interface that routing picks toward `host`: what a node joins
/// the multicast group on when `--interface` is not given (the boot NIC, in the initrd).
enum RouteProbe {
    static func localAddress(toward host: String) throws(QlustarError) -> IPv4Address {
        guard let target = IPv4Address(host) ?? resolve(host) else {
            throw QlustarError(
                .invalidArgument, "cannot resolve the server '\(host)' to an IPv4 address; give --interface")
        }
        var to = sockaddr_in()
        to.sin_family = sa_family_t(AF_INET)
        to.sin_port = UInt16(9).bigEndian
        to.sin_addr.s_addr = target.value.bigEndian
        let fd: Int32
        do { fd = try Posix.udpSocket() } catch { throw QlustarError(.io, error.description) }
        defer { Posix.close(fd) }
        // A UDP connect sends nothing: it only asks the routing table for a source address.
        do { try Posix.connect(fd, to) } catch {
            throw QlustarError(.unreachable, "no route to the server \(host): \(error.text)")
        }
        let local: sockaddr_in
        do { local = try Posix.localAddress(fd) } catch { throw QlustarError(.io, error.description) }
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
