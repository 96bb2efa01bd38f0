import Foundation
import Platform

#if canImport(Glibc)
    import Glibc
#endif

/// The user names and passwords of the nodes' BMCs, on the head node only:
/// `<root>/etc/qlustar/bmc-credentials`, JSON, mode 0600 (refused when anyone but its owner may
/// read it, as ssh refuses a readable key). An entry holds for a hostlist of nodes, or for every
/// node when it names none; a node's own entry (the last that names it) wins over that default.
/// Passwords are never printed and reach `ipmitool` through its environment, not its command line.
public struct BMCCredentials: Codable, Sendable, Equatable {
    public struct Entry: Codable, Sendable, Equatable {
        /// The nodes it holds for (a hostlist); nil: every node without an entry of its own.
        public var hosts: String?
        public var user: String
        public var password: String
        /// The RMCP+ cipher suite `ipmitool -C` uses (3: HMAC-SHA1/AES-128, 17: HMAC-SHA256/AES-128).
        public var cipher: Int

        public init(hosts: String?, user: String, password: String, cipher: Int) {
            self.hosts = hosts
            self.user = user
            self.password = password
            self.cipher = cipher
        }
    }

    public static let path = "/etc/qlustar/bmc-credentials"
    public var entries: [Entry] = []

    public init(entries: [Entry] = []) { self.entries = entries }

    /// The entry for `node`: its own (the last naming it), else the default; nil when none.
    public func entry(for node: String) -> Entry? {
        let own = entries.last { e in
            guard let hosts = e.hosts else { return false }
            return (try? Hostlist.expand(hosts).contains(node)) ?? false
        }
        return own ?? entries.last { $0.hosts == nil }
    }

    /// Adds `entry`, replacing one for the same hosts.
    public mutating func set(_ entry: Entry) {
        entries.removeAll { $0.hosts == entry.hosts }
        entries.append(entry)
    }

    /// The stored credentials below `root` (none when the file does not exist).
    /// - Throws: `.invalidArgument` when others may read the file or it does not parse.
    public static func load(root: Root) throws(QlustarError) -> BMCCredentials {
        let file = root.path(path)
        guard FileSystem.exists(file) else { return BMCCredentials() }
        let mode = try FileSystem.status(file).st_mode
        guard mode & 0o077 == 0 else {
            throw QlustarError(
                .invalidArgument,
                "\(file) may be read by others (mode \(String(mode & 0o777, radix: 8))): chmod 600 \(file)")
        }
        let bytes = try FileSystem.readFile(file, limit: 1 << 20)
        do { return try JSONDecoder().decode(BMCCredentials.self, from: Data(bytes)) } catch {
            throw QlustarError(.invalidArgument, "\(file) is not a credentials file: \(error)")
        }
    }

    /// Writes the credentials below `root` (0600, replaced in one rename).
    public func save(root: Root) throws(QlustarError) {
        let file = root.path(Self.path)
        try FileSystem.makeDirectories(root.path("/etc/qlustar"))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let bytes: [UInt8]
        do { bytes = Array(try encoder.encode(self)) } catch { throw QlustarError(.io, "credentials: \(error)") }
        try FileSystem.writeAtomically(file, bytes, mode: 0o600)
    }
}
