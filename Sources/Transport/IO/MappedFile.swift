#if canImport(Glibc)
    import Glibc
#endif

/// A file mapped into memory: the sender's object (read-only) or the receiver's destination
/// (read-write, sized up to whole FEC blocks while receiving, cut to the object size at the end).
/// A class because it owns the mapping and descriptor.
public final class MappedFile {
    public let path: String
    public let fd: Int32
    public private(set) var base: UnsafeMutableRawPointer?
    public private(set) var mappedSize: Int
    public let writable: Bool

    private init(path: String, fd: Int32, base: UnsafeMutableRawPointer?, size: Int, writable: Bool) {
        self.path = path
        self.fd = fd
        self.base = base
        mappedSize = size
        self.writable = writable
    }

    deinit {
        if let base, mappedSize > 0 { SystemCalls.munmap(base, mappedSize) }
        SystemCalls.close(fd)
    }

    /// Maps an existing file read-only.
    public static func open(readingFrom path: String) throws(TransportError) -> MappedFile {
        let fd = try SystemCalls.open(path, O_RDONLY)
        let size: Int
        do { size = try SystemCalls.fileSize(fd) } catch {
            SystemCalls.close(fd)
            throw error
        }
        var base: UnsafeMutableRawPointer?
        if size > 0 {
            do { base = try SystemCalls.mmap(fd, size, writable: false) } catch {
                SystemCalls.close(fd)
                throw TransportError(.io, "cannot map \(path): \(error.message)", errno: error.errno)
            }
            SystemCalls.madviseSequential(base!, size)
        }
        return MappedFile(path: path, fd: fd, base: base, size: size, writable: false)
    }

    /// Copies the file at `path` into sealed memory and maps that read-only: the result never
    /// changes, whatever happens to the file afterwards (truncated or rewritten in place by `cp`,
    /// a mapping of the file itself would fault with SIGBUS on the lost pages, or serve bytes
    /// that no longer match their digest). Costs one copy of the file in memory (shmem) and one
    /// read of it; `fd` is the memory file's (for `sendfile`), `path` the original's.
    /// - Parameter identity: Called with the file's descriptor before the copy and again after
    ///   it; the copy is refused when the two results differ (the file changed while read).
    /// - Throws: `.io` when the file cannot be read, shrinks or changes while it is copied.
    public static func copy<ID: Equatable>(
        of path: String, identity: (Int32) throws(TransportError) -> ID
    ) throws(TransportError) -> MappedFile {
        let source = try SystemCalls.open(path, O_RDONLY)
        defer { SystemCalls.close(source) }
        let before = try identity(source)
        let size = try SystemCalls.fileSize(source)
        let fd = try SystemCalls.memfd("ql-mcast snapshot")
        do throws(TransportError) {
            // Copied in the kernel (sendfile into the memfd): no mapping of the source, so a file
            // cut short ends the copy instead of faulting, and no page faults on the memfd side.
            let n = try SystemCalls.copyFile(from: source, to: fd, count: size)
            guard n == size else {
                throw TransportError(.io, "\(path) shrank from \(size) to \(n) bytes while it was read")
            }
            guard try identity(source) == before else {
                throw TransportError(.io, "\(path) changed while it was read")
            }
            try SystemCalls.sealAll(fd)
            let base = size > 0 ? try SystemCalls.mmap(fd, size, writable: false) : nil
            return MappedFile(path: path, fd: fd, base: base, size: size, writable: false)
        } catch {
            SystemCalls.close(fd)
            throw error.code == .io
                ? error : TransportError(.io, "cannot copy \(path) into memory: \(error.message)", errno: error.errno)
        }
    }

    /// Creates (or truncates) a file of `size` zero bytes and maps it read-write.
    public static func create(writingTo path: String, size: Int, mode: mode_t = 0o644) throws(TransportError)
        -> MappedFile
    {
        let fd = try SystemCalls.open(path, O_RDWR | O_CREAT | O_TRUNC, mode)
        do {
            try SystemCalls.ftruncate(fd, size)
            let base = size > 0 ? try SystemCalls.mmap(fd, size, writable: true) : nil
            return MappedFile(path: path, fd: fd, base: base, size: size, writable: true)
        } catch {
            SystemCalls.close(fd)
            throw TransportError(.io, "cannot create \(path) (\(size) bytes): \(error.message)", errno: error.errno)
        }
    }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: mappedSize) }
    public var mutableBytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base, count: mappedSize)
    }

    /// Unmaps, cuts the file to `size` bytes and flushes it to disk.
    public func finish(size: Int) throws(TransportError) {
        if let base, mappedSize > 0 { SystemCalls.munmap(base, mappedSize) }
        base = nil
        mappedSize = 0
        try SystemCalls.ftruncate(fd, size)
        try SystemCalls.fsync(fd)
    }
}
