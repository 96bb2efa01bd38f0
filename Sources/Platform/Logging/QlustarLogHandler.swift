import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// The swift-log handler of every Qlustar tool: each event one line
/// `TIMESTAMP LEVEL MESSAGE [key=value …]` in the tool's `LogFile`, and on standard error —
/// there with a syslog priority prefix (`<6>message`) instead of our timestamp when standard
/// error is the systemd journal (`JOURNAL_STREAM`), so journald stamps and classifies each line
/// once and `journalctl -p warning` works.
public struct QlustarLogHandler: LogHandler {
    /// Where lines go besides the file.
    public enum Echo: Sendable {
        case none
        /// Standard error, a terminal or a file: the file's line.
        case standardError
        /// Standard error is the journal: `<priority>message`.
        case journal
    }

    public let file: LogFile?
    public let echo: Echo
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]

    public init(file: LogFile?, echo: Echo, level: Logger.Level) {
        self.file = file
        self.echo = echo
        logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(
        level: Logger.Level, message: Logger.Message, metadata extra: Logger.Metadata?, source: String, file _: String,
        function: String, line: UInt
    ) {
        var text = message.description
        let all = extra.map { metadata.merging($0) { $1 } } ?? metadata
        if !all.isEmpty {
            text += " " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        }
        text = LogFile.escaped(text)
        let full = Array("\(LogFile.timestamp()) \(level.rawValue) \(text)\n".utf8)
        file?.append(full)
        switch echo {
        case .none: break
        case .standardError: full.withUnsafeBytes { try? Posix.writeAll(2, $0) }
        case .journal: Array("<\(Self.priority(level))>\(text)\n".utf8).withUnsafeBytes { try? Posix.writeAll(2, $0) }
        }
    }

    /// syslog(3) priorities, as sd-daemon(3) prefixes read them.
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    /// Whether standard error is the journal: `JOURNAL_STREAM` (`DEVICE:INODE`, set by systemd for
    /// a service whose output goes to the journal) names the descriptor standard error is.
    public static var standardErrorIsJournal: Bool {
        guard let value = getenv("JOURNAL_STREAM").map({ String(cString: $0) }),
            let st = try? Posix.fstat(2)
        else { return false }
        return value == "\(st.st_dev):\(st.st_ino)"
    }
}

extension Logger {
    /// The environment variable that sets the level of every tool (`QL_LOG_LEVEL=debug`).
    public static let levelVariable = "QL_LOG_LEVEL"

    /// A tool's logger: its file `<root>/var/log/qlustar/<name>.log`, echoed to standard error
    /// (in the journal's form under systemd) unless `echo` is false.
    /// - Parameters:
    ///   - verbose: Debug lines too (a tool's `--debug`, a node's `debug` parameter).
    ///   - level: The level when given (`--log-level`, a config's `log-level`); else
    ///     `QL_LOG_LEVEL`, else info (debug when verbose).
    public init(root: Root, name: String, echo: Bool = true, verbose: Bool = false, level: Logger.Level? = nil) {
        let file = LogFile.shared(root.logs + "/" + name + ".log")
        let environment = getenv(Logger.levelVariable).flatMap { Logger.Level(rawValue: String(cString: $0)) }
        let chosen = level ?? (verbose ? .debug : environment ?? .info)
        let mode: QlustarLogHandler.Echo =
            !echo ? .none : (QlustarLogHandler.standardErrorIsJournal ? .journal : .standardError)
        let handler = QlustarLogHandler(file: file, echo: mode, level: chosen)
        self.init(label: name) { _ in handler }
        if let failure = file.failure {
            warning("cannot open the log file \(file.path) (\(failure)); logging to standard error only")
        }
    }

    /// The file this logger writes, for messages that point the administrator to it.
    public var filePath: String? { (handler as? QlustarLogHandler)?.file?.path }

    /// Parses a level name for `--log-level` and config files.
    /// - Throws: `.invalidArgument` listing the names.
    public static func level(parsing text: String) throws(QlustarError) -> Logger.Level {
        guard let level = Logger.Level(rawValue: text.lowercased()) else {
            throw QlustarError(
                .invalidArgument,
                "no log level \(ImageName.quoted(text)); levels: trace, debug, info, notice, warning, error, critical")
        }
        return level
    }
}
