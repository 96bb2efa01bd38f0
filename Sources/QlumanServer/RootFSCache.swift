import Foundation
import Logging
import NIOConcurrencyHelpers
import NodeConfig
import Platform
import Transport

#if canImport(Glibc)
    import Glibc
#endif

/// The Root FS Customization archives qlumand hands out, built once per version of a tree.
///
/// A tree's version is a digest of every entry's path, type, owner, mode, size and times
/// (lstat): a change anywhere in the tree rebuilds its archive; otherwise hundreds of booting
/// nodes share one archive in memory. The tree is looked at again at most once a second (a
/// walk of a 1,000-file tree costs about a millisecond, which 500 nodes booting at once would
/// pay 500 times): an edit reaches the nodes that configure a second later.
final class RootFSCache: Sendable {
    static let recheckNanos: UInt64 = 1_000_000_000

    private struct Entry {
        var version: SHA256Digest
        var checked: UInt64
        var archive: RootFSArchive
    }

    private let root: Root
    private let log: Logger
    private let cache = NIOLockedValueBox<[String: Entry]>([:])
    private let built = NIOLockedValueBox<UInt64>(0)

    init(root: Root, log: Logger) {
        self.root = root
        self.log = log
    }

    var archivesBuilt: UInt64 { built.withLockedValue { $0 } }

    static func treePath(_ root: Root, _ name: String) -> String { root.path("/var/lib/qlustar/root-fs/\(name)") }

    /// The archive of the customization `name`.
    /// - Throws: `.notFound` when its tree is missing; `.invalidArgument` when the tree holds
    ///   something that cannot go to a node (a device, a link written through).
    func archive(_ name: String) throws(QlustarError) -> RootFSArchive {
        let tree = Self.treePath(root, name)
        guard FileSystem.isDirectory(tree) else {
            throw QlustarError(.notFound, "Root FS Customization \(name) has no tree at \(tree)")
        }
        let now = MonotonicClock.nanoseconds()
        if let hit = cache.withLockedValue({ $0[name] }), now - hit.checked < Self.recheckNanos { return hit.archive }
        let version = try Self.version(of: tree)
        if let hit = cache.withLockedValue({ $0[name] }), hit.version == version {
            cache.withLockedValue { $0[name]?.checked = now }
            return hit.archive
        }
        // Packed outside the lock; two racing builds of one version give equal archives.
        let archive = try RootFSArchive.pack(name: name, tree: tree, scratch: root.path("/var/cache/qlustar/qlumand"))
        _ = try archive.entries(origin: "root-fs \(name)")
        cache.withLockedValue { $0[name] = Entry(version: version, checked: now, archive: archive) }
        built.withLockedValue { $0 += 1 }
        log.info(
            "Root FS Customization \(name): archive rebuilt (\(archive.bytes.count) bytes, sha256 \(archive.sha256.prefix(16)))"
        )
        return archive
    }

    /// The digest of the tree's listing (paths, types, owners, modes, sizes, times).
    static func version(of tree: String) throws(QlustarError) -> SHA256Digest {
        let hash = SHA256()
        var pending = [""]
        while let relative = pending.popLast() {
            let dir = relative.isEmpty ? tree : tree + "/" + relative
            let children = try FileSystem.list(dir)
            for child in children.sorted() {
                let name = relative.isEmpty ? child : relative + "/" + child
                let st = try FileSystem.status(tree + "/" + name, followingLinks: false)
                let line =
                    "\(name)\u{0}\(st.st_mode) \(st.st_uid) \(st.st_gid) \(st.st_size) \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec) \(st.st_ctim.tv_sec).\(st.st_ctim.tv_nsec) \(st.st_ino)\n"
                Array(line.utf8).withUnsafeBytes { hash.update($0) }
                if st.st_mode & S_IFMT == S_IFDIR { pending.append(name) }
            }
        }
        return hash.finalize()
    }
}
