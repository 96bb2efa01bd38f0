import Foundation
import NodeConfig
import Platform

/// A stored config of a class.
public struct StoredConfig: Codable, Sendable, Equatable {
    public var configClass: ConfigClass
    public var name: String
    /// The canonical JSON body.
    public var body: String
    /// Groups and nodes it is assigned to ("group:NAME", "node:NAME").
    public var assignedTo: [String]
}

/// Where a config is assigned.
public enum ConfigTarget: Sendable, Equatable {
    case group(String)
    case node(String)

    var kind: String {
        switch self {
        case .group: "group"
        case .node: "node"
        }
    }

    var name: String {
        switch self {
        case .group(let n), .node(let n): n
        }
    }
}

extension Registry {
    // MARK: - Configs

    /// Stores the config `name` of `cls` (replacing one of the same name: nodes that have it get
    /// the new body at their next configure).
    /// - Throws: `.invalidArgument` for a bad name or a body that does not check.
    public func putConfig(_ cls: ConfigClass, name: String, json: [UInt8]) throws(QlustarError) -> StoredConfig {
        let name = try NodeFields.group(name)
        let body = try cls.canonical(json, name: name)
        try write { db throws(QlustarError) in
            try self.execute(
                db,
                "INSERT INTO config (class, name, body) VALUES (?, ?, ?) "
                    + "ON CONFLICT (class, name) DO UPDATE SET body = excluded.body",
                [cls.rawValue, name, String(decoding: body, as: UTF8.self)])
        }
        return try config(cls, name)
    }

    public func config(_ cls: ConfigClass, _ name: String) throws(QlustarError) -> StoredConfig {
        guard let found = try configs(cls).first(where: { $0.name == name }) else {
            throw QlustarError(.notFound, "no \(cls.rawValue) config \(NodeFields.quoted(name)) (qluman config list)")
        }
        return found
    }

    /// Every config (of one class, when given), by class and name.
    public func configs(_ cls: ConfigClass? = nil) throws(QlustarError) -> [StoredConfig] {
        try read { db throws(QlustarError) in
            let targets = db.dialect.joined("target_kind || ':' || target", separator: " ")
            return try self.rows(
                db,
                """
                SELECT c.class, c.name, c.body,
                  (SELECT \(targets) FROM
                     (SELECT target_kind, target FROM config_assignment a
                      WHERE a.class = c.class AND a.config = c.name ORDER BY target_kind, target) AS t) AS targets
                FROM config c WHERE (CAST(? AS TEXT) IS NULL OR c.class = ?) ORDER BY c.class, c.name
                """, [cls?.rawValue, cls?.rawValue]
            ).compactMap { row in
                guard let c = ConfigClass(rawValue: row.text("class")) else { return nil }
                return StoredConfig(
                    configClass: c, name: row.text("name"), body: row.text("body"),
                    assignedTo: row["targets"].string?.split(separator: " ").map(String.init) ?? [])
            }
        }
    }

    /// Removes a config that nothing is assigned to.
    public func removeConfig(_ cls: ConfigClass, _ name: String) throws(QlustarError) {
        let stored = try config(cls, name)
        try write { db throws(QlustarError) in
            let users = try self.fetchStrings(
                db,
                "SELECT target_kind || ' ' || target FROM config_assignment WHERE class = ? AND config = ? ORDER BY 1",
                [cls.rawValue, stored.name])
            guard users.isEmpty else {
                throw QlustarError(
                    .invalidArgument,
                    "\(cls.rawValue) config \(name) is assigned to \(users.joined(separator: ", ")); unassign it first")
            }
            try self.execute(db, "DELETE FROM config WHERE class = ? AND name = ?", [cls.rawValue, stored.name])
        }
    }

    /// Assigns a config to a group or a node. For a class a node has only one of, the target's
    /// previous assignment of that class is replaced.
    public func assign(_ cls: ConfigClass, _ name: String, to target: ConfigTarget) throws(QlustarError) {
        let stored = try config(cls, name)
        try write { db throws(QlustarError) in
            try self.requireTarget(db, target)
            if !cls.allowsSeveral {
                try self.execute(
                    db, "DELETE FROM config_assignment WHERE class = ? AND target_kind = ? AND target = ?",
                    [cls.rawValue, target.kind, target.name])
            }
            try self.execute(
                db,
                "INSERT INTO config_assignment (class, config, target_kind, target) VALUES (?, ?, ?, ?) "
                    + "ON CONFLICT DO NOTHING",
                [cls.rawValue, stored.name, target.kind, target.name])
        }
    }

    public func unassign(_ cls: ConfigClass, _ name: String, from target: ConfigTarget) throws(QlustarError) {
        try write { db throws(QlustarError) in
            let n = try self.fetchString(
                db,
                "SELECT config FROM config_assignment WHERE class = ? AND config = ? AND target_kind = ? AND target = ?",
                [cls.rawValue, name, target.kind, target.name])
            guard n != nil else {
                throw QlustarError(
                    .notFound,
                    "\(cls.rawValue) config \(NodeFields.quoted(name)) is not assigned to \(target.kind) \(target.name)"
                )
            }
            try self.execute(
                db, "DELETE FROM config_assignment WHERE class = ? AND config = ? AND target_kind = ? AND target = ?",
                [cls.rawValue, name, target.kind, target.name])
        }
    }

