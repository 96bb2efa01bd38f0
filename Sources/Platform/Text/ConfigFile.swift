/// The daemons' configuration files (`/etc/qlustar/ql-mcastd.conf`, `/etc/qlustar/qlumand.conf`):
/// `key = value` lines, `#` starts a comment, blank lines are ignored, keys are named like the
/// command-line options without their dashes. One reader so both daemons accept the same syntax
/// and name the same file and line in their errors.
public enum ConfigFile {
    /// Largest configuration file read (a settings file, not data).
    public static let sizeLimit = 1 << 20

    /// Reads `path` and hands every setting to `apply` in file order.
    /// - Parameters:
    ///   - path: The file.
    ///   - apply: Takes one key and its value; what it throws is reported with the file and line.
    /// - Throws: `.configuration` naming the file (and line) for an unreadable file, a line that is
    ///   not `key = value`, or a value `apply` refuses.
    public static func read(
        _ path: String, apply: (_ key: String, _ value: String) throws(QlustarError) -> Void
    ) throws(QlustarError) {
        let bytes: [UInt8]
        do { bytes = try FileSystem.readFile(path, limit: sizeLimit) } catch {
            throw QlustarError(.configuration, "configuration file: \(error.message)")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw QlustarError(.configuration, "\(path) is not UTF-8 text")
        }
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = (raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? "").trimmed
            if line.isEmpty { continue }
            guard let eq = line.firstIndex(of: "=") else {
                throw QlustarError(.configuration, "\(path):\(n + 1): expected 'key = value', got '\(line)'")
            }
            let key = line[..<eq].trimmed
            let value = line[line.index(after: eq)...].trimmed
            do { try apply(key, value) } catch {
                throw QlustarError(.configuration, "\(path):\(n + 1): \(error.message)")
            }
        }
    }
}
