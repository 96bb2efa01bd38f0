import CZstd
import Platform

#if canImport(Glibc)
    import Glibc
#endif

/// Writes a zstd file with libzstd, deterministically: no dictionary, no time, always the
/// multi-threaded mode with the same parameters (its stream differs from the single-threaded
/// one), so the same bytes in give the same file out.
/// Readable by `zstd -d` and by kernels with `CONFIG_RD_ZSTD` (an initramfs). Written to
/// `PATH.tmp.PID` and renamed on `finish()`.
public final class ZstdWriter: CompressedFileWriter {
    public let path: String
    private let temporary: String
    private let fd: Int32
    private let context: OpaquePointer
    private var output = [UInt8](repeating: 0, count: 256 << 10)
    private var finished = false

    /// Worker threads: fixed, so every head node runs the same mode with the same parameters.
    static let workers: Int32 = 4

    /// - Parameter level: zstd level 1 (fast) … 19 (small).
    public init(path: String, level: Int32 = 19, mode: mode_t = 0o644) throws(QlustarError) {
        self.path = path
        temporary = path + ".tmp.\(getpid())"
        guard let context = ZSTD_createCCtx() else {
            throw QlustarError(.io, "zstd: cannot start a stream for \(path)")
        }
        self.context = context
        do { fd = try FileSystem.create(temporary, mode: mode) } catch {
            ZSTD_freeCCtx(context)
            throw error
        }
        ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level)
        ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1)
        // Without multithreading support in libzstd this fails and compression runs on this thread.
        ZSTD_CCtx_setParameter(context, ZSTD_c_nbWorkers, Self.workers)
    }

    deinit {
        ZSTD_freeCCtx(context)
        if !finished {
            FileSystem.discard(fd, temporary)
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(QlustarError) {
        guard !bytes.isEmpty else { return }
        var input = ZSTD_inBuffer(src: bytes.baseAddress, size: bytes.count, pos: 0)
        while input.pos < input.size { _ = try pump(&input, ZSTD_e_continue) }
    }

    public func finish() throws(QlustarError) {
        var input = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
        while try pump(&input, ZSTD_e_end) != 0 {}
        finished = true
        try FileSystem.commit(fd, temporary, to: path)
    }

    /// One compression step into `output`, written out; returns what zstd still has to flush.
    private func pump(_ input: inout ZSTD_inBuffer, _ directive: ZSTD_EndDirective) throws(QlustarError) -> Int {
        let (remaining, produced) = output.withUnsafeMutableBytes { out -> (Int, Int) in
            var buffer = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
            let r = ZSTD_compressStream2(context, &buffer, &input, directive)
            return (r, buffer.pos)
        }
        if ZSTD_isError(remaining) != 0 {
            throw QlustarError(.io, "zstd: \(String(cString: ZSTD_getErrorName(remaining))) while writing \(path)")
        }
        let written = output.withUnsafeBytes {
            FileSystem.writeAll(fd, UnsafeRawBufferPointer(rebasing: $0[0..<produced]))
        }
        guard written else { throw FileSystem.error("cannot write", temporary) }
        return remaining
    }
}
