import Foundation
import NodeConfig
import Platform

/// The boots of the nodes, as qlumand's boot monitor keeps them: each node's newest
/// `keptBoots`, the current one first.
extension Registry {
    /// Boots kept per node; older ones are deleted as new ones are stored.
    public static let keptBoots = 5

    /// Stores `records` in one transaction (a new boot is inserted, a known one updated) and
    /// keeps each node's newest `keptBoots`.
    /// - Returns: The records' ids, in order. A record of a node no longer registered is
    ///   skipped (id 0).
    public func saveBoots(_ records: [BootRecord]) throws(QlustarError) -> [Int64] {
        guard !records.isEmpty else { return [] }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var ids: [Int64] = []
        try write { db throws(QlustarError) in
            ids = []
            for var r in records {
                guard try self.fetchString(db, "SELECT name FROM node WHERE name = ?", [r.node]) != nil else {
                    ids.append(0)
                    continue
                }
                if r.id == 0 {
                    let inserted = try self.rows(
                        db,
                        "INSERT INTO boot (node, started_at, stage, outcome, record) VALUES (?, ?, ?, ?, '{}') "
                            + "RETURNING id",
                        [r.node, r.startedAt, r.stage.rawValue, r.outcome.rawValue])
                    guard let id = inserted.first?[0].int64 else {
                        throw QlustarError(.io, "node registry: no id for the new boot of \(r.node)")
                    }
                    r.id = id
                    try self.execute(
                        db,
                        "DELETE FROM boot WHERE node = ? AND id NOT IN "
                            + "(SELECT id FROM boot WHERE node = ? ORDER BY id DESC LIMIT \(Registry.keptBoots))",
                        [r.node, r.node])
                }
                let json: String
                do { json = String(decoding: try encoder.encode(r), as: UTF8.self) } catch {
                    throw QlustarError(.io, "boot of \(r.node): \(error)")
                }
                try self.execute(
                    db, "UPDATE boot SET stage = ?, outcome = ?, record = ? WHERE id = ?",
                    [r.stage.rawValue, r.outcome.rawValue, json, r.id])
                ids.append(r.id)
            }
        }
        return ids
    }

    /// Every node's newest boot.
    public func currentBoots() throws(QlustarError) -> [String: BootRecord] {
        let rows = try bootRecords(
            "SELECT record FROM boot WHERE id IN (SELECT MAX(id) FROM boot GROUP BY node)", [])
        return Dictionary(rows.map { ($0.node, $0) }, uniquingKeysWith: { a, b in a.id > b.id ? a : b })
    }

    /// `node`'s kept boots, newest first.
    public func boots(of node: String) throws(QlustarError) -> [BootRecord] {
        try bootRecords("SELECT record FROM boot WHERE node = ? ORDER BY id DESC", [node.lowercased()])
    }

    private func bootRecords(_ sql: String, _ arguments: [(any SQLBindable)?]) throws(QlustarError)
        -> [BootRecord]
    {
        let texts = try read { db throws(QlustarError) in try self.fetchStrings(db, sql, arguments) }
        let decoder = JSONDecoder()
        // A record that no longer decodes (written by another version) is left out, not fatal.
        return texts.compactMap { try? decoder.decode(BootRecord.self, from: Data($0.utf8)) }
    }
}
