#if canImport(Glibc)
    import Glibc
#endif
import CQLSys
import Platform

/// A directory tree written as if it were `/`: every path is resolved with `openat2`
/// `RESOLVE_IN_ROOT`, so an absolute symbolic link or `..` in the tree (the node image's own
/// `/lib -> usr/lib`, or a link a customization planted) resolves inside the tree and nothing
/// is ever written outside it. Files are written to a temporary name, synced and renamed; owner,
/// group and mode are set explicitly on the new file before the rename.
///
/// The file-system calls of configure live here, each failing with an error naming the path.
final class RootedTree {
    let root: String
    private let rootFD: Int32
    /// Owners can be set only as root; otherwise they are left and reported once.
    private let canChown = geteuid() == 0
    /// Directories already resolved (a plan writes many files into few directories). An entry
    /// placed at a path (a link or a directory that replaced a link) drops what lies below it.
    private var directories: [String: Int32] = [:]

    init(root: String) throws(QlustarError) {
        try FileSystem.makeDirectories(root)
        self.root = root
        rootFD = open(root, QLSYS_O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard rootFD >= 0 else { throw FileSystem.error("cannot open", root) }
    }

    deinit {
        directories.values.forEach { close($0) }
        close(rootFD)
    }

    /// A descriptor (O_PATH, owned by the cache) of the directory `path`, creating missing
    /// components with mode 0755, owned by root.
    func directory(_ path: String) throws(QlustarError) -> Int32 {
        if let fd = directories[path] { return fd }
        let fd = try resolve(path)
        directories[path] = fd
        return fd
    }

    /// Forgets resolved directories at and below `path` (something new was placed there).
    private func invalidate(_ path: String) {
        for (key, fd) in directories where key == path || key.hasPrefix(path + "/") {
            close(fd)
            directories[key] = nil
        }
    }

    private func resolve(_ path: String) throws(QlustarError) -> Int32 {
        var current = "/"
        var fd = try openInRoot(current)
        for part in path.split(separator: "/") {
            let next = current == "/" ? "/" + part : current + "/" + part
            let child = qlsys_open_in_root(rootFD, next, QLSYS_O_PATH | O_DIRECTORY | O_CLOEXEC, 0)
            if child < 0 && errno == ENOENT {
                guard mkdirat(fd, String(part), 0o755) == 0 || errno == EEXIST else {
                    defer { close(fd) }
                    throw failure("cannot create directory", next)
                }
            } else if child >= 0 {
                close(fd)
                fd = child
                current = next
                continue
            } else {
                defer { close(fd) }
                throw failure("cannot open directory", next)
            }
            close(fd)
            fd = try openInRoot(next)
            current = next
        }
        return fd
    }

    private func openInRoot(_ path: String) throws(QlustarError) -> Int32 {
        let fd = qlsys_open_in_root(rootFD, path, QLSYS_O_PATH | O_DIRECTORY | O_CLOEXEC, 0)
        guard fd >= 0 else { throw failure("cannot open directory", path) }
        return fd
    }

    /// Writes `bytes` to `path` atomically with the given owner and mode.
    func writeFile(_ path: String, _ bytes: [UInt8], mode: UInt32, uid: UInt32, gid: UInt32) throws(QlustarError) -> Bool {
        let (dir, name) = try parent(path)
        let temporary = ".\(name).qluman.\(getpid())"
        let fd = openat(dir, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw failure("cannot create", path) }
        var ok = FileSystem.writeAll(fd, bytes)
        var chowned = true
        if ok, fchown(fd, uid, gid) != 0 {
            if canChown { ok = false } else { chowned = false }
        }
        ok = ok && fchmod(fd, mode_t(mode)) == 0
        guard ok else {
            let error = failure("cannot write", path)
            close(fd)
            unlinkat(dir, temporary, 0)
            throw error
        }
        try FileSystem.commit(fd, renaming: temporary, at: dir, to: name, in: dir, shownAs: (root == "/" ? "" : root) + path)
        return chowned
    }

    /// The content, mode and owner of the file `path` (resolved inside the tree), nil when it
    /// does not exist.
    func readFile(_ path: String, limit: Int = 1 << 20) throws(QlustarError) -> (bytes: [UInt8], mode: UInt32, uid: UInt32, gid: UInt32)? {
        let fd = qlsys_open_in_root(rootFD, path, O_RDONLY | O_CLOEXEC, 0)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw failure("cannot open", path)
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_size <= limit else {
            throw QlustarError(.io, "\(root == "/" ? "" : root)\(path) is not a regular file of at most \(limit) bytes")
        }
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
        var got = 0
        while got < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, $0.count - got) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw failure("cannot read", path) }
            got += n
        }
        return (bytes, UInt32(st.st_mode & 0o7777), st.st_uid, st.st_gid)
    }

    /// Creates (or keeps) the directory `path` and sets its owner and mode. An existing symbolic
    /// link in its place is kept (resolved inside the tree), its target left as it is.
    func makeDirectory(_ path: String, mode: UInt32, uid: UInt32, gid: UInt32) throws(QlustarError) -> Bool {
        if path == "/" { return true }
        let (dir, name) = try parent(path)
        invalidate(path)
        if mkdirat(dir, name, 0o700) != 0 {
            guard errno == EEXIST else { throw failure("cannot create directory", path) }
            var st = stat()
            guard fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { throw failure("cannot stat", path) }
            if st.st_mode & S_IFMT == S_IFLNK { return true }
            guard st.st_mode & S_IFMT == S_IFDIR else { throw QlustarError(.io, "\(root)\(path) exists and is not a directory") }
        }
        var chowned = true
        if fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW) != 0 {
            if canChown { throw failure("cannot set the owner of", path) }
            chowned = false
        }
        guard fchmodat(dir, name, mode_t(mode), 0) == 0 else { throw failure("cannot set the mode of", path) }
        return chowned
    }

    /// Creates or replaces the symbolic link `path` → `target` (the link itself, never what it points to).
    func makeSymlink(_ path: String, target: String, uid: UInt32, gid: UInt32) throws(QlustarError) -> Bool {
        let (dir, name) = try parent(path)
        invalidate(path)
        let temporary = ".\(name).qluman.\(getpid())"
        unlinkat(dir, temporary, 0)
        guard symlinkat(target, dir, temporary) == 0 else { throw failure("cannot create the link", path) }
        var chowned = true
        if fchownat(dir, temporary, uid, gid, AT_SYMLINK_NOFOLLOW) != 0 {
            if canChown {
                unlinkat(dir, temporary, 0)
                throw failure("cannot set the owner of", path)
            }
            chowned = false
        }
        guard renameat(dir, temporary, dir, name) == 0 else {
            let error = failure("cannot place the link", path)
            unlinkat(dir, temporary, 0)
            throw error
        }
        try FileSystem.syncDirectory(dir, shownAs: (root == "/" ? "" : root) + path)
        return chowned
    }

    private func parent(_ path: String) throws(QlustarError) -> (Int32, String) {
        var parts = path.split(separator: "/").map(String.init)
        guard path.hasPrefix("/"), let name = parts.popLast(), !parts.contains(".."), name != "..", name != "." else {
            throw QlustarError(.invalidArgument, "\(path) is not an absolute path inside the tree")
        }
        return (try directory("/" + parts.joined(separator: "/")), name)
    }

    private func failure(_ what: String, _ path: String, _ code: Int32 = errno) -> QlustarError {
        QlustarError(.io, "\(what) \(root == "/" ? "" : root)\(path): \(String(cString: strerror(code)))")
    }
}
