#if canImport(Glibc)
    import Glibc
#endif

/// What identifies one version of a file: a replaced or rewritten image differs in at least
/// one of these (an atomic publish changes the inode; an edit in place changes size or times).
public struct FileIdentity: Sendable, Hashable, Codable {
    public var device: UInt64
    public var inode: UInt64
    public var size: UInt64
    public var modifiedNanos: Int64
    public var changedNanos: Int64
}

/// The file operations of the tools, named by path, on the POSIX fence (`Posix`): each returns
/// a value or throws a `QlustarError(.io)` naming the path and errno's text. The one atomic
/// publish (`commit`) lives here: write to a temporary name, fsync, rename, fsync the directory.
package enum FileSystem {
    package static func error(_ what: String, _ path: String, _ code: Int32 = errno) -> QlustarError {
        QlustarError(.io, "\(what) \(path): \(String(cString: strerror(code)))")
    }

    /// Runs one or more `Posix` calls on `path`; a failure becomes "`what` `path`: errno's text".
    @inline(__always)
    package static func at<T>(_ what: String, _ path: String, _ body: () throws(SystemCallError) -> T)
        throws(QlustarError) -> T
    {
        do { return try body() } catch { throw FileSystem.error(what, path, error.errno) }
    }

    /// The identity of the file at `path`, or nil when it does not exist.
    package static func identity(of path: String) throws(QlustarError) -> FileIdentity? {
        do { return identity(try Posix.stat(path)) } catch  where error.errno == ENOENT || error.errno == ENOTDIR {
            return nil
        } catch { throw FileSystem.error("cannot stat", path, error.errno) }
    }

    /// The identity of an open file (what was actually opened, not what the name points to now).
    package static func identity(descriptor fd: Int32, path: String) throws(QlustarError) -> FileIdentity {
        identity(try at("cannot stat", path) { () throws(SystemCallError) in try Posix.fstat(fd) })
    }

    private static func identity(_ st: stat) -> FileIdentity {
        FileIdentity(
            device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: UInt64(st.st_size),
            modifiedNanos: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec),
            changedNanos: Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec))
    }

    /// stat(2) of `path` (lstat(2) with `followingLinks: false`: a link itself).
    package static func status(_ path: String, followingLinks: Bool = true) throws(QlustarError) -> stat {
        try at("cannot stat", path) { () throws(SystemCallError) in
            followingLinks ? try Posix.stat(path) : try Posix.lstat(path)
        }
    }

    /// The target of the symbolic link at `path`.
    package static func linkTarget(_ path: String) throws(QlustarError) -> String {
        try at("cannot read the link", path) { () throws(SystemCallError) in try Posix.readlink(path) }
    }

    /// Opens `path` for reading.
    package static func openForReading(_ path: String) throws(QlustarError) -> Int32 {
        try at("cannot open", path) { () throws(SystemCallError) in try Posix.open(path, O_RDONLY) }
    }

    /// Creates (or truncates) `path` for writing with `mode`: the temporary file a writer fills
    /// before `commit` publishes it.
    package static func create(_ path: String, mode: mode_t) throws(QlustarError) -> Int32 {
        try at("cannot create", path) { () throws(SystemCallError) in
            try Posix.open(path, O_WRONLY | O_CREAT | O_TRUNC, mode)
        }
    }

    /// Closes a temporary file that will not be published and removes it.
    package static func discard(_ fd: Int32, _ temporary: String) {
        Posix.close(fd)
        remove(temporary)
    }

    /// Sets the owner and group of `path` (following links).
    package static func setOwner(_ path: String, uid: uid_t, gid: gid_t) throws(QlustarError) {
        try at("cannot set the owner of", path) { () throws(SystemCallError) in try Posix.chown(path, uid, gid) }
    }

    /// Sets the mode of `path` (following links).
    package static func setMode(_ path: String, _ mode: mode_t) throws(QlustarError) {
        try at("cannot set the mode of", path) { () throws(SystemCallError) in try Posix.chmod(path, mode) }
    }

    /// Deletes the file or link `path` (never a directory).
    package static func delete(_ path: String) throws(QlustarError) {
        try at("cannot delete", path) { () throws(SystemCallError) in try Posix.unlink(path) }
    }

    /// Creates the symbolic link `path` → `target`.
    package static func makeSymlink(_ path: String, to target: String) throws(QlustarError) {
        try at("cannot create the link", path) { () throws(SystemCallError) in try Posix.symlink(target, path) }
    }

    /// The names in the directory `path` (without `.` and `..`), unsorted.
    package static func list(_ path: String) throws(QlustarError) -> [String] {
        try at("cannot list", path) { () throws(SystemCallError) in try Posix.listDirectory(path) }
    }

    /// Whether something is at `path`; with `followingLinks: false` a dangling link counts too.
    package static func exists(_ path: String, followingLinks: Bool = true) -> Bool {
        (try? status(path, followingLinks: followingLinks)) != nil
    }

    /// Removes `path` and, for a directory, everything below it (links are removed, never
    /// followed). Nothing there is not an error.
    package static func removeTree(_ path: String) throws(QlustarError) {
        let st: stat
        do { st = try Posix.lstat(path) } catch  where error.errno == ENOENT { return } catch {
            throw FileSystem.error("cannot stat", path, error.errno)
        }
        if st.st_mode & S_IFMT == S_IFDIR {
            for name in try list(path) { try removeTree(path + "/" + name) }
            try at("cannot remove the directory", path) { () throws(SystemCallError) in
                try Posix.unlinkat(AT_FDCWD, path, AT_REMOVEDIR)
            }
        } else {
            try delete(path)
        }
    }

    /// The file type bits (`S_IFREG`, `S_IFDIR`, …) of `path`, following links; nil when it cannot be stat'ed.
    private static func type(_ path: String) -> mode_t? {
        (try? Posix.stat(path)).map { $0.st_mode & S_IFMT }
    }

    package static func isRegularFile(_ path: String) -> Bool { type(path) == S_IFREG }

    package static func isDirectory(_ path: String) -> Bool { type(path) == S_IFDIR }

    /// A regular file this process may run.
    package static func isExecutableFile(_ path: String) -> Bool {
        isRegularFile(path) && Posix.isAccessible(path, X_OK)
    }

    /// Creates `path` and its missing parents with `mode`.
    package static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(QlustarError) {
        var prefix = ""
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += "/" + part
            do { try Posix.mkdir(prefix, mode) } catch  where error.errno == EEXIST {
            } catch { throw FileSystem.error("cannot create directory", prefix, error.errno) }
        }
        guard isDirectory(path.isEmpty ? "/" : path) else {
            throw QlustarError(.io, "\(path) exists and is not a directory")
        }
    }

    /// Writes `bytes` to `path` atomically: a temporary file beside it (unique to this call),
    /// then `commit` (fsync, rename, fsync of the directory). Readers see the old content or the
    /// new, never a part, also after a crash.
    package static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws(QlustarError) {
        let temporary = path + ".tmp.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        let fd = try at("cannot create", temporary) { () throws(SystemCallError) in
            try Posix.open(temporary, O_WRONLY | O_CREAT | O_EXCL, mode)
        }
        do {
            try Posix.fchmod(fd, mode)
            try bytes.withUnsafeBytes { b in Result { () throws(SystemCallError) in try Posix.writeAll(fd, b) } }.get()
        } catch {
            Posix.close(fd)
            try? Posix.unlink(temporary)
            throw FileSystem.error("cannot write", path, error.errno)
        }
        try commit(fd, temporary, to: path)
    }

    /// Writes all of `bytes` to `fd` (retrying short writes and EINTR); false with errno set on failure.
    package static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { writeAll(fd, $0) }
    }

    /// Writes all of `bytes` to `fd` (retrying short writes and EINTR); false with errno set on failure.
    package static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        do {
            try Posix.writeAll(fd, bytes)
            return true
        } catch {
            errno = error.errno
            return false
        }
    }

    /// Renames `from` to `to` and syncs the directory that holds `to`, so the new name survives
    /// a crash (a rename alone may be lost with the directory's unwritten block).
    package static func rename(_ from: String, to: String) throws(QlustarError) {
        try at("cannot rename to \(to):", from) { () throws(SystemCallError) in try Posix.rename(from, to) }
        try syncDirectory(of: to)
    }

    /// Splits `path` into its directory (`/` or `.` where it has none) and its last component.
    private static func split(_ path: String) -> (parent: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        return (path.parentPath, String(path[path.index(after: slash)...]))
    }

    /// Syncs the directory holding `path` (its entries: a rename or a new file in it).
    package static func syncDirectory(of path: String) throws(QlustarError) {
        let fd = try at("cannot open the directory of", path) { () throws(SystemCallError) in
            try Posix.open(split(path).parent, O_RDONLY | O_DIRECTORY)
        }
        defer { Posix.close(fd) }
        try at("cannot sync the directory of", path) { () throws(SystemCallError) in try Posix.fsync(fd) }
    }

    /// Publishes a file written by someone else (a tool we ran) under `temporary`: syncs its
    /// bytes, renames it to `path` and syncs the directory — the one routine for every file a
    /// reader may take as complete (images, initrds, kernels, provisioning files).
    /// On failure the temporary file is removed.
    /// With `mode`, the file gets it first (a tool's output has the umask's).
    package static func publish(_ temporary: String, to path: String, mode: mode_t? = nil) throws(QlustarError) {
        let fd: Int32
        do { fd = try Posix.open(temporary, O_RDONLY) } catch {
            try? Posix.unlink(temporary)
            throw FileSystem.error("cannot open", temporary, error.errno)
        }
        if let mode {
            do { try Posix.fchmod(fd, mode) } catch {
                Posix.close(fd)
                try? Posix.unlink(temporary)
                throw FileSystem.error("cannot set the mode of", temporary, error.errno)
            }
        }
        try commit(fd, temporary, to: path)
    }

    /// Removes `path` if it is there (a leftover temporary file, a file being replaced).
    package static func remove(_ path: String) { try? Posix.unlink(path) }

    /// Ends a file written under a temporary name: syncs and closes `fd`, then renames
    /// `temporary` to `path` and syncs the directory; on any failure the temporary file is removed.
    package static func commit(_ fd: Int32, _ temporary: String, to path: String) throws(QlustarError) {
        let (parent, name) = split(path)
        let dir: Int32
        do { dir = try Posix.open(parent, O_RDONLY | O_DIRECTORY) } catch {
            Posix.close(fd)
            try? Posix.unlink(temporary)
            throw FileSystem.error("cannot open the directory of", path, error.errno)
        }
        defer { Posix.close(dir) }
        try commit(fd, renaming: temporary, to: name, in: dir, shownAs: path)
    }

    /// The one publish routine, for every file a reader may take as complete: syncs and closes
    /// `fd` (the temporary file's), renames `temporary` (relative to `fromDirectory`, the working
    /// directory by default) to `name` in the directory `dir`, and syncs that directory, so the
    /// new name survives a crash. On any failure the temporary file is removed. `path` is how
    /// errors name the file. A writer of many files into few directories passes
    /// `syncingDirectory: false` and syncs each directory once when it is done (`RootedTree`).
    package static func commit(
        _ fd: Int32, renaming temporary: String, at fromDirectory: Int32 = AT_FDCWD, to name: String, in dir: Int32,
        shownAs path: String, syncingDirectory: Bool = true
    ) throws(QlustarError) {
        do {
            defer { Posix.close(fd) }
            try Posix.fsync(fd)
        } catch {
            try? Posix.unlinkat(fromDirectory, temporary)
            throw FileSystem.error("cannot sync", path, error.errno)
        }
        do { try Posix.renameat(fromDirectory, temporary, dir, name) } catch {
            try? Posix.unlinkat(fromDirectory, temporary)
            throw FileSystem.error("cannot rename into place", path, error.errno)
        }
        if syncingDirectory { try syncDirectory(dir, shownAs: path) }
    }

    /// Syncs the directory `dir` (an `O_PATH` descriptor too: it is reopened for reading).
    package static func syncDirectory(_ dir: Int32, shownAs path: String) throws(QlustarError) {
        let readable = try at("cannot open the directory of", path) { () throws(SystemCallError) in
            try Posix.openat(dir, ".", O_RDONLY | O_DIRECTORY)
        }
        defer { Posix.close(readable) }
        try at("cannot sync the directory of", path) { () throws(SystemCallError) in try Posix.fsync(readable) }
    }

    /// Reads `fd` until `count` bytes or the end of the file, in steps of at most 64 KiB (a
    /// large bound costs nothing for a small file). - Returns: What was read.
    package static func read(_ fd: Int32, upTo count: Int, path: String) throws(QlustarError) -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: min(count, 65_536))
        while out.count < count {
            let want = min(chunk.count, count - out.count)
            let n = try at("cannot read", path) { () throws(SystemCallError) in
                try chunk.withUnsafeMutableBytes { b in
                    Result { () throws(SystemCallError) in
                        try Posix.read(fd, into: UnsafeMutableRawBufferPointer(rebasing: b[..<want]))
                    }
                }.get()
            }
            if n == 0 { break }
            out += chunk[0..<n]
        }
        return out
    }

    /// The first `count` bytes of `path` (fewer when the file is shorter).
    package static func readPrefix(_ path: String, count: Int) throws(QlustarError) -> [UInt8] {
        let fd = try openForReading(path)
        defer { Posix.close(fd) }
        return try read(fd, upTo: count, path: path)
    }

    /// All of `path`, refused when it is larger than `limit` bytes (a hostile or runaway file).
    package static func readFile(_ path: String, limit: Int) throws(QlustarError) -> [UInt8] {
        let fd = try openForReading(path)
        defer { Posix.close(fd) }
        let bytes = try read(fd, upTo: min(limit, Int.max - 1) + 1, path: path)
        guard bytes.count <= limit else { throw QlustarError(.io, "\(path) is larger than \(limit) bytes") }
        return bytes
    }
}
