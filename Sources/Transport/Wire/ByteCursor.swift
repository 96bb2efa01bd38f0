/// Bounds-checked big-endian reads from a datagram body; every read past the end yields nil.
///
/// Used for the small control bodies (ANNOUNCE, NAK, FIN, STATUS); symbols are never parsed.
@usableFromInline
struct ByteReader {
    @usableFromInline let bytes: UnsafeRawBufferPointer
    @usableFromInline var offset = 0

    @usableFromInline
    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    @usableFromInline var remaining: Int { bytes.count - offset }

    @usableFromInline
    mutating func read<T: FixedWidthInteger>(_: T.Type) -> T? {
        let n = MemoryLayout<T>.size
        guard remaining >= n, let base = bytes.baseAddress else { return nil }
        // Unaligned load is safe: the bounds were checked on the line above.
        let v = T(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += n
        return v
    }

    /// Returns a view of the next `count` bytes, or nil if fewer remain.
    @usableFromInline
    mutating func slice(_ count: Int) -> UnsafeRawBufferPointer? {
        guard count >= 0, remaining >= count, let base = bytes.baseAddress else { return nil }
        defer { offset += count }
        return UnsafeRawBufferPointer(start: base + offset, count: count)
    }
}

/// Big-endian writes into a caller-owned buffer; writing past the end is a programming error.
@usableFromInline
struct ByteWriter {
    @usableFromInline let base: UnsafeMutableRawPointer
    @usableFromInline let capacity: Int
    @usableFromInline var offset = 0

    @usableFromInline
    init(_ base: UnsafeMutableRawPointer, capacity: Int) {
        self.base = base
        self.capacity = capacity
    }

    @usableFromInline
    mutating func write<T: FixedWidthInteger>(_ v: T) {
        let n = MemoryLayout<T>.size
        precondition(offset + n <= capacity, "ByteWriter overflow")
        base.storeBytes(of: v.bigEndian, toByteOffset: offset, as: T.self)
        offset += n
    }

    @usableFromInline
    mutating func write(bytes: UnsafeRawBufferPointer) {
        precondition(offset + bytes.count <= capacity, "ByteWriter overflow")
        if let src = bytes.baseAddress, bytes.count > 0 {
            (base + offset).copyMemory(from: src, byteCount: bytes.count)
        }
        offset += bytes.count
    }
}
