import CZlib
import Platform

/// Inflates a gzip stream held in memory (archives that arrived over the network), with a bound
/// on the output so a small malicious stream cannot fill the node's memory.
public enum GzipReader {
    /// The uncompressed bytes of `compressed`.
    /// - Throws: `.integrity` for a corrupt or truncated stream, `.invalidArgument` past `limit` bytes.
    public static func inflate(_ compressed: [UInt8], limit: Int) throws(QlustarError) -> [UInt8] {
        var stream = z_stream()
        guard qlz_gunzip_init(&stream) == Z_OK else { throw QlustarError(.io, "zlib: cannot start inflating") }
        defer { inflateEnd(&stream) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 256 << 10)
        var status = Z_OK
        compressed.withUnsafeBytes { input in
            // zlib reads through a mutable pointer but does not write the input.
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
            stream.avail_in = uInt(input.count)
            while status == Z_OK, out.count <= limit {
                chunk.withUnsafeMutableBytes { c in
                    stream.next_out = c.baseAddress!.assumingMemoryBound(to: Bytef.self)
                    stream.avail_out = uInt(c.count)
                    status = CZlib.inflate(&stream, Z_NO_FLUSH)
                }
                out += chunk[0..<(chunk.count - Int(stream.avail_out))]
                if status == Z_BUF_ERROR, stream.avail_in == 0 { break }
            }
        }
        guard out.count <= limit else { throw QlustarError(.invalidArgument, "archive inflates past \(limit) bytes") }
        guard status == Z_STREAM_END else { throw QlustarError(.integrity, "gzip stream is corrupt or truncated") }
        return out
    }
}
