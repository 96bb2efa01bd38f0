import Platform

#if canImport(Glibc)
    import Glibc
#endif

/// A directory tree written as if it were `/`: every path is resolved with `openat2`
/// `RESOLVE_IN_ROOT`, so an absolute symbolic link or `..` in the tree (the node image's own
/// `/lib -> usr/lib`, or a link a customization planted) resolves inside the tree and nothing
/// is ever written outside it. Files are written to a temporary name, synced and renamed; owner,
/// group and mode are set explicitly on the new file before the rename.
///
/// The file operations of configure, on the POSIX fence (`Posix`), each failing with an error
/// naming the path inside the tree.
final class RootedTree {
    let root: String
    private let rootFD: Int32
    /// Owners can be set only as root; otherwise they are left and reported once.
    private let canChown = geteuid() == 0
    /// Directories already resolved (a plan writes many files into few directories). An entry
    /// placed at a path (a link or a directory that replaced a link) drops what lies below it.
    private var directories: [String: Int32] = [:]
    /// Directories a file was renamed into since they were last synced: synced once each by
    /// `syncDirectories()` (or before their descriptor is dropped), not once per file.
    private var unsynced: Set<String> = []

    init(root: String) throws(QlustarError) {
        try FileSystem.makeDirectories(root)
        self.root = root
        rootFD = try FileSystem.at("cannot open", root) { () throws(SystemCallError) in
            try Posix.open(root, Posix.pathOnly | O_DIRECTORY)
        }
    }

    deinit {
        directories.values.forEach { Posix.close($0) }
        Posix.close(rootFD)
    }

    /// A descriptor (O_PATH, owned by the cache) of the directory `path`, creating missing
    /// components with mode 0755, owned by root.
    func directory(_ path: String) throws(QlustarError) -> Int32 {
        if let fd = directories[path] { return fd }
        let fd = try resolve(path)
        directories[path] = fd
        return fd
    }

    /// Syncs every directory a file was renamed into, so the new names survive a crash.
    func syncDirectories() throws(QlustarError) {
        for path in unsynced.sorted() {
            if let fd = directories[path] { try FileSystem.syncDirectory(fd, shownAs: shown(path)) }
        }
        unsynced.removeAll()
    }

    /// Forgets resolved directories at and below `path` (something new was placed there),
    /// syncing those that still need it first.
    private func invalidate(_ path: String) {
        for (key, fd) in directories where key == path || key.hasPrefix(path + "/") {
            if unsynced.remove(key) != nil { try? FileSystem.syncDirectory(fd, shownAs: shown(key)) }
            Posix.close(fd)
            directories[key] = nil
        }
    }

    /// Opens the directory `path` inside the tree, creating what is missing component by component.
    private func resolve(_ path: String) throws(QlustarError) -> Int32 {
        var current = "/"
        var fd = try openInRoot(current)
        for part in path.split(separator: "/") {
            let next = current == "/" ? "/" + part : current + "/" + part
            do {
                let child = try Posix.openInRoot(rootFD, next, Posix.pathOnly | O_DIRECTORY)
                Posix.close(fd)
                fd = child
                current = next
                continue
            } catch  where error.errno == ENOENT {
                do { try Posix.mkdirat(fd, String(part), 0o755) } catch  where error.errno == EEXIST {
                } catch {
                    Posix.close(fd)
                    throw failure("cannot create directory", next, error)
                }
            } catch {
                Posix.close(fd)
                throw failure("cannot open directory", next, error)
            }
            Posix.close(fd)
            fd = try openInRoot(next)
            current = next
        }
        return fd
    }

    private func openInRoot(_ path: String) throws(QlustarError) -> Int32 {
        do { return try Posix.openInRoot(rootFD, path, Posix.pathOnly | O_DIRECTORY) } catch {
            throw failure("cannot open directory", path, error)
        }
    }

    /// Writes `bytes` to `path` atomically with the given owner and mode.
    func writeFile(_ path: String, _ bytes: [UInt8], mode: UInt32, uid: UInt32, gid: UInt32) throws(QlustarError)
        -> Bool
    {
        let (dir, name) = try parent(path)
        let temporary = ".\(name).qluman.\(getpid())"
        let fd: Int32
        do { fd = try Posix.openat(dir, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600) } catch {
            throw failure("cannot create", path, error)
        }
        var chowned = true
        do {
            try bytes.withUnsafeBytes { b in Result { () throws(SystemCallError) in try Posix.writeAll(fd, b) } }.get()
            do { try Posix.fchown(fd, uid, gid) } catch  where !canChown { chowned = false }
            try Posix.fchmod(fd, mode_t(mode))
        } catch {
            Posix.close(fd)
            try? Posix.unlinkat(dir, temporary)
            throw failure("cannot write", path, error)
        }
        try FileSystem.commit(
            fd, renaming: temporary, at: dir, to: name, in: dir, shownAs: shown(path), syncingDirectory: false)
        unsynced.insert(parentPath(path))
        return chowned
    }

