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

/// The file-system calls of the image service, in one place: each returns a value or throws a
/// `QlustarError` naming the path and errno's text.
package enum FileSystem {
    package static func error(_ what: String, _ path: String, _ code: Int32 = errno) -> QlustarError {
        QlustarError(.io, "\(what) \(path): \(String(cString: strerror(code)))")
    }

    /// The identity of the file at `path`, or nil when it does not exist.
    package static func identity(of path: String) throws(QlustarError) -> FileIdentity? {
        var st = stat()
        guard stat(path, &st) == 0 else {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw error("cannot stat", path)
        }
        return identity(st)
    }

    /// The identity of an open file (what was actually opened, not what the name points to now).
    package static func identity(descriptor fd: Int32, path: String) throws(QlustarError) -> FileIdentity {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw error("cannot stat", path) }
        return identity(st)
    }

    private static func identity(_ st: stat) -> FileIdentity {
        FileIdentity(
            device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: UInt64(st.st_size),
            modifiedNanos: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec),
            changedNanos: Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec))
    }

    package static func isRegularFile(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    package static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// Creates `path` and its missing parents with `mode`.
    package static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(QlustarError) {
        var prefix = ""
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += "/" + part
            if mkdir(prefix, mode) != 0, errno != EEXIST { throw error("cannot create directory", prefix) }
        }
        guard isDirectory(path.isEmpty ? "/" : path) else { throw QlustarError(.io, "\(path) exists and is not a directory") }
    }

    /// Writes `bytes` to `path` atomically: a temporary file beside it (unique to this call),
    /// then `commit` (fsync, rename, fsync of the directory). Readers see the old content or the
    /// new, never a part, also after a crash.
    package static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws(QlustarError) {
        let temporary = path + ".tmp.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw error("cannot create", temporary) }
        guard fchmod(fd, mode) == 0, writeAll(fd, bytes) else {
            let failure = error("cannot write", path)
            close(fd)
            unlink(temporary)
            throw failure
        }
        try commit(fd, temporary, to: path)
    }

    /// Writes all of `bytes` to `fd` (retrying short writes and EINTR); false with errno set on failure.
    package static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { writeAll(fd, $0) }
    }

    /// Writes all of `bytes` to `fd` (retrying short writes and EINTR); false with errno set on failure.
    package static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var written = 0
        while written < bytes.count {
            let n = write(fd, bytes.baseAddress! + written, bytes.count - written)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            written += n
        }
        return true
    }

    /// Renames `from` to `to` and syncs the directory that holds `to`, so the new name survives
    /// a crash (a rename alone may be lost with the directory's unwritten block).
    package static func rename(_ from: String, to: String) throws(QlustarError) {
        guard Glibc.rename(from, to) == 0 else { throw error("cannot rename to \(to):", from) }
        try syncDirectory(of: to)
    }

    /// Syncs the directory holding `path` (its entries: a rename or a new file in it).
    package static func syncDirectory(of path: String) throws(QlustarError) {
        let slash = path.lastIndex(of: "/")
        let parent = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw error("cannot open the directory of", path) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw error("cannot sync the directory of", path) }
    }

    /// Publishes a file written by someone else (a tool we ran) under `temporary`: syncs its
    /// bytes, renames it to `path` and syncs the directory — the one routine for every file a
    /// reader may take as complete (images, initrds, kernels, provisioning files).
    /// On failure the temporary file is removed.
    /// With `mode`, the file gets it first (a tool's output has the umask's).
    package static func publish(_ temporary: String, to path: String, mode: mode_t? = nil) throws(QlustarError) {
        let fd = open(temporary, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let failure = error("cannot open", temporary)
            unlink(temporary)
            throw failure
        }
        if let mode, fchmod(fd, mode) != 0 {
            let failure = error("cannot set the mode of", temporary)
            close(fd)
            unlink(temporary)
            throw failure
        }
        try commit(fd, temporary, to: path)
    }

    package static func remove(_ path: String) { unlink(path) }

    /// Ends a file written under a temporary name: syncs and closes `fd`, then renames
    /// `temporary` to `path` and syncs the directory; on any failure the temporary file is removed.
    package static func commit(_ fd: Int32, _ temporary: String, to path: String) throws(QlustarError) {
        let slash = path.lastIndex(of: "/")
        let parent = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let dir = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dir >= 0 else {
            let failure = error("cannot open the directory of", path)
            close(fd)
            unlink(temporary)
            throw failure
        }
        defer { close(dir) }
        try commit(fd, renaming: temporary, to: name, in: dir, shownAs: path)
    }

    /// The one publish routine, for every file a reader may take as complete: syncs and closes
    /// `fd` (the temporary file's), renames `temporary` (relative to `fromDirectory`, the working
    /// directory by default) to `name` in the directory `dir`, and syncs that directory, so the
    /// new name survives a crash. On any failure the temporary file is removed. `path` is how
    /// errors name the file.
    package static func commit(
        _ fd: Int32, renaming temporary: String, at fromDirectory: Int32 = AT_FDCWD, to name: String, in dir: Int32,
        shownAs path: String
    ) throws(QlustarError) {
        let synced = fsync(fd) == 0
        let code = errno
        close(fd)
        guard synced else {
            unlinkat(fromDirectory, temporary, 0)
            throw error("cannot sync", path, code)
        }
        guard renameat(fromDirectory, temporary, dir, name) == 0 else {
            let failure = error("cannot rename into place", path)
            unlinkat(fromDirectory, temporary, 0)
            throw failure
        }
        try syncDirectory(dir, shownAs: path)
    }

    /// Syncs the directory `dir` (an `O_PATH` descriptor too: it is reopened for reading).
    package static func syncDirectory(_ dir: Int32, shownAs path: String) throws(QlustarError) {
        let readable = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard readable >= 0 else { throw error("cannot open the directory of", path) }
        defer { close(readable) }
        guard fsync(readable) == 0 else { throw error("cannot sync the directory of", path) }
    }

    /// The first `count` bytes of `path` (fewer when the file is shorter).
    package static func readPrefix(_ path: String, count: Int) throws(QlustarError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw error("cannot open", path) }
        defer { close(fd) }
        var out = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let n = out.withUnsafeMutableBytes { read(fd, $0.baseAddress! + filled, count - filled) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw error("cannot read", path) }
            if n == 0 { break }
            filled += n
        }
        return Array(out[0..<filled])
    }

    package static func readFile(_ path: String, limit: Int) throws(QlustarError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw error("cannot open", path) }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw error("cannot read", path) }
            if n == 0 { return out }
            out += chunk[0..<n]
            guard out.count <= limit else { throw QlustarError(.io, "\(path) is larger than \(limit) bytes") }
        }
    }
}
