import Foundation
import GRDB
import Platform

#if canImport(Glibc)
    import Glibc
#endif

/// The node registry of qlumand: an SQLite database in `<root>/var/lib/qlustar/qluman.db`,
/// created and upgraded by numbered migrations.
///
/// Every change is one transaction; the database runs in WAL mode with a busy timeout, so two
/// administrators (two processes) writing at once are serialised, never interleaved, and a
/// conflicting write (a MAC or IP taken meanwhile) fails with a message naming the owner.
public final class Registry: Sendable {
    public let path: String
    let queue: DatabaseQueue

    /// Opens (creating and migrating) the registry below `root`.
    /// - Throws: `.io` when the database cannot be opened or upgraded.
    public convenience init(root: Root) throws(QlustarError) {
        let dir = root.path("/var/lib/qlustar")
        try FileSystem.makeDirectories(dir)
        try self.init(path: dir + "/qluman.db")
    }

    /// Opens (creating and migrating) the registry at `path`, whose directory exists.
    public init(path: String) throws(QlustarError) {
        self.path = path
        var config = Configuration()
        config.busyMode = .timeout(10)
        config.journalMode = .wal
        // Two tools opening a new registry at once must not both run a migration: the migrator
        // checks what is applied and applies the rest in separate transactions, so the whole
        // upgrade runs under an exclusive lock on a file beside the database.
        let lock = try FileSystem.at("cannot open the lock", path + ".lock") { () throws(SystemCallError) in
            try Posix.open(path + ".lock", O_RDWR | O_CREAT, 0o600)
        }
        defer { Posix.close(lock) }
        try FileSystem.at("cannot lock", path + ".lock") { () throws(SystemCallError) in try Posix.flock(lock, LOCK_EX)
        }
        defer { try? Posix.flock(lock, LOCK_UN) }
        do {
            // The registry holds enrollment tokens and BMC credentials: only its owner reads it,
            // from the moment it exists (the WAL and shared-memory files SQLite makes beside it
            // take the database's mode).
            if let fd = try? Posix.open(path, O_RDWR | O_CREAT, 0o600) {
                try? Posix.fchmod(fd, 0o600)
                Posix.close(fd)
            }
            queue = try DatabaseQueue(path: path, configuration: config)
            try Registry.migrator.migrate(queue)
        } catch {
            throw QlustarError(.io, "cannot open the node registry \(path): \(error)")
        }
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("1 nodes, MACs, groups") { db in
            try db.execute(
                sql: """
                    CREATE TABLE node_group (name TEXT PRIMARY KEY NOT NULL);
                    CREATE TABLE node (
                        name TEXT PRIMARY KEY NOT NULL,
                        ip TEXT NOT NULL UNIQUE,
                        prefix INTEGER NOT NULL CHECK (prefix BETWEEN 8 AND 30),
                        image TEXT,
                        group_name TEXT REFERENCES node_group(name) ON DELETE RESTRICT
                    );
                    CREATE TABLE node_mac (
                        mac TEXT PRIMARY KEY NOT NULL,
                        node TEXT NOT NULL REFERENCES node(name) ON DELETE CASCADE ON UPDATE CASCADE
                    );
                    """)
        }
        m.registerMigration("2 boot configurations") { db in
            try db.execute(
                sql: """
                    CREATE TABLE boot_config (
                        name TEXT PRIMARY KEY NOT NULL,
                        kernel TEXT NOT NULL,
                        initrd TEXT NOT NULL,
                        append TEXT NOT NULL DEFAULT ''
                    );
                    ALTER TABLE node ADD COLUMN boot_config TEXT REFERENCES boot_config(name);
                    ALTER TABLE node_group ADD COLUMN boot_config TEXT REFERENCES boot_config(name);
                    """)
        }
        m.registerMigration("3 config classes, assignments, tokens, configure reports") { db in
            try db.execute(
                sql: """
                    CREATE TABLE config (
                        class TEXT NOT NULL,
                        name TEXT NOT NULL,
                        body TEXT NOT NULL,
                        PRIMARY KEY (class, name)
                    );
                    CREATE TABLE config_assignment (
                        class TEXT NOT NULL,
                        config TEXT NOT NULL,
                        target_kind TEXT NOT NULL CHECK (target_kind IN ('group', 'node')),
                        target TEXT NOT NULL,
                        PRIMARY KEY (class, target_kind, target, config),
                        FOREIGN KEY (class, config) REFERENCES config(class, name) ON DELETE RESTRICT
                    );
                    ALTER TABLE node ADD COLUMN token_sha256 TEXT;
                    CREATE TABLE node_report (
                        node TEXT PRIMARY KEY NOT NULL REFERENCES node(name) ON DELETE CASCADE ON UPDATE CASCADE,
                        os_family TEXT NOT NULL,
                        configured_at TEXT NOT NULL
                    );
                    """)
        }
        m.registerMigration("4 time daemon in configure reports") { db in
            try db.execute(sql: "ALTER TABLE node_report ADD COLUMN time_daemon TEXT")
        }
        m.registerMigration("5 boots") { db in
            // One row per boot of a node (its newest few): stage and outcome as columns for
            // queries, the whole record with its events as JSON.
            try db.execute(
                sql: """
                    CREATE TABLE boot (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        node TEXT NOT NULL REFERENCES node(name) ON DELETE CASCADE ON UPDATE CASCADE,
                        started_at REAL NOT NULL,
                        stage TEXT NOT NULL,
                        outcome TEXT NOT NULL CHECK (outcome IN ('booting', 'up', 'failed')),
                        record TEXT NOT NULL
                    );
                    CREATE INDEX boot_by_node ON boot(node, id);
                    """)
        }
        m.registerMigration("6 BMC addresses") { db in
            // Two nodes cannot share a BMC: a power command for one would reach the other.
            try db.execute(
                sql: """
                    ALTER TABLE node ADD COLUMN bmc TEXT;
                    CREATE UNIQUE INDEX node_bmc ON node(bmc) WHERE bmc IS NOT NULL;
                    """)
        }
        m.registerMigration("7 per-firmware boot configurations") { db in
            // What UEFI nodes load instead of BIOS nodes' kernel, initrd and parameters (NULL: the same).
            try db.execute(
                sql: """
                    ALTER TABLE boot_config ADD COLUMN uefi_kernel TEXT;
                    ALTER TABLE boot_config ADD COLUMN uefi_initrd TEXT;
                    ALTER TABLE boot_config ADD COLUMN uefi_append TEXT;
                    """)
        }
        return m
    }