    /// The content, mode and owner of the file `path` (resolved inside the tree), nil when it
    /// does not exist.
    func readFile(_ path: String, limit: Int = 1 << 20) throws(QlustarError) -> (
        bytes: [UInt8], mode: UInt32, uid: UInt32, gid: UInt32
    )? {
        let fd: Int32
        do { fd = try Posix.openInRoot(rootFD, path, O_RDONLY) } catch  where error.errno == ENOENT {
            return nil
        } catch { throw failure("cannot open", path, error) }
        defer { Posix.close(fd) }
        let st = try FileSystem.at("cannot stat", shown(path)) { () throws(SystemCallError) in try Posix.fstat(fd) }
        guard st.st_mode & S_IFMT == S_IFREG, st.st_size <= limit else {
            throw QlustarError(.io, "\(shown(path)) is not a regular file of at most \(limit) bytes")
        }
        let bytes = try FileSystem.read(fd, upTo: Int(st.st_size), path: shown(path))
        guard bytes.count == Int(st.st_size) else { throw QlustarError(.io, "\(shown(path)) shrank while it was read") }
        return (bytes, UInt32(st.st_mode & 0o7777), st.st_uid, st.st_gid)
    }

    /// Creates (or keeps) the directory `path` and sets its owner and mode. An existing symbolic
    /// link in its place is kept (resolved inside the tree), its target left as it is.
    func makeDirectory(_ path: String, mode: UInt32, uid: UInt32, gid: UInt32) throws(QlustarError) -> Bool {
        if path == "/" { return true }
        let (dir, name) = try parent(path)
        invalidate(path)
        do { try Posix.mkdirat(dir, name, 0o700) } catch  where error.errno == EEXIST {
            let st: stat
            do { st = try Posix.fstatat(dir, name, AT_SYMLINK_NOFOLLOW) } catch {
                throw failure("cannot stat", path, error)
            }
            if st.st_mode & S_IFMT == S_IFLNK { return true }
            guard st.st_mode & S_IFMT == S_IFDIR else {
                throw QlustarError(.io, "\(root)\(path) exists and is not a directory")
            }
        } catch { throw failure("cannot create directory", path, error) }
        var chowned = true
        do { try Posix.fchownat(dir, name, uid, gid) } catch  where !canChown { chowned = false } catch {
            throw failure("cannot set the owner of", path, error)
        }
        do { try Posix.fchmodat(dir, name, mode_t(mode)) } catch {
            throw failure("cannot set the mode of", path, error)
        }
        return chowned
    }

    /// Creates or replaces the symbolic link `path` → `target` (the link itself, never what it points to).
    func makeSymlink(_ path: String, target: String, uid: UInt32, gid: UInt32) throws(QlustarError) -> Bool {
        let (dir, name) = try parent(path)
        invalidate(path)
        let temporary = ".\(name).qluman.\(getpid())"
        try? Posix.unlinkat(dir, temporary)
        do { try Posix.symlinkat(target, dir, temporary) } catch {
            throw failure("cannot create the link", path, error)
        }
        var chowned = true
        do { try Posix.fchownat(dir, temporary, uid, gid) } catch  where !canChown { chowned = false } catch {
            try? Posix.unlinkat(dir, temporary)
            throw failure("cannot set the owner of", path, error)
        }
        do { try Posix.renameat(dir, temporary, dir, name) } catch {
            try? Posix.unlinkat(dir, temporary)
            throw failure("cannot place the link", path, error)
        }
        unsynced.insert(parentPath(path))
        return chowned
    }

    /// The directory `parent` resolves for `path` (the key of its descriptor).
    private func parentPath(_ path: String) -> String {
        "/" + path.split(separator: "/").dropLast().joined(separator: "/")
    }

    private func parent(_ path: String) throws(QlustarError) -> (Int32, String) {
        var parts = path.split(separator: "/").map(String.init)
        guard path.hasPrefix("/"), let name = parts.popLast(), !parts.contains(".."), name != "..", name != "." else {
            throw QlustarError(.invalidArgument, "\(path) is not an absolute path inside the tree")
        }
        return (try directory("/" + parts.joined(separator: "/")), name)
    }

    /// `path` as the administrator finds it: below the tree's root.
    private func shown(_ path: String) -> String { (root == "/" ? "" : root) + path }

    private func failure(_ what: String, _ path: String, _ error: SystemCallError) -> QlustarError {
        FileSystem.error(what, shown(path), error.errno)
    }
}
