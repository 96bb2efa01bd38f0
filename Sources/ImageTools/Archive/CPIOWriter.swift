import Foundation
import Platform

#if canImport(Glibc)
    import Glibc
#endif

/// Writes a `newc` cpio archive (what the kernel unpacks as an initramfs) into a gzip stream.
///
/// Deterministic: entries in byte order of their paths, inode numbers counted from 1, one fixed
/// modification time for all; owner, group and mode kept as given (or as found on disk). Hard
/// links are stored as separate files. Format: per entry the ASCII header `070701` and thirteen
/// 8-digit hex fields, the NUL-terminated name padded to 4 bytes, the data padded to 4 bytes;
/// the archive ends with the entry `TRAILER!!!`.
public final class CPIOWriter {
    private let out: any CompressedFileWriter
    private let mtime: UInt32
    private var nextInode: UInt32 = 1
    private var names = Set<String>()
    public private(set) var entries = 0

    /// - Parameter mtime: The modification time of every entry (seconds since the epoch).
    public init(writingTo out: any CompressedFileWriter, mtime: UInt32 = 0) {
        self.out = out
        self.mtime = mtime
    }

    // MARK: - Entries

    /// Adds the directory `name` (relative, no leading `/`; `.` is the root).
    public func addDirectory(_ name: String, mode: mode_t = 0o755, uid: UInt32 = 0, gid: UInt32 = 0)
        throws(QlustarError)
    {
        try entry(name, mode: S_IFDIR | (mode & 0o7777), uid: uid, gid: gid, nlink: 2, size: 0)
    }

    /// Adds a regular file with `data` as its content.
    public func addFile(_ name: String, data: [UInt8], mode: mode_t = 0o644, uid: UInt32 = 0, gid: UInt32 = 0)
        throws(QlustarError)
    {
        try entry(name, mode: S_IFREG | (mode & 0o7777), uid: uid, gid: gid, nlink: 1, size: data.count)
        try out.write(data)
        try pad(data.count)
    }

    /// Adds a regular file with the content of `source` (links followed), owned by root, with
    /// the source's permission bits.
    public func addFile(_ name: String, contentsOf source: String) throws(QlustarError) {
        let st = try FileSystem.status(source)
        guard st.st_mode & S_IFMT == S_IFREG else { throw QlustarError(.io, "\(source) is not a regular file") }
        try entry(name, mode: S_IFREG | (st.st_mode & 0o7777), uid: 0, gid: 0, nlink: 1, size: Int(st.st_size))
        try copyContent(of: source, size: Int(st.st_size))
        try pad(Int(st.st_size))
    }

    /// Adds a symbolic link to `target`.
    public func addSymlink(_ name: String, target: String, uid: UInt32 = 0, gid: UInt32 = 0) throws(QlustarError) {
        let bytes = Array(target.utf8)
        try entry(name, mode: S_IFLNK | 0o777, uid: uid, gid: gid, nlink: 1, size: bytes.count)
        try out.write(bytes)
        try pad(bytes.count)
    }

    /// Adds a character device node (`/dev/console` for the initramfs' first messages).
    public func addCharacterDevice(_ name: String, major: UInt32, minor: UInt32, mode: mode_t = 0o600)
        throws(QlustarError)
    {
        try entry(name, mode: S_IFCHR | (mode & 0o7777), uid: 0, gid: 0, nlink: 1, size: 0, rdev: (major, minor))
    }

