import CQLSys

#if canImport(Glibc)
    import Glibc
#endif

/// A failed system call: the call's name and errno. Each layer above turns it into its own
/// error, naming the thing (`FileSystem`: the path; the engine: `TransportError(.systemCall)`).
public struct SystemCallError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The call, as in its man page (`openat2`, `setsockopt(SO_RCVBUF)`).
    public let call: String
    public let errno: Int32

    public init(_ call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    /// errno's text (`No such file or directory`).
    public var text: String { String(cString: strerror(errno)) }
    public var description: String { "\(call): \(text)" }
}

/// The POSIX fence: every system call of the project goes through here or through a wrapper
/// built on `check` (the engine's `SystemCalls`), after swift-nio's `System.swift`.
///
/// Each wrapper retries `EINTR`, throws a `SystemCallError` carrying errno and the call's name,
/// and traps on programmer errors (`EBADF`, `EFAULT`: a descriptor or pointer of ours is wrong —
/// a bug, not a condition to handle). `check` alone reports `EAGAIN` as `nil` for callers that
/// poll. Nothing here takes a path relative to anything but what the caller passes: confinement
/// (`openInRoot`) is explicit.
public enum Posix {
    /// Runs `body` (a system call returning -1 with errno on failure) until it is not
    /// interrupted. - Returns: Its result, or nil for `EAGAIN`/`EWOULDBLOCK`.
    @inlinable @inline(__always)
    public static func check<T: BinaryInteger>(_ name: StaticString, _ body: () -> T) throws(SystemCallError) -> T? {
        while true {
            let r = body()
            if r >= 0 { return r }
            let e = Glibc.errno
            switch e {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return nil
            case EBADF, EFAULT: preconditionFailure("\(name): \(String(cString: strerror(e))) — a bug in ql-mcast")
            default: throw SystemCallError("\(name)", errno: e)
            }
        }
    }

    /// Like `check`, for calls where `EAGAIN` is itself an error.
    @inlinable @inline(__always)
    public static func must<T: BinaryInteger>(_ name: StaticString, _ body: () -> T) throws(SystemCallError) -> T {
        guard let r = try check(name, body) else { throw SystemCallError("\(name)", errno: EAGAIN) }
        return r
    }

    // MARK: - Descriptors

