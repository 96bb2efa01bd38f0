import Foundation
import Platform

/// Where a tool finds the node registry: `--registry`, else `QLUSTAR_REGISTRY`, else the daemon's
/// own configuration file, else `registry =` in `<root>/etc/qlustar/qlumand.conf` (so `qluman`
/// on a head node uses what its qlumand uses), else the SQLite file below the root
/// (`/var/lib/qlustar/qluman.db`).
///
/// A PostgreSQL location is a URL, `postgresql://USER@HOST[:PORT][,HOST[:PORT]…]/DATABASE`
/// (optionally `?connect_timeout=SECONDS&passfile=PATH`). Several hosts are tried in order and
/// the first that accepts writes is used — a primary and its standby, so that after a promotion
/// every head follows the new primary. The password is never part of the URL (a command line is
/// readable by every user of the host): it is the first line of a file only its owner may read —
/// `passfile=`, else `QLUSTAR_REGISTRY_PASSWORD_FILE`, else `<root>/etc/qlustar/registry.password`
/// when it exists; none at all for a database that trusts the host (peer or trust).
public enum RegistryLocation: Sendable, Equatable, CustomStringConvertible {
    case sqlite(path: String)
    case postgresql(Postgres)

    public struct Postgres: Sendable, Equatable, CustomStringConvertible {
        public struct Host: Sendable, Equatable, CustomStringConvertible {
            public var name: String
            public var port: Int
            public var description: String { port == 5432 ? name : "\(name):\(port)" }
        }
        public var hosts: [Host]
        public var user: String
        public var database: String
        public var password: String?
        public var connectTimeoutSeconds = 5
        public var description: String {
            "postgresql://\(user)@\(hosts.map(\.description).joined(separator: ","))/\(database)"
        }
    }

    public var description: String {
        switch self {
        case .sqlite(let path): path
        case .postgresql(let p): p.description
        }
    }

    /// The environment variables a tool reads when no option says.
    public static let environmentVariable = "QLUSTAR_REGISTRY"
    public static let passwordFileVariable = "QLUSTAR_REGISTRY_PASSWORD_FILE"
    /// qlumand's configuration file, whose `registry =` every tool of the head node follows.
    public static let qlumandConfiguration = "/etc/qlustar/qlumand.conf"
    /// The password file a head node has when nothing else names one.
    public static let defaultPasswordFile = "/etc/qlustar/registry.password"