    // MARK: - Nodes

    /// Registers a node.
    /// - Throws: `.invalidArgument` for a malformed value, a name, MAC, IP or BMC already
    ///   registered (naming the node that has it), or an unknown group.
    public func addNode(
        name: String, macs: [String], ip: String, image: String?, group: String?, bmc: String? = nil
    ) throws(QlustarError) -> Node {
        let added = try addNodes([NodeSpec(name: name, macs: macs, ip: ip, image: image, group: group, bmc: bmc)])
        guard let node = added.first else { throw QlustarError(.io, "node \(name) vanished after it was registered") }
        return node
    }

    /// The node `name`.
    /// - Throws: `.notFound`.
    public func node(_ name: String) throws(QlustarError) -> Node {
        let key = name.lowercased()
        guard let found = try nodes(where: "WHERE n.name = ?", [key]).first else {
            throw QlustarError(.notFound, "no node \(NodeFields.quoted(name)) is registered")
        }
        return found
    }

    /// Every node, by name.
    public func nodes() throws(QlustarError) -> [Node] { try nodes(where: "", []) }

    /// Changes what is given; the rest stays.
    public func setNode(
        _ name: String, ip: String? = nil, image: String?? = nil, group: String?? = nil, bootConfig: String?? = nil,
        bmc: String?? = nil, addMACs: [String] = [], removeMACs: [String] = []
    ) throws(QlustarError) -> Node {
        let current = try node(name)
        let bmc = try bmc.map { b throws(QlustarError) -> String? in
            try b.map { v throws(QlustarError) in try NodeFields.bmc(v) }
        }
        let ipv4 = try ip.map { i throws(QlustarError) in try NodeFields.ipv4(i) }
        let image = try image.map { i throws(QlustarError) -> String? in
            try i.map { v throws(QlustarError) in try ImageName(v).value }
        }
        let group = try group.map { g throws(QlustarError) -> String? in
            try g.map { v throws(QlustarError) in try NodeFields.group(v) }
        }
        let add = try addMACs.map { m throws(QlustarError) in try NodeFields.mac(m) }
        let remove = try removeMACs.map { m throws(QlustarError) in try NodeFields.mac(m) }
        try write { db throws(QlustarError) in
            if let (address, prefix) = ipv4 {
                if let owner = try self.fetchString(
                    db, "SELECT name FROM node WHERE ip = ? AND name != ?", [address, current.name])
                {
                    throw QlustarError(.invalidArgument, "IP \(address) already belongs to node \(owner)")
                }
                try self.execute(
                    db, "UPDATE node SET ip = ?, prefix = ? WHERE name = ?", [address, prefix, current.name])
            }
            if let image { try self.execute(db, "UPDATE node SET image = ? WHERE name = ?", [image, current.name]) }
            if let group {
                if let g = group, try self.fetchString(db, "SELECT name FROM node_group WHERE name = ?", [g]) == nil {
                    throw QlustarError(.invalidArgument, "no group \(g) (qluman group add \(g))")
                }
                try self.execute(db, "UPDATE node SET group_name = ? WHERE name = ?", [group, current.name])
            }
            if let bootConfig {
                if let b = bootConfig,
                    try self.fetchString(db, "SELECT name FROM boot_config WHERE name = ?", [b]) == nil
                {
                    throw QlustarError(
                        .invalidArgument, "no boot configuration \(NodeFields.quoted(b)) (qluman boot-config add)")
                }
                try self.execute(db, "UPDATE node SET boot_config = ? WHERE name = ?", [bootConfig, current.name])
            }
            if let bmc {
                if let b = bmc,
                    let owner = try self.fetchString(
                        db, "SELECT name FROM node WHERE bmc = ? AND name != ?", [b, current.name])
                {
                    throw QlustarError(.invalidArgument, "BMC \(b) already belongs to node \(owner)")
                }
                try self.execute(db, "UPDATE node SET bmc = ? WHERE name = ?", [bmc, current.name])
            }
            for mac in remove {
                guard current.macs.contains(mac) else {
                    throw QlustarError(.invalidArgument, "node \(current.name) has no MAC \(mac)")
                }
                try self.execute(db, "DELETE FROM node_mac WHERE mac = ?", [mac])
            }
            for mac in add {
                if let owner = try self.fetchString(db, "SELECT node FROM node_mac WHERE mac = ?", [mac]) {
                    throw QlustarError(.invalidArgument, "MAC \(mac) already belongs to node \(owner)")
                }
                try self.execute(db, "INSERT INTO node_mac (mac, node) VALUES (?, ?)", [mac, current.name])
            }
            if try self.fetchString(db, "SELECT mac FROM node_mac WHERE node = ? LIMIT 1", [current.name]) == nil {
                throw QlustarError(.invalidArgument, "node \(current.name) would have no MAC left")
            }
        }
        return try node(current.name)
    }

