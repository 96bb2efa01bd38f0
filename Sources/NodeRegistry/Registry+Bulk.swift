import Foundation
import Platform

/// What an administrator gives for one node to register: values as typed, checked by
/// `Registry.addNodes`.
public struct NodeSpec: Codable, Sendable, Equatable {
    public var name: String
    public var macs: [String]
    /// IPv4 address with an optional prefix length (`10.1.0.5/16`; /24 when none is given).
    public var ip: String
    public var image: String?
    public var group: String?
    public var bootConfig: String?
    public var bmc: String?

    public init(
        name: String, macs: [String], ip: String, image: String? = nil, group: String? = nil,
        bootConfig: String? = nil, bmc: String? = nil
    ) {
        self.name = name
        self.macs = macs
        self.ip = ip
        self.image = image
        self.group = group
        self.bootConfig = bootConfig
        self.bmc = bmc
    }

    /// The spec that registers `node` again as it is.
    public init(_ node: Node) {
        self.init(
            name: node.name, macs: node.macs, ip: "\(node.ip)/\(node.prefix)", image: node.image, group: node.group,
            bootConfig: node.bootConfig, bmc: node.bmc)
    }

    /// One spec per name, counting addresses up from the first (`10.1.0.1`, `10.1.0.2` …): the
    /// IP, each MAC and the BMC address of the n-th name are the given ones plus n.
    /// - Throws: `.invalidArgument` for a malformed start value or a count that leaves its
    ///   network (IP, BMC) or vendor prefix (MAC).
    public static func counting(
        names: [String], ip: String, macs: [String], bmc: String?, image: String?, group: String?,
        bootConfig: String?
    ) throws(QlustarError) -> [NodeSpec] {
        let (address, prefix) = try NodeFields.ipv4(ip)
        let macs = try macs.map { m throws(QlustarError) in try NodeFields.mac(m) }
        let bmc = try bmc.map { b throws(QlustarError) in try NodeFields.bmc(b) }
        var specs: [NodeSpec] = []
        specs.reserveCapacity(names.count)
        for (n, name) in names.enumerated() {
            specs.append(
                NodeSpec(
                    name: name, macs: try macs.map { m throws(QlustarError) in try NodeFields.mac(m, plus: n) },
                    ip: try NodeFields.ipv4(address, plus: n, prefix: prefix) + "/\(prefix)", image: image,
                    group: group, bootConfig: bootConfig,
                    bmc: try bmc.map { b throws(QlustarError) in try NodeFields.ipv4(b, plus: n, prefix: 8) }))
        }
        return specs
    }
}

extension Registry {
    /// The most problems one refused batch lists before "and N more".
    static let listedProblems = 20