    /// open(2); `O_CLOEXEC` is always added.
    public static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0) throws(SystemCallError) -> Int32 {
        try must("open") { Glibc.open(path, flags | O_CLOEXEC, mode) }
    }

    /// openat(2) relative to the directory `dir`; `O_CLOEXEC` is always added.
    public static func openat(_ dir: Int32, _ path: String, _ flags: Int32, _ mode: mode_t = 0) throws(SystemCallError)
        -> Int32
    {
        try must("openat") { Glibc.openat(dir, path, flags | O_CLOEXEC, mode) }
    }

    /// openat2(2) with `RESOLVE_IN_ROOT`: `path` (absolute links and `..` included) resolves
    /// inside the tree `root` names, never outside it. `O_CLOEXEC` is always added.
    public static func openInRoot(_ root: Int32, _ path: String, _ flags: Int32, _ mode: mode_t = 0)
        throws(SystemCallError) -> Int32
    {
        try must("openat2") { qlsys_open_in_root(root, path, flags | O_CLOEXEC, UInt32(mode)) }
    }

    /// `O_PATH` (glibc hides it behind `_GNU_SOURCE`): a descriptor that only names a place.
    public static let pathOnly: Int32 = QLSYS_O_PATH

    /// close(2). Errors are ignored: after close the descriptor is gone whatever it says
    /// (retrying an interrupted close could close a descriptor another thread just got).
    public static func close(_ fd: Int32) { _ = Glibc.close(fd) }

    /// read(2) into `buffer`. - Returns: Bytes read, 0 at the end of the file.
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(SystemCallError) -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        return try must("read") { Glibc.read(fd, base, buffer.count) }
    }

    /// pread(2) until `buffer` is full or the file ends. - Returns: Bytes read.
    public static func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int)
        throws(SystemCallError) -> Int
    {
        guard let base = buffer.baseAddress else { return 0 }
        var done = 0
        while done < buffer.count {
            let n = try must("pread") { Glibc.pread(fd, base + done, buffer.count - done, off_t(offset + done)) }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// write(2) of all of `bytes`, retrying short writes.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(SystemCallError) {
        guard let base = bytes.baseAddress else { return }
        var written = 0
        while written < bytes.count {
            written += try must("write") { Glibc.write(fd, base + written, bytes.count - written) }
        }
    }

    public static func fsync(_ fd: Int32) throws(SystemCallError) { _ = try must("fsync") { Glibc.fsync(fd) } }

    public static func ftruncate(_ fd: Int32, _ size: Int) throws(SystemCallError) {
        _ = try must("ftruncate") { Glibc.ftruncate(fd, off_t(size)) }
    }

    public static func dup(_ fd: Int32) throws(SystemCallError) -> Int32 { try must("dup") { Glibc.dup(fd) } }

    /// flock(2): `LOCK_EX`, `LOCK_SH`, `LOCK_UN` (waits; interrupted waits are retried).
    public static func flock(_ fd: Int32, _ operation: Int32) throws(SystemCallError) {
        _ = try must("flock") { systemFlock(fd, operation) }
    }

    // MARK: - Metadata

    public static func fstat(_ fd: Int32) throws(SystemCallError) -> Glibc.stat {
        var st = Glibc.stat()
        _ = try must("fstat") { Glibc.fstat(fd, &st) }
        return st
    }

    /// stat(2), following links.
    public static func stat(_ path: String) throws(SystemCallError) -> Glibc.stat {
        var st = Glibc.stat()
        _ = try must("stat") { systemStat(path, &st) }
        return st
    }

    /// lstat(2): the link itself, not what it points to.
    public static func lstat(_ path: String) throws(SystemCallError) -> Glibc.stat {
        var st = Glibc.stat()
        _ = try must("lstat") { Glibc.lstat(path, &st) }
        return st
    }

    /// fstatat(2) of `name` in `dir` (`AT_SYMLINK_NOFOLLOW` for the link itself).
    public static func fstatat(_ dir: Int32, _ name: String, _ flags: Int32) throws(SystemCallError) -> Glibc.stat {
        var st = Glibc.stat()
        _ = try must("fstatat") { Glibc.fstatat(dir, name, &st, flags) }
        return st
    }

    /// readlink(2): the target of the link at `path`.
    public static func readlink(_ path: String) throws(SystemCallError) -> String {
        var target = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = try must("readlink") { Glibc.readlink(path, &target, target.count - 1) }
        return String(decoding: target[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public static func fchmod(_ fd: Int32, _ mode: mode_t) throws(SystemCallError) {
        _ = try must("fchmod") { Glibc.fchmod(fd, mode) }
    }

    public static func chmod(_ path: String, _ mode: mode_t) throws(SystemCallError) {
        _ = try must("chmod") { Glibc.chmod(path, mode) }
    }

    public static func fchmodat(_ dir: Int32, _ name: String, _ mode: mode_t) throws(SystemCallError) {
        _ = try must("fchmodat") { Glibc.fchmodat(dir, name, mode, 0) }
    }

    public static func fchown(_ fd: Int32, _ uid: uid_t, _ gid: gid_t) throws(SystemCallError) {
        _ = try must("fchown") { Glibc.fchown(fd, uid, gid) }
    }

    public static func chown(_ path: String, _ uid: uid_t, _ gid: gid_t) throws(SystemCallError) {
        _ = try must("chown") { Glibc.chown(path, uid, gid) }
    }

    /// fchownat(2) of the entry itself (`AT_SYMLINK_NOFOLLOW`): a link's owner, never its target's.
    public static func fchownat(_ dir: Int32, _ name: String, _ uid: uid_t, _ gid: gid_t) throws(SystemCallError) {
        _ = try must("fchownat") { Glibc.fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW) }
    }

    /// access(2): whether this process may `mode` (`R_OK`, `W_OK`, `X_OK`) the file at `path`.
    public static func isAccessible(_ path: String, _ mode: Int32) -> Bool { Glibc.access(path, mode) == 0 }

    /// The names in the directory `path` (without `.` and `..`), in the order the directory
    /// gives them.
    public static func listDirectory(_ path: String) throws(SystemCallError) -> [String] {
        guard let dir = opendir(path) else { throw SystemCallError("opendir", errno: Glibc.errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while true {
            Glibc.errno = 0
            guard let entry = readdir(dir) else {
                if Glibc.errno != 0 { throw SystemCallError("readdir", errno: Glibc.errno) }
                return names
            }
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
    }

    // MARK: - Names

    public static func mkdir(_ path: String, _ mode: mode_t) throws(SystemCallError) {
        _ = try must("mkdir") { Glibc.mkdir(path, mode) }
    }

    public static func mkdirat(_ dir: Int32, _ name: String, _ mode: mode_t) throws(SystemCallError) {
        _ = try must("mkdirat") { Glibc.mkdirat(dir, name, mode) }
    }

    public static func rename(_ from: String, _ to: String) throws(SystemCallError) {
        _ = try must("rename") { Glibc.rename(from, to) }
    }

    public static func renameat(_ fromDir: Int32, _ from: String, _ toDir: Int32, _ to: String) throws(SystemCallError)
    {
        _ = try must("renameat") { Glibc.renameat(fromDir, from, toDir, to) }
    }

    public static func unlink(_ path: String) throws(SystemCallError) { _ = try must("unlink") { Glibc.unlink(path) } }

    /// unlinkat(2); `AT_REMOVEDIR` in `flags` for a directory.
    public static func unlinkat(_ dir: Int32, _ name: String, _ flags: Int32 = 0) throws(SystemCallError) {
        _ = try must("unlinkat") { Glibc.unlinkat(dir, name, flags) }
    }

    public static func symlink(_ target: String, _ path: String) throws(SystemCallError) {
        _ = try must("symlink") { Glibc.symlink(target, path) }
    }

    public static func symlinkat(_ target: String, _ dir: Int32, _ name: String) throws(SystemCallError) {
        _ = try must("symlinkat") { Glibc.symlinkat(target, dir, name) }
    }

    // MARK: - Sockets (what the tools need beside the engine's own, in `SystemCalls`)

    /// A UDP socket (`SOCK_CLOEXEC`; `SOCK_NONBLOCK` when asked).
    public static func udpSocket(nonBlocking: Bool = false) throws(SystemCallError) -> Int32 {
        let type =
            Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
            | (nonBlocking ? Int32(SOCK_NONBLOCK.rawValue) : 0)
        return try must("socket") { socket(AF_INET, type, 0) }
    }

    /// setsockopt(2) of one value; `what` names the option in errors (`setsockopt(SO_RCVTIMEO)`).
    public static func setOption<T>(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: T, _ what: StaticString)
        throws(SystemCallError)
    {
        _ = try must(what) {
            withUnsafeBytes(of: value) { setsockopt(fd, level, name, $0.baseAddress, socklen_t($0.count)) }
        }
    }

    /// connect(2) to an IPv4 address (on a UDP socket: sends nothing, picks the route and source).
    public static func connect(_ fd: Int32, _ address: sockaddr_in) throws(SystemCallError) {
        var a = address
        _ = try must("connect") {
            withUnsafePointer(to: &a) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
    }

    /// getsockname(2): the socket's own IPv4 address and port.
    public static func localAddress(_ fd: Int32) throws(SystemCallError) -> sockaddr_in {
        var local = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = try must("getsockname") {
            withUnsafeMutablePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
        }
        return local
    }

    /// send(2) on a connected socket. - Returns: Bytes sent.
    public static func send(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(SystemCallError) -> Int {
        try must("send") { Glibc.send(fd, bytes.baseAddress, bytes.count, 0) }
    }

    /// recv(2) into `buffer`. - Returns: Bytes received, nil when the socket's receive timeout
    /// (`SO_RCVTIMEO`) passed or it is non-blocking and empty.
    public static func receive(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(SystemCallError) -> Int?
    {
        try check("recv") { recv(fd, buffer.baseAddress, buffer.count, 0) }
    }

    /// poll(2) of one descriptor. - Returns: Whether one of `events` (`POLLIN`, …) is there
    /// before `timeoutMillis` passes.
    public static func poll(_ fd: Int32, _ events: Int16, timeoutMillis: Int32) throws(SystemCallError) -> Bool {
        var p = pollfd(fd: fd, events: events, revents: 0)
        return try must("poll") { Glibc.poll(&p, 1, timeoutMillis) } > 0
    }

    // MARK: - Time

    /// Sets the wall clock (`CLOCK_REALTIME`); needs `CAP_SYS_TIME`.
    public static func setWallClock(_ time: timespec) throws(SystemCallError) {
        var t = time
        _ = try must("clock_settime") { clock_settime(CLOCK_REALTIME, &t) }
    }

    // MARK: - Processes

    /// Where a child's standard descriptor comes from (`spawn`).
    public enum Standard: Sendable, Equatable {
        /// This process' own.
        case inherit
        /// /dev/null.
        case null
        /// A descriptor of ours (a pipe end, an open file).
        case descriptor(Int32)

        var raw: Int32 {
            switch self {
            case .inherit: return QLSYS_SPAWN_INHERIT
            case .null: return QLSYS_SPAWN_NULL
            case .descriptor(let fd): return fd
            }
        }
    }

    /// posix_spawn(3): starts `program` (searched on PATH without a `/`) with `arguments` (the
    /// program's name first is added here) and `environment` (`NAME=value`), signals at their
    /// defaults, in `directory` and a process group of its own when asked.
    /// - Returns: The child's pid.
    public static func spawn(
        _ program: String, _ arguments: [String], environment: [String], directory: String?,
        input: Standard, output: Standard, error: Standard, newProcessGroup: Bool
    ) throws(SystemCallError) -> pid_t {
        func cStrings(_ strings: [String]) -> [UnsafeMutablePointer<CChar>?] { strings.map { strdup($0) } + [nil] }
        let argv = cStrings([program] + arguments)
        let envp = cStrings(environment)
        defer { (argv + envp).forEach { free($0) } }
        var pid: Int32 = 0
        let rc = directory.withOptionalCString { dir in
            qlsys_spawn(&pid, program, argv, envp, input.raw, output.raw, error.raw, dir, newProcessGroup ? 1 : 0)
        }
        guard rc == 0 else { throw SystemCallError("posix_spawn \(program)", errno: rc) }
        return pid
    }

    /// How a child ended.
    public enum Termination: Sendable, Equatable, CustomStringConvertible {
        case exited(Int32)
        case signalled(Int32)

        public var succeeded: Bool { self == .exited(0) }
        public var description: String {
            switch self {
            case .exited(let status): return status == 0 ? "ok" : "exit \(status)"
            case .signalled(let signal): return "killed by signal \(signal)"
            }
        }
    }

    /// waitpid(2) for `pid`: its end, or nil while it runs when `block` is false.
    public static func wait(_ pid: pid_t, block: Bool = true) throws(SystemCallError) -> Termination? {
        var status: Int32 = 0
        let r = try must("waitpid") { waitpid(pid, &status, block ? 0 : WNOHANG) }
        guard r == pid else { return nil }
        // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import (macros).
        let signal = status & 0x7f
        return signal == 0 ? .exited((status >> 8) & 0xff) : .signalled(signal)
    }

    /// pipe2(2) with `O_CLOEXEC`: (read end, write end).
    public static func pipe() throws(SystemCallError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        _ = try must("pipe2") { qlsys_pipe_cloexec(&fds) }
        return (fds[0], fds[1])
    }

    /// Makes reads and writes on `fd` return `EAGAIN` instead of waiting.
    public static func setNonBlocking(_ fd: Int32) throws(SystemCallError) {
        let flags = try must("fcntl(F_GETFL)") { fcntl(fd, F_GETFL) }
        _ = try must("fcntl(F_SETFL)") { fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
    }

    /// kill(2). `ESRCH` (no such process) is an error like any other; callers decide.
    public static func kill(_ pid: pid_t, _ signal: Int32) throws(SystemCallError) {
        _ = try must("kill") { Glibc.kill(pid, signal) }
    }
}

// The calls whose names the fence's own methods (and the types `stat`, `flock`) shadow inside `Posix`.
private func systemStat(_ path: String, _ st: inout stat) -> Int32 { stat(path, &st) }
private func systemFlock(_ fd: Int32, _ operation: Int32) -> Int32 { flock(fd, operation) }

extension Optional where Wrapped == String {
    /// `body` with a C string, or with nil.
    fileprivate func withOptionalCString<R>(_ body: (UnsafePointer<CChar>?) -> R) -> R {
        switch self {
        case .some(let s): return s.withCString { body($0) }
        case .none: return body(nil)
        }
    }
}
