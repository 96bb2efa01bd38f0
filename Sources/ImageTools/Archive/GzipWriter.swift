import CZlib
import Platform

#if canImport(Glibc)
    import Glibc
#endif

/// Writes a gzip file with zlib, deterministically: the header carries no name and mtime 0, so
/// the same bytes in give the same file out (changelogs and the initrd are part of reproducible
/// images). Readable by `zcat`. Written to `PATH.tmp.PID` and renamed on `finish()`.
public final class GzipWriter: CompressedFileWriter {
    public let path: String
    private let temporary: String
    private let fd: Int32
    private var stream = z_stream()
    private var output = [UInt8](repeating: 0, count: 256 << 10)
    private var finished = false
    /// Uncompressed bytes written so far.
    public private(set) var bytesIn: UInt64 = 0

    /// - Parameter level: zlib level 1 (fast) … 9 (small); 6 is gzip's default.
    public init(path: String, level: Int32 = 6, mode: mode_t = 0o644) throws(QlustarError) {
        self.path = path
        temporary = path + ".tmp.\(getpid())"
        fd = try FileSystem.create(temporary, mode: mode)
        guard qlz_gzip_init(&stream, level) == Z_OK else {
            FileSystem.discard(fd, temporary)
            throw QlustarError(.io, "zlib: cannot start a gzip stream for \(path)")
        }
    }

    deinit {
        if !finished {
            deflateEnd(&stream)
            FileSystem.discard(fd, temporary)
        }
    }

    /// Compresses `bytes` into the file.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(QlustarError) {
        guard !bytes.isEmpty else { return }
        bytesIn += UInt64(bytes.count)
        // zlib reads through a mutable pointer but does not write the input.
        stream.next_in = UnsafeMutablePointer(mutating: bytes.baseAddress!.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = uInt(bytes.count)
        try pump(flush: Z_NO_FLUSH)
    }

    /// Ends the stream, syncs and renames the file into place.
    public func finish() throws(QlustarError) {
        try pump(flush: Z_FINISH)
        deflateEnd(&stream)
        finished = true
        try FileSystem.commit(fd, temporary, to: path)
    }

    private func pump(flush: Int32) throws(QlustarError) {
        repeat {
            let status = output.withUnsafeMutableBufferPointer { out -> Int32 in
                stream.next_out = out.baseAddress
                stream.avail_out = uInt(out.count)
                return deflate(&stream, flush)
            }
            guard status != Z_STREAM_ERROR else { throw QlustarError(.io, "zlib: deflate failed for \(path)") }
            let produced = output.count - Int(stream.avail_out)
            let written = output.withUnsafeBytes {
                FileSystem.writeAll(fd, UnsafeRawBufferPointer(rebasing: $0[0..<produced]))
            }
            guard written else { throw FileSystem.error("cannot write", temporary) }
            if flush == Z_FINISH && status == Z_STREAM_END { return }
        } while stream.avail_out == 0 || (flush == Z_FINISH)
    }
}