    /// Registers `specs` in one transaction: all of them, or none when any value is malformed
    /// or taken (by a registered node or another spec of the batch).
    /// - Returns: The registered nodes, by name.
    /// - Throws: `.invalidArgument` listing every problem (up to `listedProblems`), each naming
    ///   the node and, for a conflict, the owner.
    @discardableResult
    public func addNodes(_ specs: [NodeSpec]) throws(QlustarError) -> [Node] {
        var problems = Problems()
        var rows: [(node: Node, macs: [String])] = []
        var names: [String: String] = [:]
        var macOwner: [String: String] = [:]
        var ipOwner: [String: String] = [:]
        var bmcOwner: [String: String] = [:]
        for spec in specs {
            do {
                let node = try validated(spec)
                if let other = names[node.name] {
                    problems.add(nil, "node \(node.name) is given twice (as \(other) and \(spec.name))")
                    continue
                }
                names[node.name] = spec.name
                for mac in node.macs {
                    if let owner = macOwner.updateValue(node.name, forKey: mac) {
                        problems.add(node.name, "MAC \(mac) is also given for \(owner)")
                    }
                }
                if let owner = ipOwner.updateValue(node.name, forKey: node.ip) {
                    problems.add(node.name, "IP \(node.ip) is also given for \(owner)")
                }
                if let bmc = node.bmc, let owner = bmcOwner.updateValue(node.name, forKey: bmc) {
                    problems.add(node.name, "BMC \(bmc) is also given for \(owner)")
                }
                rows.append((node, node.macs))
            } catch {
                problems.add(nil, error.message)
            }
        }
        try problems.refuse(count: specs.count)
        try write { db throws(QlustarError) in
            var problems = Problems()
            let nodes = try self.ownerMap(db, "SELECT name, name FROM node")
            let macs = try self.ownerMap(db, "SELECT mac, node FROM node_mac")
            let ips = try self.ownerMap(db, "SELECT ip, name FROM node")
            let bmcs = try self.ownerMap(db, "SELECT bmc, name FROM node WHERE bmc IS NOT NULL")
            let groups = Set(try self.fetchStrings(db, "SELECT name FROM node_group", []))
            let configs = Set(try self.fetchStrings(db, "SELECT name FROM boot_config", []))
            for (node, _) in rows {
                if nodes[node.name] != nil {
                    // Its own MACs and IP are no news then.
                    problems.add(nil, "node \(node.name) is already registered")
                    continue
                }
                for mac in node.macs {
                    if let owner = macs[mac] { problems.add(node.name, "MAC \(mac) already belongs to node \(owner)") }
                }
                if let owner = ips[node.ip] {
                    problems.add(node.name, "IP \(node.ip) already belongs to node \(owner)")
                }
                if let bmc = node.bmc, let owner = bmcs[bmc] {
                    problems.add(node.name, "BMC \(bmc) already belongs to node \(owner)")
                }
                if let g = node.group, !groups.contains(g) {
                    problems.add(node.name, "no group \(g) (qluman group add \(g))")
                }
                if let b = node.bootConfig, !configs.contains(b) {
                    problems.add(node.name, "no boot configuration \(b) (qluman boot-config add)")
                }
            }
            try problems.refuse(count: rows.count)
            for (node, macs) in rows {
                try self.execute(
                    db,
                    "INSERT INTO node (name, ip, prefix, image, group_name, boot_config, bmc) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [node.name, node.ip, node.prefix, node.image, node.group, node.bootConfig, node.bmc])
                for mac in macs {
                    try self.execute(db, "INSERT INTO node_mac (mac, node) VALUES (?, ?)", [mac, node.name])
                }
            }
        }
        let wanted = Set(rows.map(\.node.name))
        return try nodes().filter { wanted.contains($0.name) }
    }

    /// The nodes `names` stands for, in registry order.
    /// - Throws: `.notFound` naming (folded) every name that is not registered.
    public func nodes(named names: [String]) throws(QlustarError) -> [Node] {
        let wanted = Set(names.map { $0.lowercased() })
        let found = try nodes().filter { wanted.contains($0.name) }
        if found.count < wanted.count {
            let missing = wanted.subtracting(found.map(\.name))
            throw QlustarError(.notFound, "not registered: \(Hostlist.fold(Array(missing)))")
        }
        return found
    }

    /// Sets image, group and boot configuration of several nodes in one transaction (what is
    /// nil stays; an inner nil clears).
    /// - Throws: `.notFound` for an unknown node, `.invalidArgument` for an unknown group or boot
    ///   configuration; nothing changes then.
    public func setNodes(
        _ names: [String], image: String?? = nil, group: String?? = nil, bootConfig: String?? = nil
    ) throws(QlustarError) -> [Node] {
        let targets = try nodes(named: names).map(\.name)
        let image = try image.map { i throws(QlustarError) -> String? in
            try i.map { v throws(QlustarError) in try ImageName(v).value }
        }
        let group = try group.map { g throws(QlustarError) -> String? in
            try g.map { v throws(QlustarError) in try NodeFields.group(v) }
        }
        try write { db throws(QlustarError) in
            if let g = group ?? nil, try self.fetchString(db, "SELECT name FROM node_group WHERE name = ?", [g]) == nil
            {
                throw QlustarError(.invalidArgument, "no group \(g) (qluman group add \(g))")
            }
            if let b = bootConfig ?? nil,
                try self.fetchString(db, "SELECT name FROM boot_config WHERE name = ?", [b]) == nil
            {
                throw QlustarError(
                    .invalidArgument, "no boot configuration \(NodeFields.quoted(b)) (qluman boot-config add)")
            }
            for name in targets {
                if let image { try self.execute(db, "UPDATE node SET image = ? WHERE name = ?", [image, name]) }
                if let group { try self.execute(db, "UPDATE node SET group_name = ? WHERE name = ?", [group, name]) }
                if let bootConfig {
                    try self.execute(db, "UPDATE node SET boot_config = ? WHERE name = ?", [bootConfig, name])
                }
            }
        }
        return try nodes(named: targets)
    }

    /// Removes the nodes `names` in one transaction.
    /// - Throws: `.notFound` when any of them is not registered (nothing is removed then).
    public func removeNodes(_ names: [String]) throws(QlustarError) {
        let targets = try nodes(named: names).map(\.name)
        try write { db throws(QlustarError) in
            for name in targets {
                try self.execute(
                    db, "DELETE FROM config_assignment WHERE target_kind = 'node' AND target = ?", [name])
                try self.execute(db, "DELETE FROM node WHERE name = ?", [name])
            }
        }
    }

    /// `spec` checked: a `Node` with normalised values.
    private func validated(_ spec: NodeSpec) throws(QlustarError) -> Node {
        let name = try NodeFields.hostname(spec.name)
        guard !spec.macs.isEmpty else { throw QlustarError(.invalidArgument, "node \(name) needs at least one MAC") }
        let macs = try spec.macs.map { m throws(QlustarError) in try NodeFields.mac(m) }
        guard Set(macs).count == macs.count else {
            throw QlustarError(.invalidArgument, "node \(name): the same MAC is given twice")
        }
        let (address, prefix) = try NodeFields.ipv4(spec.ip)
        return Node(
            name: name, macs: macs.sorted(), ip: address, prefix: prefix,
            image: try spec.image.map { i throws(QlustarError) in try ImageName(i).value },
            group: try spec.group.map { g throws(QlustarError) in try NodeFields.group(g) },
            bootConfig: try spec.bootConfig.map { b throws(QlustarError) in try NodeFields.group(b) },
            bmc: try spec.bmc.map { b throws(QlustarError) in try NodeFields.bmc(b) })
    }

    private func ownerMap(_ db: any SQLSession, _ sql: String) throws(QlustarError) -> [String: String] {
        var map: [String: String] = [:]
        for row in try rows(db, sql, []) { if let k = row[0].string, let v = row[1].string { map[k] = v } }
        return map
    }
}

/// The problems of a batch: all of them are reported at once, so one run shows everything to fix.
private struct Problems {
    private var lines: [(node: String?, text: String)] = []