    /// Adds everything below the directory `source` under `prefix` (relative, "" for the
    /// archive's root), in byte order, with the owners and modes found on disk.
    /// - Throws: `.io` naming the path that cannot be read, or an unsupported file type.
    public func addTree(_ source: String, prefix: String = "") throws(QlustarError) {
        let children = try FileSystem.list(source)
        for child in children.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
            let path = source + "/" + child
            let name = prefix.isEmpty ? child : prefix + "/" + child
            let st = try FileSystem.status(path, followingLinks: false)
            let perm = st.st_mode & 0o7777
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                try addDirectory(name, mode: perm, uid: st.st_uid, gid: st.st_gid)
                try addTree(path, prefix: name)
            case S_IFREG:
                try entry(name, mode: S_IFREG | perm, uid: st.st_uid, gid: st.st_gid, nlink: 1, size: Int(st.st_size))
                try copyContent(of: path, size: Int(st.st_size))
                try pad(Int(st.st_size))
            case S_IFLNK:
                try addSymlink(name, target: try FileSystem.linkTarget(path), uid: st.st_uid, gid: st.st_gid)
            case S_IFCHR:
                try entry(
                    name, mode: st.st_mode, uid: st.st_uid, gid: st.st_gid, nlink: 1, size: 0,
                    rdev: Self.split(UInt64(st.st_rdev)))
            default:
                throw QlustarError(
                    .io,
                    "\(path): only directories, regular files, symbolic links and character devices go into an initrd")
            }
        }
    }

    /// Writes the trailer and ends the gzip stream.
    public func finish() throws(QlustarError) {
        try entry("TRAILER!!!", mode: 0, uid: 0, gid: 0, nlink: 1, size: 0, counted: false)
        try out.finish()
    }

    // MARK: - Encoding

    private func entry(
        _ name: String, mode: mode_t, uid: UInt32, gid: UInt32, nlink: UInt32, size: Int,
        rdev: (UInt32, UInt32) = (0, 0),
        counted: Bool = true
    ) throws(QlustarError) {
        if counted {
            guard !name.isEmpty, !name.hasPrefix("/"), !name.split(separator: "/").contains(".."),
                !name.utf8.contains(0)
            else {
                throw QlustarError(.invalidArgument, "cpio entry name '\(name)' must be relative, without '..'")
            }
            guard names.insert(name).inserted else {
                throw QlustarError(.invalidArgument, "cpio entry '\(name)' added twice")
            }
            guard size <= Int(UInt32.max) else {
                throw QlustarError(.invalidArgument, "\(name) is too large for cpio (4 GiB)")
            }
            entries += 1
        }
        let inode = counted ? nextInode : 0
        if counted { nextInode += 1 }
        let nameBytes = Array(name.utf8) + [0]
        var header = "070701"
        for field in [
            inode, UInt32(mode), uid, gid, nlink, mtime, UInt32(size), 0, 0, rdev.0, rdev.1, UInt32(nameBytes.count), 0,
        ] {
            header += String(format: "%08X", field)
        }
        try out.write(Array(header.utf8) + nameBytes)
        try pad(110 + nameBytes.count)
    }

    /// glibc's encoding of a device number into major and minor.
    static func split(_ dev: UInt64) -> (UInt32, UInt32) {
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfff)
        let minor = (dev & 0xff) | ((dev >> 12) & ~0xff)
        return (UInt32(truncatingIfNeeded: major), UInt32(truncatingIfNeeded: minor))
    }

    private func pad(_ length: Int) throws(QlustarError) {
        let rest = (4 - length % 4) % 4
        if rest > 0 { try out.write([UInt8](repeating: 0, count: rest)) }
    }

    private func copyContent(of path: String, size: Int) throws(QlustarError) {
        let fd = try FileSystem.openForReading(path)
        defer { Posix.close(fd) }
        // One buffer for the whole file: an initrd's binaries are tens of MB.
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var done = 0
        while done < size {
            let want = min(buffer.count, size - done)
            let n = try FileSystem.at("cannot read", path) { () throws(SystemCallError) in
                try buffer.withUnsafeMutableBytes { b in
                    Result { () throws(SystemCallError) in
                        try Posix.read(fd, into: UnsafeMutableRawBufferPointer(rebasing: b[..<want]))
                    }
                }.get()
            }
            guard n > 0 else { throw QlustarError(.io, "\(path) changed size while being archived") }
            let result = buffer.withUnsafeBytes { b in
                Result { () throws(QlustarError) in try out.write(UnsafeRawBufferPointer(rebasing: b[0..<n])) }
            }
            try result.get()
            done += n
        }
    }
}
