import Platform

/// A file written through a compressor (gzip or zstd), atomically: bytes go to `PATH.tmp.PID`,
/// `finish()` ends the stream, syncs and renames it into place; a writer dropped unfinished
/// removes its temporary file. `CPIOWriter` writes the initrd through one.
public protocol CompressedFileWriter: AnyObject {
    var path: String { get }
    /// Compresses `bytes` into the file.
    func write(_ bytes: UnsafeRawBufferPointer) throws(QlustarError)
    /// Ends the stream, syncs and renames the file into place.
    func finish() throws(QlustarError)
}

extension CompressedFileWriter {
    public func write(_ bytes: [UInt8]) throws(QlustarError) {
        let result = bytes.withUnsafeBytes { b in Result { () throws(QlustarError) in try write(b) } }
        try result.get()
    }

    public func write(_ text: String) throws(QlustarError) { try write(Array(text.utf8)) }
}

/// How an initrd is compressed (image definition `initrdCompression`). The kernel must have the
/// matching `CONFIG_RD_*` (Debian's have both).
public enum InitrdCompression: String, Codable, Sendable, CaseIterable {
    /// zlib level 1: fast to build, read by every kernel.
    case gzip
    /// zstd level 19: ≈ 30 % smaller than gzip -1 and faster for the kernel to unpack, so nodes
    /// load it sooner by TFTP; slower to build (once per initrd change).
    case zstd

    /// The format of the compressed file at `path`, by its magic number; nil for neither.
    public static func detect(_ path: String) throws(QlustarError) -> InitrdCompression? {
        let magic = try FileSystem.readPrefix(path, count: 4)
        if magic.starts(with: [0x1F, 0x8B]) { return .gzip }
        if magic == [0x28, 0xB5, 0x2F, 0xFD] { return .zstd }
        return nil
    }

    /// The command that writes the uncompressed stream of a file in this format to stdout.
    var decompressor: String {
        switch self {
        case .gzip: "zcat"
        case .zstd: "zstd -dcq"
        }
    }

    /// A writer for `path` in this format.
    public func writer(path: String) throws(QlustarError) -> any CompressedFileWriter {
        switch self {
        case .gzip: try GzipWriter(path: path, level: 1)
        case .zstd: try ZstdWriter(path: path, level: 19)
        }
    }
}
