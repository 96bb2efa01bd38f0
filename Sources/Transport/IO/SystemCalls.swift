import CQLSys
import Platform

#if canImport(Glibc)
    import Glibc
#endif

/// The engine's system calls: sockets, batches, mappings, memfds — thin wrappers on the
/// project's POSIX fence (`Posix.check`: `EINTR` retried, `EAGAIN`/`EWOULDBLOCK` as `nil` where
/// the caller polls, `EBADF`/`EFAULT` trap as bugs), throwing `TransportError(.systemCall)` with
/// errno and the call's name.
enum SystemCalls {
    @inline(__always)
    static func check<T: BinaryInteger>(_ name: StaticString, _ body: () -> T) throws(TransportError) -> T? {
        do { return try Posix.check(name, body) } catch { throw TransportError(error) }
    }

    /// Like `check`, for calls where EAGAIN is itself an error.
    @inline(__always)
    static func must<T: BinaryInteger>(_ name: StaticString, _ body: () -> T) throws(TransportError) -> T {
        do { return try Posix.must(name, body) } catch { throw TransportError(error) }
    }

    static func udpSocket() throws(TransportError) -> Int32 {
        try must("socket") {
            socket(
                AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
    }

    static func setOption<T>(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: T, _ what: StaticString)
        throws(TransportError)
    {
        _ = try must(what) {
            withUnsafeBytes(of: value) { setsockopt(fd, level, name, $0.baseAddress, socklen_t($0.count)) }
        }
    }

    static func bind(_ fd: Int32, _ address: sockaddr_in) throws(TransportError) {
        var a = address
        _ = try must("bind") {
            withUnsafePointer(to: &a) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
    }

    /// sendmmsg(2). Returns messages sent, or nil when the socket buffer is full.
    static func sendmmsg(_ fd: Int32, _ msgs: UnsafeMutablePointer<qlsys_mmsghdr>, _ n: Int) throws(TransportError)
        -> Int?
    {
        try check("sendmmsg") { qlsys_sendmmsg(fd, msgs, UInt32(n), 0) }.map(Int.init)
    }

    /// recvmmsg(2), non-blocking. Returns messages received, or nil when none is waiting.
    static func recvmmsg(_ fd: Int32, _ msgs: UnsafeMutablePointer<qlsys_mmsghdr>, _ n: Int) throws(TransportError)
        -> Int?
    {
        try check("recvmmsg") { qlsys_recvmmsg(fd, msgs, UInt32(n), Int32(MSG_DONTWAIT)) }.map(Int.init)
    }

    /// Empties a socket's error queue (`IP_RECVERR`: what ICMP and the host reported about
    /// earlier sends), at most `limit` entries. Returns how many it took.
    static func drainErrorQueue(_ fd: Int32, limit: Int = 256) -> Int {
        var buffer = [UInt8](repeating: 0, count: 512)
        var taken = 0
        while taken < limit {
            let r = buffer.withUnsafeMutableBytes { b in
                Glibc.recv(fd, b.baseAddress, b.count, Int32(MSG_ERRQUEUE) | Int32(MSG_DONTWAIT))
            }
            if r < 0 { break }
            taken += 1
        }
        return taken
    }

    /// sendto(2) of one datagram. Returns false when the socket buffer is full.
    static func sendto(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, _ to: sockaddr_in) throws(TransportError) -> Bool {
        var a = to
        return try check("sendto") {
            withUnsafePointer(to: &a) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.sendto(fd, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        } != nil
    }

    /// Waits until `fd` is readable or `timeoutNanos` passes. Returns true when readable.
    static func waitReadable(_ fd: Int32, timeoutNanos: UInt64) throws(TransportError) -> Bool {
        let r = try check("ppoll") { qlsys_wait_readable(fd, timeoutNanos) } ?? 0
        return r > 0
    }

    /// Waits (at most `timeoutMillis`) until `fd` has room to send.
    static func waitWritable(_ fd: Int32, timeoutMillis: Int32) throws(TransportError) {
        do { _ = try Posix.poll(fd, Int16(POLLOUT), timeoutMillis: timeoutMillis) } catch {
            throw TransportError(error)
        }
    }

    static func close(_ fd: Int32) { _ = Glibc.close(fd) }

    static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0o644) throws(TransportError) -> Int32 {
        do { return try must("open") { Glibc.open(path, flags | O_CLOEXEC, mode) } } catch {
            throw TransportError(
                .io, "cannot open \(path): \(String(cString: strerror(error.errno ?? 0)))", errno: error.errno)
        }
    }

    static func fileSize(_ fd: Int32) throws(TransportError) -> Int {
        var st = stat()
        _ = try must("fstat") { fstat(fd, &st) }
        return Int(st.st_size)
    }

    static func ftruncate(_ fd: Int32, _ size: Int) throws(TransportError) {
        _ = try must("ftruncate") { Glibc.ftruncate(fd, off_t(size)) }
    }

    static func fsync(_ fd: Int32) throws(TransportError) {
        _ = try must("fsync") { Glibc.fsync(fd) }
    }

    static func mmap(_ fd: Int32, _ size: Int, writable: Bool) throws(TransportError) -> UnsafeMutableRawPointer {
        let prot = writable ? (PROT_READ | PROT_WRITE) : PROT_READ
        let flags = fd < 0 ? (MAP_PRIVATE | MAP_ANONYMOUS) : MAP_SHARED
        guard let p = Glibc.mmap(nil, size, prot, flags, fd, 0), p != MAP_FAILED else {
            throw TransportError(
                .systemCall, "mmap of \(size) bytes: \(String(cString: strerror(errno)))", errno: errno)
        }
        return p
    }

    static func munmap(_ p: UnsafeMutableRawPointer, _ size: Int) { _ = Glibc.munmap(p, size) }

    /// Reads `count` bytes at `offset` into `buffer` (retrying short reads and EINTR).
    /// - Returns: The bytes read (less than `count` only at the end of the file).
    static func pread(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int, offset: Int) throws(TransportError)
        -> Int
    {
        var done = 0
        while done < count {
            guard let n = try check("pread", { Glibc.pread(fd, buffer + done, count - done, off_t(offset + done)) })
            else { continue }
            if n == 0 { break }
            done += Int(n)
        }
        return done
    }

    /// A second descriptor for the same open file (its owner may close the first meanwhile).
    static func dup(_ fd: Int32) throws(TransportError) -> Int32 {
        try must("dup") { Glibc.dup(fd) }
    }

    /// Copies `count` bytes from the start of `source` to the current offset of `target` in the
    /// kernel (sendfile(2)), retrying short copies and EINTR.
    /// - Returns: The bytes copied (less than `count` only when `source` ended early).
    static func copyFile(from source: Int32, to target: Int32, count: Int) throws(TransportError) -> Int {
        var offset = off_t(0)
        var done = 0
        while done < count {
            let step = min(count - done, 1 << 30)
            guard let n = try check("sendfile", { Glibc.sendfile(target, source, &offset, step) }) else { continue }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// An anonymous memory file (memfd) that can be sealed.
    static func memfd(_ name: String) throws(TransportError) -> Int32 {
        try must("memfd_create") { qlsys_memfd(name) }
    }

    /// Seals a memfd: its size and bytes never change again (no writable mapping may exist).
    static func sealAll(_ fd: Int32) throws(TransportError) {
        _ = try must("fcntl(F_ADD_SEALS)") { qlsys_seal_all(fd) }
    }

    static func madviseSequential(_ p: UnsafeMutableRawPointer, _ size: Int) {
        _ = Glibc.madvise(p, size, MADV_SEQUENTIAL)
    }
}