    mutating func add(_ node: String?, _ text: String) { lines.append((node, text)) }

    /// Throws when there is any: a single node's one problem as it is, else every problem
    /// (up to `Registry.listedProblems`) on its own line, named by node.
    func refuse(count: Int) throws(QlustarError) {
        guard let first = lines.first else { return }
        if count == 1, lines.count == 1 { throw QlustarError(.invalidArgument, first.text) }
        // The same problem of many nodes is one line, the nodes folded (beo-[001-100]: no group …).
        var groups: [(text: String, nodes: [String])] = []
        var index: [String: Int] = [:]
        for line in lines {
            guard let node = line.node else {
                groups.append((line.text, []))
                continue
            }
            if let i = index[line.text] {
                groups[i].nodes.append(node)
            } else {
                index[line.text] = groups.count
                groups.append((line.text, [node]))
            }
        }
        let folded = groups.map { $0.nodes.isEmpty ? $0.text : Hostlist.fold($0.nodes) + ": " + $0.text }
        let shown = folded.prefix(Registry.listedProblems).map { "  " + $0 }
        let more = folded.count > shown.count ? ["  and \(folded.count - shown.count) more"] : []
        let what = count == 1 ? "the node was not" : "none of the \(count) nodes was"
        throw QlustarError(
            .invalidArgument,
            "\(what) registered: \(lines.count) problem\(lines.count == 1 ? "" : "s")\n"
                + (shown + more).joined(separator: "\n"))
    }
}
