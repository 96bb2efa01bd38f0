import Glibc

/// A secret an administrator keeps in a file (a database password, the heads' shared token):
/// never on a command line, which every user of the host can read, and only in a regular file no
/// one but its owner may read.
public enum SecretFile {
    /// The first line of `path`.
    /// - Parameter what: what the file is, for messages ("registry password file").
    /// - Throws: `.configuration` naming the file when it is missing, not a regular file, readable
    ///   by group or others (with the `chmod` that mends it), longer than 4 KiB, not UTF-8, or empty.
    public static func firstLine(_ path: String, what: String) throws(QlustarError) -> String {
        let st: stat
        do { st = try Posix.stat(path) } catch {
            throw QlustarError(.configuration, "\(what) \(path): \(error)")
        }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw QlustarError(.configuration, "\(what) \(path) is not a regular file")
        }
        guard st.st_mode & 0o077 == 0 else {
            throw QlustarError(
                .configuration,
                "\(what) \(path) may be read by others (mode " + String(st.st_mode & 0o777, radix: 8)
                    + "); chmod 600 \(path)")
        }
        guard st.st_size <= 4096, let bytes = try? FileSystem.readFile(path, limit: 4096),
            let text = String(validating: bytes, as: UTF8.self)
        else { throw QlustarError(.configuration, "\(what) \(path) is not a short UTF-8 text file") }
        let line = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        guard !line.isEmpty else { throw QlustarError(.configuration, "\(what) \(path) is empty") }
        return line
    }

    /// Compares without stopping at the first difference: the time taken says nothing of the secret.
    public static func equal(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        var diff = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) {
            diff |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return diff == 0
    }
}