    private func requireTarget(_ db: any SQLSession, _ target: ConfigTarget) throws(QlustarError) {
        switch target {
        case .group(let g):
            guard try fetchString(db, "SELECT name FROM node_group WHERE name = ?", [g]) != nil else {
                throw QlustarError(.notFound, "no group \(NodeFields.quoted(g))")
            }
        case .node(let n):
            guard try fetchString(db, "SELECT name FROM node WHERE name = ?", [n.lowercased()]) != nil else {
                throw QlustarError(.notFound, "no node \(NodeFields.quoted(n)) is registered")
            }
        }
    }

    // MARK: - What a node gets

    /// The options of `node`: per class its own assignments, else its group's; bodies in name
    /// order. Root FS Customizations are named in `sources["root-fs"]` (their trees are archived
    /// by the server).
    public func options(for node: Node) throws(QlustarError) -> NodeOptions {
        let rows: [(String, String, String)] = try read { db throws(QlustarError) in
            try self.rows(
                db,
                """
                SELECT a.class, a.config, c.body FROM config_assignment a
                JOIN config c ON c.class = a.class AND c.name = a.config
                WHERE (a.target_kind = 'node' AND a.target = ?)
                   OR (a.target_kind = 'group' AND a.target = ? AND NOT EXISTS (
                        SELECT 1 FROM config_assignment o
                        WHERE o.class = a.class AND o.target_kind = 'node' AND o.target = ?))
                ORDER BY a.class, a.config
                """, [node.name, node.group, node.name]
            ).map { ($0.text("class"), $0.text("config"), $0.text("body")) }
        }
        var options = NodeOptions(node: .init(name: node.name, ip: node.ip, prefix: node.prefix, macs: node.macs))
        for (cls, name, body) in rows {
            guard let c = ConfigClass(rawValue: cls) else { continue }
            try options.add(c, name: name, body: Array(body.utf8))
        }
        return options
    }

    /// The node registered with address `ip`, if any.
    public func node(ip: String) throws(QlustarError) -> Node? {
        let name = try read { db throws(QlustarError) in
            try self.fetchString(db, "SELECT name FROM node WHERE ip = ?", [ip])
        }
        return try name.map { n throws(QlustarError) in try node(n) }
    }

    // MARK: - Enrollment tokens

    /// Sets (or with nil clears) the node's enrollment token. Only its SHA-256 is stored.
    public func setToken(_ name: String, token: String?) throws(QlustarError) {
        let current = try node(name)
        if let token, !(16...256).contains(token.utf8.count) {
            throw QlustarError(.invalidArgument, "an enrollment token must be 16–256 bytes")
        }
        try write { db throws(QlustarError) in
            try self.execute(
                db, "UPDATE node SET token_sha256 = ? WHERE name = ?", [token.map(Self.digest), current.name])
        }
    }

    /// Whether `token` is what the node must present (true when it has none).
    public func tokenMatches(_ name: String, token: String?) throws(QlustarError) -> Bool {
        let stored = try read { db throws(QlustarError) in
            try self.fetchString(db, "SELECT token_sha256 FROM node WHERE name = ?", [name])
        }
        guard let stored else { return true }
        guard let token else { return false }
        let given = Array(Self.digest(token).utf8)
        let expected = Array(stored.utf8)
        // Constant time in the digest's length: the comparison does not tell how much matched.
        return given.count == expected.count && zip(given, expected).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }

    static func digest(_ token: String) -> String {
        Array(token.utf8).withUnsafeBytes { SHA256.hash($0) }.description
    }

    // MARK: - Configure reports

    /// Records that `node` configured itself, with what it reported of its image (what
    /// `qluman preview` renders for).
    public func recordConfigure(_ name: String, facts: NodeFacts) throws(QlustarError) {
        let now = ISO8601DateFormatter().string(from: Date())
        try write { db throws(QlustarError) in
            try self.execute(
                db,
                "INSERT INTO node_report (node, os_family, time_daemon, configured_at) VALUES (?, ?, ?, ?) "
                    + "ON CONFLICT (node) DO UPDATE SET os_family = excluded.os_family, "
                    + "time_daemon = excluded.time_daemon, configured_at = excluded.configured_at",
                [name, facts.osFamily.rawValue, facts.timeDaemon.rawValue, now])
        }
    }

    /// What `node` reported of its image at its last configure, if it has.
    public func lastFacts(_ name: String) throws(QlustarError) -> NodeFacts? {
        try read { db throws(QlustarError) in
            guard
                let row = try self.rows(
                    db, "SELECT os_family, time_daemon FROM node_report WHERE node = ?", [name.lowercased()]
                ).first,
                let family = OSFamily(rawValue: row.text("os_family"))
            else { return nil }
            let daemon = row["time_daemon"].string.flatMap(TimeDaemon.init(rawValue:)) ?? NodeFacts.assumed.timeDaemon
            return NodeFacts(osFamily: family, timeDaemon: daemon)
        }
    }
}