    /// Removes the node `name`.
    public func removeNode(_ name: String) throws(QlustarError) {
        let current = try node(name)
        try write { db throws(QlustarError) in
            try self.execute(
                db, "DELETE FROM config_assignment WHERE target_kind = 'node' AND target = ?", [current.name])
            try self.execute(db, "DELETE FROM node WHERE name = ?", [current.name])
        }
    }

    // MARK: - Groups

    public func addGroup(_ name: String) throws(QlustarError) {
        let name = try NodeFields.group(name)
        try write { db throws(QlustarError) in
            if try self.fetchString(db, "SELECT name FROM node_group WHERE name = ?", [name]) != nil {
                throw QlustarError(.invalidArgument, "group \(name) exists already")
            }
            try self.execute(db, "INSERT INTO node_group (name) VALUES (?)", [name])
        }
    }

    public func groups() throws(QlustarError) -> [String] {
        try read { db throws(QlustarError) in try self.fetchStrings(db, "SELECT name FROM node_group ORDER BY name", [])
        }
    }

    public func removeGroup(_ name: String) throws(QlustarError) {
        try write { db throws(QlustarError) in
            guard try self.fetchString(db, "SELECT name FROM node_group WHERE name = ?", [name]) != nil else {
                throw QlustarError(.notFound, "no group \(NodeFields.quoted(name))")
            }
            let members = try self.fetchStrings(db, "SELECT name FROM node WHERE group_name = ? ORDER BY name", [name])
            guard members.isEmpty else {
                throw QlustarError(
                    .invalidArgument, "group \(name) still has nodes: \(members.joined(separator: ", "))")
            }
            try self.execute(db, "DELETE FROM config_assignment WHERE target_kind = 'group' AND target = ?", [name])
            try self.execute(db, "DELETE FROM node_group WHERE name = ?", [name])
        }
    }

