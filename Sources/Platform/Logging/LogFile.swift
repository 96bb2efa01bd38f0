import FoundationEssentials
import NIOConcurrencyHelpers

#if canImport(Glibc)
    import Glibc
#endif

/// A tool's log file, `<root>/var/log/qlustar/<name>.log` (where the administrator looks, per
/// the boot reference): timestamped lines appended with `O_APPEND`, one per event. One object per
/// path in the process, shared by every `Logger` that writes there; `reopen()` (SIGHUP, after
/// logrotate moved the file) starts a new file under the same name.
///
/// `Sendable`: the descriptor is replaced and written only under the lock.
public final class LogFile: Sendable {
    public let path: String
    private let state: NIOLockedValueBox<(fd: Int32, failure: String?)>

    private static let open = NIOLockedValueBox<[String: LogFile]>([:])

    /// The log file at `path`, opened (created 0640, its directory too) on first use.
    public static func shared(_ path: String) -> LogFile {
        open.withLockedValue { files in
            if let f = files[path] { return f }
            let f = LogFile(path: path)
            files[path] = f
            return f
        }
    }

    /// Reopens every log file of the process (SIGHUP: logrotate moved them away).
    public static func reopenAll() {
        for file in open.withLockedValue({ Array($0.values) }) { file.reopen() }
    }

    private init(path: String) {
        self.path = path
        state = NIOLockedValueBox(LogFile.openFile(path))
    }

    deinit { state.withLockedValue { if $0.fd >= 0 { Posix.close($0.fd) } } }

    /// Why the file could not be opened (lines then go to standard error only), nil when it is open.
    public var failure: String? { state.withLockedValue { $0.failure } }

    private static func openFile(_ path: String) -> (fd: Int32, failure: String?) {
        let dir = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        do throws(QlustarError) {
            try FileSystem.makeDirectories(dir)
            return (
                try FileSystem.at("cannot open", path) { () throws(SystemCallError) in
                    try Posix.open(path, O_WRONLY | O_CREAT | O_APPEND, 0o640)
                }, nil
            )
        } catch {
            return (-1, error.message)
        }
    }

    /// Closes the file and opens `path` again (a new file when logrotate moved the old one).
    public func reopen() {
        let fresh = LogFile.openFile(path)
        state.withLockedValue { s in
            if s.fd >= 0 { Posix.close(s.fd) }
            s = fresh
        }
    }

    /// Appends `line` (one event, ending in a newline). A full disk must not stop the tool: the
    /// line is then dropped.
    public func append(_ line: [UInt8]) {
        state.withLockedValue { s in
            guard s.fd >= 0 else { return }
            line.withUnsafeBytes { try? Posix.writeAll(s.fd, $0) }
        }
    }

    /// `message` with every control character (a newline or escape sequence in a name a node
    /// sent us) written as `\xNN`: one event is one line, and a log read in a terminal cannot be
    /// made to forge lines or move the cursor.
    static func escaped(_ message: String) -> String {
        guard message.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { return message }
        var out = ""
        for u in message.unicodeScalars {
            if u.value < 0x20 || u.value == 0x7F {
                out += String(printf: "\\x%02X", u.value)
            } else {
                out.unicodeScalars.append(u)
            }
        }
        return out
    }

    /// Now, in UTC with milliseconds: `2026-12-02T06:25:29.212Z`.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var t = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &t)
        return String(
            printf: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour,
            t.tm_min,
            t.tm_sec, Int32(now.tv_nsec / 1_000_000))
    }
}
