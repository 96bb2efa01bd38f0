import Foundation
import Platform

#if canImport(Glibc)
    import Glibc
#endif

/// The node registry of qlumand: by default an SQLite database in
/// `<root>/var/lib/qlustar/qluman.db`; on sites with two head nodes a PostgreSQL database they
/// share (`RegistryLocation`). Both are created and upgraded by the same numbered migrations
/// (`RegistrySchema`).
///
/// Every change is one transaction: two administrators (two processes, or two heads) writing at
/// once are serialised, never interleaved, and a conflicting write (a MAC or IP taken meanwhile)
/// fails with a message naming the owner.
public final class Registry: Sendable {
    let store: any RegistryStore
    /// Where it is, as an administrator names it (a path, or a `postgresql://` URL).
    public var path: String { store.description }

    /// Opens the registry this head node uses (`RegistryLocation.resolve`: `option`, else
    /// `QLUSTAR_REGISTRY`, else `configured`, else `registry =` in `<root>/etc/qlustar/qlumand.conf`,
    /// else the SQLite file below `root`), creating and upgrading it.
    /// - Throws: `.io` when it cannot be opened or upgraded, `.invalidArgument` or
    ///   `.configuration` for a bad location.
    public convenience init(root: Root, option: String? = nil, configured: String? = nil) throws(QlustarError) {
        try self.init(location: try RegistryLocation.resolve(option: option, configured: configured, root: root))
    }

    /// Opens (creating and migrating) the SQLite registry at `path`, whose directory exists.
    public convenience init(path: String) throws(QlustarError) {
        try self.init(location: .sqlite(path: path))
    }

    public init(location: RegistryLocation) throws(QlustarError) {
        switch location {
        case .sqlite(let path):
            try FileSystem.makeDirectories((path as NSString).deletingLastPathComponent)
            store = try SQLiteStore(path: path)
        case .postgresql(let p):
            store = try PostgresStore(p)
        }
    }

    /// The schema migrations this registry has applied, in order.
    public func appliedMigrations() throws(QlustarError) -> [String] {
        try read { db throws(QlustarError) in
            switch db.dialect {
            case .sqlite: try self.fetchStrings(db, "SELECT identifier FROM grdb_migrations ORDER BY rowid", [])
            case .postgresql: try self.fetchStrings(db, "SELECT name FROM registry_migrations ORDER BY id", [])
            }
        }
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
                "INSERT INTO boot_config (name, kernel, initrd, append, uefi_kernel, uefi_initrd, uefi_append) "
                    + "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET kernel = excluded.kernel, "
                    + "initrd = excluded.initrd, append = excluded.append, uefi_kernel = excluded.uefi_kernel, "
                    + "uefi_initrd = excluded.uefi_initrd, uefi_append = excluded.uefi_append",
                [
                    name, config.kernel, config.initrd, config.append, config.uefiKernel, config.uefiInitrd,
                    config.uefiAppend,
                ])
        }
    }

    public func bootConfigs() throws(QlustarError) -> [BootConfig] {
        try read { db throws(QlustarError) in
            try self.rows(db, "SELECT * FROM boot_config ORDER BY name", []).map {
                BootConfig(
                    name: $0.text("name"), kernel: $0.text("kernel"), initrd: $0.text("initrd"),
                    append: $0.text("append"), uefiKernel: $0["uefi_kernel"].string,
                    uefiInitrd: $0["uefi_initrd"].string, uefiAppend: $0["uefi_append"].string)
            }
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
            let rows = try self.rows(
                db,
                """
                SELECT n.name, COALESCE(n.boot_config, g.boot_config) AS boot
                FROM node n LEFT JOIN node_group g ON g.name = n.group_name
                """, [])
            var out: [String: String] = [:]
            for row in rows { if let boot = row["boot"].string { out[row.text("name")] = boot } }
            return out
        }
    }

    // MARK: - Database access (errors as QlustarError)

    private func nodes(where clause: String, _ arguments: [(any SQLBindable)?]) throws(QlustarError) -> [Node] {
        try read { db throws(QlustarError) in
            let macs = db.dialect.joined("mac", separator: " ")
            return try self.rows(
                db,
                """
                SELECT n.name, n.ip, n.prefix, n.image, n.group_name, n.boot_config, n.bmc,
                       (SELECT \(macs) FROM (SELECT mac FROM node_mac WHERE node = n.name ORDER BY mac) AS m) AS macs
                FROM node n \(clause) ORDER BY n.name
                """, arguments
            ).map { row in
                Node(
                    name: row.text("name"), macs: row["macs"].string?.split(separator: " ").map(String.init) ?? [],
                    ip: row.text("ip"), prefix: Int(row["prefix"].int64 ?? 0), image: row["image"].string,
                    group: row["group_name"].string, bootConfig: row["boot_config"].string, bmc: row["bmc"].string)
            }
        }
    }

    func write(_ body: (any SQLSession) throws(QlustarError) -> Void) throws(QlustarError) {
        try store.write(body)
    }

    func read<T>(_ body: (any SQLSession) throws(QlustarError) -> T) throws(QlustarError) -> T {
        try store.read(body)
    }

    func execute(_ db: any SQLSession, _ sql: String, _ arguments: [(any SQLBindable)?]) throws(QlustarError) {
        try db.execute(sql, Registry.values(arguments))
    }

    func rows(_ db: any SQLSession, _ sql: String, _ arguments: [(any SQLBindable)?]) throws(QlustarError) -> [SQLRow] {
        try db.rows(sql, Registry.values(arguments))
    }

    func fetchString(_ db: any SQLSession, _ sql: String, _ arguments: [(any SQLBindable)?]) throws(QlustarError)
        -> String?
    {
        try rows(db, sql, arguments).first?[0].string
    }

    func fetchStrings(_ db: any SQLSession, _ sql: String, _ arguments: [(any SQLBindable)?])
        throws(QlustarError) -> [String]
    {
        try rows(db, sql, arguments).compactMap { $0[0].string }
    }

    static func values(_ arguments: [(any SQLBindable)?]) -> [SQLValue] { arguments.map { $0?.sqlValue ?? .null } }
}