    // MARK: - Boot configurations

    /// Stores a boot configuration (replacing one of the same name).
    /// - Throws: `.invalidArgument` for a bad name, a path with `..` or spaces, or parameters with
    ///   a line break (they are written into pxelinux files).
    public func putBootConfig(_ config: BootConfig) throws(QlustarError) {
        let name = try NodeFields.group(config.name)
        let paths = [
            ("kernel", config.kernel), ("initrd", config.initrd), ("UEFI kernel", config.uefiKernel),
            ("UEFI initrd", config.uefiInitrd),
        ].compactMap { what, path in path.map { (what, $0) } }
        for (what, path) in paths {
            let parts = path.split(separator: "/")
            guard !path.isEmpty, !path.hasPrefix("/"), !parts.contains(".."),
                !path.contains(where: { $0.isWhitespace || $0.isNewline })
            else {
                throw QlustarError(
                    .invalidArgument,
                    "\(what) \(NodeFields.quoted(path)) must be a path below the TFTP root, without '..' or spaces")
            }
        }
        guard !config.append.contains(where: \.isNewline), !(config.uefiAppend ?? "").contains(where: \.isNewline)
        else {
            throw QlustarError(.invalidArgument, "kernel parameters must be one line")
        }
        try write { db throws(QlustarError) in
            try self.execute(
                db,
                "INSERT OR REPLACE INTO boot_config (name, kernel, initrd, append, uefi_kernel, uefi_initrd, uefi_append) "
                    + "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    name, config.kernel, config.initrd, config.append, config.uefiKernel, config.uefiInitrd,
                    config.uefiAppend,
                ])
        }
    }

    public func bootConfigs() throws(QlustarError) -> [BootConfig] {
        try read { db throws(QlustarError) in
            do {
                return try Row.fetchAll(db, sql: "SELECT * FROM boot_config ORDER BY name")
                    .map {
                        BootConfig(
                            name: $0["name"], kernel: $0["kernel"], initrd: $0["initrd"], append: $0["append"],
                            uefiKernel: $0["uefi_kernel"], uefiInitrd: $0["uefi_initrd"], uefiAppend: $0["uefi_append"])
                    }
            } catch { throw QlustarError(.io, "node registry: \(error)") }
        }
    }

    public func removeBootConfig(_ name: String) throws(QlustarError) {
        try write { db throws(QlustarError) in
            let users = try self.fetchStrings(
                db,
                "SELECT name FROM node WHERE boot_config = ? UNION SELECT name FROM node_group WHERE boot_config = ? ORDER BY 1",
                [name, name])
            guard users.isEmpty else {
                throw QlustarError(
                    .invalidArgument, "boot configuration \(name) is used by \(users.joined(separator: ", "))")
            }
            guard try self.fetchString(db, "SELECT name FROM boot_config WHERE name = ?", [name]) != nil else {
                throw QlustarError(.notFound, "no boot configuration \(NodeFields.quoted(name))")
            }
            try self.execute(db, "DELETE FROM boot_config WHERE name = ?", [name])
        }
    }

    /// Sets the boot configuration of a group (nil: none).
    public func setGroupBootConfig(_ group: String, _ bootConfig: String?) throws(QlustarError) {
        try write { db throws(QlustarError) in
            guard try self.fetchString(db, "SELECT name FROM node_group WHERE name = ?", [group]) != nil else {
                throw QlustarError(.notFound, "no group \(NodeFields.quoted(group))")
            }
            if let b = bootConfig, try self.fetchString(db, "SELECT name FROM boot_config WHERE name = ?", [b]) == nil {
                throw QlustarError(
                    .invalidArgument, "no boot configuration \(NodeFields.quoted(b)) (qluman boot-config add)")
            }
            try self.execute(db, "UPDATE node_group SET boot_config = ? WHERE name = ?", [bootConfig, group])
        }
    }

    /// The boot configuration each node boots with: its own, else its group's (absent: default).
    public func effectiveBootConfigs() throws(QlustarError) -> [String: String] {
        try read { db throws(QlustarError) in
            do {
                let rows = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT n.name, COALESCE(n.boot_config, g.boot_config) AS boot
                        FROM node n LEFT JOIN node_group g ON g.name = n.group_name
                        """)
                var out: [String: String] = [:]
                for row in rows { if let boot: String = row["boot"] { out[row["name"]] = boot } }
                return out
            } catch { throw QlustarError(.io, "node registry: \(error)") }
        }
    }

    // MARK: - Database access (errors as QlustarError)

    private func nodes(where clause: String, _ arguments: [(any DatabaseValueConvertible)?]) throws(QlustarError)
        -> [Node]
    {
        try read { db throws(QlustarError) in
            let rows: [Row]
            do {
                rows = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT n.name, n.ip, n.prefix, n.image, n.group_name, n.boot_config, n.bmc,
                               (SELECT group_concat(mac, ' ') FROM (SELECT mac FROM node_mac WHERE node = n.name ORDER BY mac)) AS macs
                        FROM node n \(clause) ORDER BY n.name
                        """, arguments: StatementArguments(arguments))
            } catch { throw QlustarError(.io, "node registry: \(error)") }
            return rows.map { row in
                Node(
                    name: row["name"], macs: (row["macs"] as String?)?.split(separator: " ").map(String.init) ?? [],
                    ip: row["ip"],
                    prefix: row["prefix"], image: row["image"], group: row["group_name"],
                    bootConfig: row["boot_config"],
                    bmc: row["bmc"])
            }
        }
    }

    func write(_ body: @escaping (Database) throws(QlustarError) -> Void) throws(QlustarError) {
        do {
            try queue.write { db in try body(db) }
        } catch let e as QlustarError {
            throw e
        } catch {
            throw QlustarError(.io, "node registry \(path): \(error)")
        }
    }

    func read<T>(_ body: @escaping (Database) throws(QlustarError) -> T) throws(QlustarError) -> T {
        do {
            return try queue.read { db in try body(db) }
        } catch let e as QlustarError {
            throw e
        } catch {
            throw QlustarError(.io, "node registry \(path): \(error)")
        }
    }

    func execute(_ db: Database, _ sql: String, _ arguments: [(any DatabaseValueConvertible)?]) throws(QlustarError) {
        do { try db.execute(sql: sql, arguments: StatementArguments(arguments)) } catch {
            throw QlustarError(.io, "node registry: \(error)")
        }
    }

    func fetchString(_ db: Database, _ sql: String, _ arguments: [(any DatabaseValueConvertible)?]) throws(QlustarError)
        -> String?
    {
        do { return try String.fetchOne(db, sql: sql, arguments: StatementArguments(arguments)) } catch {
            throw QlustarError(.io, "node registry: \(error)")
        }
    }

    func fetchStrings(_ db: Database, _ sql: String, _ arguments: [(any DatabaseValueConvertible)?])
        throws(QlustarError) -> [String]
    {
        do { return try String.fetchAll(db, sql: sql, arguments: StatementArguments(arguments)) } catch {
            throw QlustarError(.io, "node registry: \(error)")
        }
    }
}
