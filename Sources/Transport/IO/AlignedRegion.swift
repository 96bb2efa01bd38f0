import CNuma

#if canImport(Glibc)
    import Glibc
#endif

/// Page-aligned memory for receive and parity buffers, placed on a NUMA node when the machine
/// has more than one (libnuma), so the NIC's DMA and our copy stay on one memory controller.
public final class AlignedRegion {
    public let base: UnsafeMutableRawPointer
    public let size: Int
    /// The NUMA node the region was bound to, or nil on single-node machines.
    public let numaNode: Int?
    private let viaNuma: Bool

    /// - Parameters:
    ///   - size: Bytes (rounded up to whole pages).
    ///   - numaNode: Preferred node; ignored where libnuma reports a single node.
    public init(size: Int, numaNode: Int? = nil) throws(TransportError) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let rounded = (max(size, 1) + page - 1) / page * page
        self.size = rounded
        if let node = numaNode, numa_available() >= 0, numa_num_configured_nodes() > 1,
            let p = numa_alloc_onnode(rounded, Int32(node))
        {
            base = p
            self.numaNode = node
            viaNuma = true
        } else {
            base = try SystemCalls.mmap(-1, rounded, writable: true)
            self.numaNode = nil
            viaNuma = false
        }
    }

    deinit {
        if viaNuma { numa_free(base, size) } else { SystemCalls.munmap(base, size) }
    }

    /// The NUMA node of a network interface (from sysfs), or nil if unknown.
    public static func numaNode(ofInterface name: String) -> Int? {
        let fd = Glibc.open("/sys/class/net/\(name)/device/numa_node", O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var buf = [UInt8](repeating: 0, count: 16)
        let n = Glibc.read(fd, &buf, 15)
        guard n > 0, let v = Int(String(decoding: buf[0..<n], as: UTF8.self).trimmingWhitespace()), v >= 0 else {
            return nil
        }
        return v
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
