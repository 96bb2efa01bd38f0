import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// A program the tools run: started with `posix_spawn` (through the fence), waited with
/// `waitpid`, its pipes read with `poll` — no run loop, no threads, nothing that needs a
/// loopback interface (Foundation's `Process` wakes its run loop through sockets on 127.0.0.1
/// and hung in an initrd whose `lo` was down: docs/PROVISIONING.md).
package final class Subprocess {
    /// Where the child's standard output or error goes.
    package enum Output: Sendable, Equatable {
        /// This process' own (a terminal, the journal).
        case inherit
        case null
        /// A pipe the caller reads (`collect`, `readAvailable`).
        case pipe
        /// A file, created or truncated (mode 0644).
        case file(String)
        /// Standard error only: where standard output goes.
        case sameAsOutput
    }

    package let pid: pid_t
    package let program: String
    /// The read end of the output pipe (`.pipe`), non-blocking.
    package private(set) var output: Int32 = -1
    /// The read end of the error pipe (`.pipe`), non-blocking.
    package private(set) var errors: Int32 = -1
    private let ownGroup: Bool
    private var ended: Posix.Termination?

    /// Starts `program` (absolute, or searched on PATH) with `arguments`.
    /// - Parameters:
    ///   - environment: The child's environment; nil for ours. `adding` is set on top.
    ///   - directory: Its working directory (ours when nil).
    ///   - input: `false` gives it /dev/null, `true` ours (interactive).
    ///   - newProcessGroup: Its own process group, so `kill` reaches what it started too.
    /// - Throws: `QlustarError(.io)` naming the program when it cannot be started.
    package init(
        _ program: String, _ arguments: [String], environment: [String: String]? = nil, adding: [String: String] = [:],
        directory: String? = nil, input: Bool = false, output: Output = .pipe, errors: Output = .pipe,
        newProcessGroup: Bool = true
    ) throws(QlustarError) {
        self.program = program
        ownGroup = newProcessGroup
        var env = environment ?? ProcessInfo.processInfo.environment
        for (k, v) in adding { env[k] = v }
        // What the child gets, and what we close once it has it.
        var childEnds: [Int32] = []
        defer { childEnds.forEach(Posix.close) }
        var readEnds: [Int32] = []
        func standard(_ o: Output, shared: Posix.Standard?) throws(QlustarError) -> Posix.Standard {
            switch o {
            case .inherit: return .inherit
            case .null: return .null
            case .sameAsOutput: return shared ?? .inherit
            case .file(let path):
                let fd = try FileSystem.create(path, mode: 0o644)
                childEnds.append(fd)
                return .descriptor(fd)
            case .pipe:
                let p = try FileSystem.at("cannot make a pipe for", program) { () throws(SystemCallError) in
                    try Posix.pipe()
                }
                childEnds.append(p.write)
                readEnds.append(p.read)
                try FileSystem.at("cannot make a pipe for", program) { () throws(SystemCallError) in
                    try Posix.setNonBlocking(p.read)
                }
                return .descriptor(p.write)
            }
        }
        do {
            let out = try standard(output, shared: nil)
            if output == .pipe { self.output = readEnds[0] }
            let err = try standard(errors, shared: out)
            if errors == .pipe { self.errors = readEnds.last! }
            pid = try FileSystem.at("cannot run", program) { () throws(SystemCallError) in
                try Posix.spawn(
                    program, arguments, environment: env.map { "\($0.key)=\($0.value)" }.sorted(), directory: directory,
                    input: input ? .inherit : .null, output: out, error: err, newProcessGroup: newProcessGroup)
            }
        } catch {
            readEnds.forEach(Posix.close)
            throw error
        }
    }

    deinit {
        if output >= 0 { Posix.close(output) }
        if errors >= 0 { Posix.close(errors) }
        // Never leave a zombie: a child still running is killed and reaped.
        if ended == nil {
            kill()
            _ = wait()
        }
    }

    /// The child's end, nil while it runs.
    package func poll() -> Posix.Termination? {
        if ended == nil { ended = (try? Posix.wait(pid, block: false)) ?? nil }
        return ended
    }

    /// Waits for the child's end.
    package func wait() -> Posix.Termination {
        while ended == nil {
            do { ended = try Posix.wait(pid) } catch {
                // ECHILD: someone else reaped it (cannot happen with our own children).
                ended = .exited(-1)
            }
        }
        return ended!
    }

    /// Waits at most `seconds` for the child's end (polled every 5 ms). - Returns: nil on timeout.
    package func wait(seconds: Double) -> Posix.Termination? {
        let deadline = MonotonicClock.nanoseconds() &+ UInt64(max(0, min(seconds, 1e7)) * 1e9)
        while poll() == nil {
            if MonotonicClock.nanoseconds() >= deadline { return nil }
            usleep(5_000)
        }
        return ended
    }

    /// Sends `signal` to the child (and its process group when it has its own).
    package func kill(_ signal: Int32 = SIGKILL) {
        guard ended == nil else { return }
        if ownGroup { try? Posix.kill(-pid, signal) }
        try? Posix.kill(pid, signal)
    }

    /// What the output pipe holds now: bytes, empty when nothing is waiting, nil at its end.
    package func readAvailable() -> [UInt8]? { Self.drain(&output) }

    /// What the error pipe holds now: bytes, empty when nothing is waiting, nil at its end.
    package func readAvailableErrors() -> [UInt8]? { Self.drain(&errors) }

    /// Reads both pipes to their ends (waiting with poll, so a full pipe never blocks the
    /// child), keeping at most `limit` bytes of each, then waits for the child.
    package func collect(limit: Int = 64 << 20) -> (output: [UInt8], errors: [UInt8], termination: Posix.Termination) {
        var out: [UInt8] = []
        var err: [UInt8] = []
        while output >= 0 || errors >= 0 {
            let fds = [output, errors].filter { $0 >= 0 }
            var polls = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            _ = Glibc.poll(&polls, nfds_t(polls.count), 1_000)
            if let chunk = Self.drain(&output) { if out.count < limit { out += chunk.prefix(limit - out.count) } }
            if let chunk = Self.drain(&errors) { if err.count < limit { err += chunk.prefix(limit - err.count) } }
        }
        return (out, err, wait())
    }

    /// Reads what `fd` holds now; at its end closes it and sets it to -1, returning nil.
    private static func drain(_ fd: inout Int32) -> [UInt8]? {
        guard fd >= 0 else { return nil }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let r = chunk.withUnsafeMutableBytes { b in
                Result { () throws(SystemCallError) in
                    try Posix.check("read") { Glibc.read(fd, b.baseAddress, b.count) }
                }
            }
            switch r {
            case .success(nil): return bytes  // nothing more now
            case .success(let n?) where n > 0: bytes += chunk[0..<n]
            default:  // end of the pipe, or an error on it: the same for the reader
                Posix.close(fd)
                fd = -1
                return bytes.isEmpty ? nil : bytes
            }
        }
    }

    /// Runs `program` to completion and returns its standard output.
    /// - Parameter code: The error code for a failure (the caller's domain: `.io`, `.union`…).
    /// - Throws: `code`, naming the step, with the program's exit status and the end of what it
    ///   wrote to standard error.
    @discardableResult
    package static func run(
        _ program: String, _ arguments: [String], step: String, code: QlustarError.Code = .io
    ) throws(QlustarError) -> String {
        let child: Subprocess
        do { child = try Subprocess(program, arguments) } catch {
            throw QlustarError(code, "cannot \(step): \(error.message)")
        }
        let (out, err, end) = child.collect()
        guard end.succeeded else {
            let text = String(decoding: err, as: UTF8.self).trimmed
            let how: String
            switch end {
            case .exited(let status): how = "exited \(status)"
            case .signalled(let signal): how = "was killed by signal \(signal)"
            }
            throw QlustarError(code, "cannot \(step): \(program) \(how): \(text.suffix(500))")
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The first executable of `candidates`, else the last one's base name (found on PATH).
    package static func locate(_ candidates: [String]) -> String {
        candidates.first { FileSystem.isExecutableFile($0) }
            ?? (candidates.last.map { String($0.split(separator: "/").last ?? "") } ?? "")
    }
}