    /// The location given by `option`, the environment, or `configured` (a config file's
    /// `registry =`), in that order; the SQLite file below `root` when none says.
    /// - Throws: `.invalidArgument` for a malformed URL or a password in it, `.configuration`
    ///   for a password file others may read.
    public static func resolve(
        option: String? = nil, configured: String? = nil, root: Root,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(QlustarError) -> RegistryLocation {
        guard let given = try given(option: option, configured: configured, root: root, environment: environment)
        else { return .sqlite(path: root.path("/var/lib/qlustar/qluman.db")) }
        return try parse(given, root: root, environment: environment)
    }

    /// The location's text as `resolve` finds it — `option`, the environment, `configured`, then
    /// `registry =` in qlumand.conf — or nil when none names one (the default file).
    /// - Throws: `.configuration` when qlumand.conf cannot be read.
    public static func given(
        option: String? = nil, configured: String? = nil, root: Root,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(QlustarError) -> String? {
        var given = [option, environment[environmentVariable], configured].compactMap { $0 }.first { !$0.isEmpty }
        let daemonFile = root.path(qlumandConfiguration)
        if given == nil, FileManager.default.fileExists(atPath: daemonFile) {
            try ConfigFile.read(daemonFile) { (key, value) throws(QlustarError) in
                if key == "registry", !value.isEmpty { given = value }
            }
        }
        return given
    }

    /// A path (SQLite) or a `postgresql://` URL.
    public static func parse(
        _ text: String, root: Root, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(QlustarError) -> RegistryLocation {
        for scheme in ["postgresql://", "postgres://"] where text.hasPrefix(scheme) {
            return .postgresql(try postgres(String(text.dropFirst(scheme.count)), root: root, environment: environment))
        }
        guard !text.contains("://") else {
            throw QlustarError(
                .invalidArgument,
                "registry \(text): give a file path (SQLite) or postgresql://USER@HOST[:PORT][,HOST…]/DATABASE")
        }
        return .sqlite(path: text)
    }

    private static func postgres(
        _ rest: String, root: Root, environment: [String: String]
    ) throws(QlustarError) -> Postgres {
        func bad(_ why: String) -> QlustarError {
            QlustarError(
                .invalidArgument,
                "registry postgresql://\(rest): \(why) (postgresql://USER@HOST[:PORT][,HOST…]/DATABASE)")
        }
        let (main, query) = split(rest, at: "?")
        let (authority, database) = split(main, at: "/")
        guard !database.isEmpty else { throw bad("no database") }
        guard let at = authority.lastIndex(of: "@") else { throw bad("no user") }
        let user = String(authority[..<at])
        guard !user.contains(":") else {
            throw QlustarError(
                .invalidArgument,
                "registry: a password does not belong in the URL (every user of this host can read a command line); "
                    + "put it in a file only root can read: passfile=PATH or \(defaultPasswordFile)")
        }
        guard !user.isEmpty, user.allSatisfy({ $0.isLetter || $0.isNumber || "_-.".contains($0) }) else {
            throw bad("user \(NodeFields.quoted(user)) is not a PostgreSQL user name")
        }
        guard database.allSatisfy({ $0.isLetter || $0.isNumber || "_-".contains($0) }), database.count <= 63 else {
            throw bad("database \(NodeFields.quoted(database)) is not a database name")
        }
        var hosts: [Postgres.Host] = []
        for part in authority[authority.index(after: at)...].split(separator: ",", omittingEmptySubsequences: false) {
            let (name, portText) = split(String(part), at: ":")
            guard !name.isEmpty, name.count <= 253,
                name.allSatisfy({ $0.isLetter || $0.isNumber || ".-".contains($0) })
            else { throw bad("host \(NodeFields.quoted(String(part))) is not a host name or IPv4 address") }
            var port = 5432
            if !portText.isEmpty {
                guard let p = Int(portText), (1...65535).contains(p) else {
                    throw bad("port \(portText) is not 1–65535")
                }
                port = p
            }
            hosts.append(Postgres.Host(name: name, port: port))
        }
        guard !hosts.isEmpty, hosts.count <= 16 else { throw bad("give 1 to 16 hosts") }
        var location = Postgres(hosts: hosts, user: user, database: database)
        var passfile: String?
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let (key, value) = split(String(pair), at: "=")
            switch key {
            case "connect_timeout":
                guard let s = Int(value), (1...300).contains(s) else { throw bad("connect_timeout is 1–300 seconds") }
                location.connectTimeoutSeconds = s
            case "passfile": passfile = value
            default: throw bad("unknown parameter \(NodeFields.quoted(key)) (connect_timeout, passfile)")
            }
        }
        if let file = passfile ?? environment[passwordFileVariable] {
            location.password = try password(from: file)
        } else if FileManager.default.fileExists(atPath: root.path(defaultPasswordFile)) {
            location.password = try password(from: root.path(defaultPasswordFile))
        }
        return location
    }

    /// The first line of `path`, which must be a regular file no one but its owner may read.
    static func password(from path: String) throws(QlustarError) -> String {
        try SecretFile.firstLine(path, what: "registry password file")
    }

    private static func split(_ text: String, at separator: Character) -> (String, String) {
        guard let i = text.firstIndex(of: separator) else { return (text, "") }
        return (String(text[..<i]), String(text[text.index(after: i)...]))
    }
}
