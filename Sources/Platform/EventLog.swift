#if canImport(Glibc)
    import Glibc
#endif
import Foundation
import NIOConcurrencyHelpers

/// A tool's log: timestamped lines appended to `<root>/var/log/qlustar/<name>.log` (where the
/// administrator looks, per the boot reference), and echoed to standard error.
///
/// `Sendable`: writes are serialised by the lock; the descriptor is opened once with O_APPEND.
public final class EventLog: Sendable {
    public enum Level: String, Sendable { case debug, info, warning, error }

    private let fd: Int32
    private let echo: Bool
    private let verbose: Bool
    private let lock = NIOLock()
    public let path: String

    /// Opens (creating) the log file. If it cannot be opened, lines go to standard error only
    /// and the first line says why.
    public init(root: Root, name: String, echo: Bool = true, verbose: Bool = false) {
        path = root.logs + "/" + name + ".log"
        self.echo = echo
        self.verbose = verbose
        var opened: Int32 = -1
        var reason = ""
        do throws(QlustarError) {
            try FileSystem.makeDirectories(root.logs)
            do { opened = try Posix.open(path, O_WRONLY | O_CREAT | O_APPEND, 0o640) } catch { reason = error.text }
        } catch {
            reason = error.message
        }
        fd = opened
        if opened < 0 { log(.warning, "cannot open the log file \(path) (\(reason)); logging to standard error only") }
    }

    deinit { if fd >= 0 { Posix.close(fd) } }

    public func log(_ level: Level, _ message: String) {
        if level == .debug && !verbose { return }
        let line = "\(EventLog.timestamp()) \(level.rawValue) \(EventLog.escaped(message))\n"
        lock.withLock {
            let bytes = Array(line.utf8)
            bytes.withUnsafeBytes { b in
                // A full disk or a closed terminal must not stop the tool: the line is dropped.
                if fd >= 0 { try? Posix.writeAll(fd, b) }
                if echo { try? Posix.writeAll(2, b) }
            }
        }
    }

    public func info(_ message: String) { log(.info, message) }
    public func warning(_ message: String) { log(.warning, message) }
    public func error(_ message: String) { log(.error, message) }
    public func debug(_ message: String) { log(.debug, message) }

    /// `message` with every control character (a newline or escape sequence in a name a node
    /// sent us) written as `\xNN`: one event is one line, and a log read in a terminal cannot be
    /// made to forge lines or move the cursor.
    static func escaped(_ message: String) -> String {
        guard message.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { return message }
        var out = ""
        for u in message.unicodeScalars {
            if u.value < 0x20 || u.value == 0x7F {
                out += String(format: "\\x%02X", u.value)
            } else {
                out.unicodeScalars.append(u)
            }
        }
        return out
    }

    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var t = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &t)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min,
            t.tm_sec, now.tv_nsec / 1_000_000)
    }
}
