#if canImport(Glibc)
    import Glibc
#endif

/// What the engine needs to know about a local network interface.
public enum NetworkInterface {
    /// The name of the interface that has `address` (e.g. "eth0"), or nil.
    public static func name(owning address: IPv4Address) -> String? {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return nil }
        defer { freeifaddrs(list) }
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            if let sa = entry.pointee.ifa_addr, sa.pointee.sa_family == sa_family_t(AF_INET) {
                let v4 = UnsafeRawPointer(sa).assumingMemoryBound(to: sockaddr_in.self).pointee
                if UInt32(bigEndian: v4.sin_addr.s_addr) == address.value {
                    return String(cString: entry.pointee.ifa_name)
                }
            }
            cursor = entry.pointee.ifa_next
        }
        return nil
    }

    /// The NUMA node of the device behind the interface that has `address`, where the kernel
    /// reports one (physical NICs on multi-socket machines); nil otherwise.
    public static func numaNode(owning address: IPv4Address) -> Int? {
        name(owning: address).flatMap { AlignedRegion.numaNode(ofInterface: $0) }
    }
}
