import ImageTools
import Platform
import Transport

#if canImport(Glibc)
    import Glibc
#endif

/// One Root FS Customization tree as it travels to a node: a gzip-compressed `newc` cpio
/// archive of `/var/lib/qlustar/root-fs/<name>` that keeps every entry's owner, group and mode,
/// symbolic links and empty directories (numeric ids, as the cluster shares them).
public struct RootFSArchive: Sendable, Equatable {
    public static let maxUnpackedSize = 512 << 20

    public let name: String
    public let bytes: [UInt8]
    /// The archive's SHA-256 (hex), computed once.
    public let sha256: String

    public init(name: String, bytes: [UInt8]) {
        self.name = name
        self.bytes = bytes
        sha256 = bytes.withUnsafeBytes { SHA256.hash($0) }.description
    }

    public var reference: NodeOptions.RootFSReference { .init(name: name, size: bytes.count, sha256: sha256) }

    /// Archives the tree `source` (through a temporary file in `scratch`).
    /// - Throws: `.io` naming what cannot be read.
    public static func pack(name: String, tree source: String, scratch: String) throws(QlustarError) -> RootFSArchive {
        try FileSystem.makeDirectories(scratch)
        // Unique per pack: two nodes' first configures may pack the same tree at once.
        let path = scratch + "/root-fs-\(name).\(getpid()).\(UInt64.random(in: 0...UInt64.max)).cpio.gz"
        let gzip = try GzipWriter(path: path, level: 1, mode: 0o600)
        let cpio = CPIOWriter(writingTo: gzip)
        try cpio.addTree(source)
        try cpio.finish()
        defer { FileSystem.remove(path) }
        return RootFSArchive(name: name, bytes: try FileSystem.readFile(path, limit: maxUnpackedSize))
    }

    /// The plan entries of this tree, rooted at the node's `/`.
    /// - Throws: `.integrity` for a corrupt archive; `.invalidArgument` for an entry whose name is
    ///   absolute or has `..`, a device or other special file, or one that sits below a symbolic
    ///   link of the same tree (a link pointing out, then written through).
    public func entries(origin: String) throws(QlustarError) -> [FilePlan.Entry] {
        let raw = try CPIOReader.entries(try GzipReader.inflate(bytes, limit: Self.maxUnpackedSize))
        var links = Set<String>()
        var out: [FilePlan.Entry] = []
        for e in raw {
            let parts = e.name.split(separator: "/", omittingEmptySubsequences: false)
            guard !e.name.isEmpty, !e.name.hasPrefix("/"),
                !parts.contains(where: { $0.isEmpty || $0 == ".." || $0 == "." })
            else {
                throw refused("entry \(ImageName.quoted(e.name)) leaves the tree (absolute, '..' or empty component)")
            }
            for depth in 1..<max(parts.count, 1) where links.contains(parts[0..<depth].joined(separator: "/")) {
                throw refused(
                    "\(e.name) lies below the tree's own symbolic link \(parts[0..<depth].joined(separator: "/"))")
            }
            let path = "/" + e.name
            let perm = e.mode & 0o7777
            switch e.type {
            case UInt32(S_IFDIR):
                out.append(.init(path: path, content: .directory, mode: perm, uid: e.uid, gid: e.gid, origin: origin))
            case UInt32(S_IFREG):
                out.append(
                    .init(path: path, content: .file(e.data), mode: perm, uid: e.uid, gid: e.gid, origin: origin))
            case UInt32(S_IFLNK):
                let target = String(decoding: e.data, as: UTF8.self)
                guard !target.isEmpty, !e.data.contains(0) else {
                    throw refused("symbolic link \(e.name) has no target")
                }
                links.insert(e.name)
                out.append(
                    .init(path: path, content: .symlink(target), mode: 0o777, uid: e.uid, gid: e.gid, origin: origin))
            default:
                throw refused("\(e.name) is not a directory, file or symbolic link")
            }
        }
        return out
    }

    private func refused(_ what: String) -> QlustarError {
        QlustarError(.invalidArgument, "Root FS Customization \(name): \(what); nothing of it is written")
    }
}
