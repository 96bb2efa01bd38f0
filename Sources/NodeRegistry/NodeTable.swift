import Foundation
import Platform
import Yams

/// The registered nodes as a table an administrator edits: CSV (a header row, one node per
/// row) or YAML (a list of mappings), with the columns `name`, `mac` (several separated by
/// spaces in CSV, a list in YAML), `ip` (with its prefix length), `group`, `image`,
/// `boot_config` and `bmc`. What `encode` writes, `decode` reads back to the same nodes.
public enum NodeTable {
    public enum Format: String, CaseIterable, Sendable {
        case csv, yaml

        /// The format a file name suggests (`.csv`, `.yaml`, `.yml`), nil when it says none.
        public init?(path: String) {
            let lower = path.lowercased()
            if lower.hasSuffix(".csv") {
                self = .csv
            } else if lower.hasSuffix(".yaml") || lower.hasSuffix(".yml") {
                self = .yaml
            } else {
                return nil
            }
        }
    }

    /// The columns, in the order `encode` writes them.
    public static let columns = ["name", "mac", "ip", "group", "image", "boot_config", "bmc"]

    /// The largest table `decode` reads.
    public static let maxBytes = 16 << 20

    /// `nodes` as a table.
    public static func encode(_ nodes: [Node], as format: Format) -> String {
        let rows = nodes.map { n -> [String?] in
            [n.name, n.macs.joined(separator: " "), "\(n.ip)/\(n.prefix)", n.group, n.image, n.bootConfig, n.bmc]
        }
        switch format {
        case .csv:
            return ([CSV.line(columns)] + rows.map { CSV.line($0.map { $0 ?? "" }) }).map { $0 + "\n" }.joined()
        case .yaml:
            // Every value double-quoted (a JSON string is a YAML double-quoted scalar): a MAC
            // like 52:54:00:… is a base-60 number to YAML 1.1 readers, a name like "no" a boolean.
            var out = "# qluman node export: \(nodes.count) node\(nodes.count == 1 ? "" : "s")\n"
            for (node, row) in zip(nodes, rows) {
                for (i, (column, value)) in zip(columns, row).enumerated() {
                    guard let value else { continue }
                    let text =
                        column == "mac" ? "[" + node.macs.map(quote).joined(separator: ", ") + "]" : quote(value)
                    out += (i == 0 ? "- " : "  ") + column + ": " + text + "\n"
                }
            }
            return nodes.isEmpty ? out + "[]\n" : out
        }
    }

    /// The nodes a table describes, unchecked beyond their shape (`Registry.addNodes` checks
    /// the values).
    /// - Throws: `.invalidArgument` naming the row (or line) and column of what is wrong: an
    ///   unknown or repeated column, a missing name, mac or ip, a value of the wrong type, more
    ///   than `Hostlist.maxNames` rows, a table larger than `maxBytes`.
    public static func decode(_ text: String, as format: Format) throws(QlustarError) -> [NodeSpec] {
        guard text.utf8.count <= maxBytes else {
            throw QlustarError(.invalidArgument, "the table is larger than \(maxBytes >> 20) MiB")
        }
        switch format {
        case .csv: return try decodeCSV(text)
        case .yaml: return try decodeYAML(text)
        }
    }

    private static func decodeCSV(_ text: String) throws(QlustarError) -> [NodeSpec] {
        let rows = try CSV.rows(text, maxRows: Hostlist.maxNames + 1)
        guard let header = rows.first else { return [] }
        let names = header.map { normalised($0) }
        for (i, column) in names.enumerated() {
            guard columns.contains(column) else {
                throw QlustarError(
                    .invalidArgument,
                    "header: unknown column \(ImageName.quoted(header[i])) (columns: \(columns.joined(separator: ", ")))"
                )
            }
            guard names.firstIndex(of: column) == i else {
                throw QlustarError(.invalidArgument, "header: column \(column) is given twice")
            }
        }
        var specs: [NodeSpec] = []
        for (r, row) in rows.dropFirst().enumerated() {
            guard row.count == names.count else {
                throw QlustarError(
                    .invalidArgument, "row \(r + 1): \(row.count) fields where the header has \(names.count)")
            }
            var values: [String: String] = [:]
            for (column, field) in zip(names, row) {
                let value = field.trimmingCharacters(in: .whitespaces)
                if !value.isEmpty { values[column] = value }
            }
            specs.append(
                try spec(values, macs: values["mac"].map { $0.split(separator: " ").map(String.init) }, "row \(r + 1)"))
        }
        return specs
    }

    private static func decodeYAML(_ text: String) throws(QlustarError) -> [NodeSpec] {
        let root: Yams.Node?
        do { root = try Yams.compose(yaml: text) } catch {
            throw QlustarError(.invalidArgument, "not YAML: \(String(describing: error).printableLine)")
        }
        guard let root else { return [] }
        guard let sequence = root.sequence else {
            throw QlustarError(.invalidArgument, "the table must be a list of nodes (- name: …)")
        }
        guard sequence.count <= Hostlist.maxNames else {
            throw QlustarError(.invalidArgument, "more than \(Hostlist.maxNames) nodes")
        }
        var specs: [NodeSpec] = []
        for (n, item) in sequence.enumerated() {
            let place = "node \(n + 1) (line \(item.mark.map { String($0.line) } ?? "?"))"
            guard let mapping = item.mapping else {
                throw QlustarError(.invalidArgument, "\(place): a node is a mapping (name: …, mac: …, ip: …)")
            }
            var values: [String: String] = [:]
            var macs: [String]?
            for (key, value) in mapping {
                guard let keyText = key.scalar?.string, columns.contains(normalised(keyText)) else {
                    throw QlustarError(
                        .invalidArgument,
                        "\(place): unknown key \(ImageName.quoted(key.scalar?.string ?? "(not text)")) (keys: \(columns.joined(separator: ", ")))"
                    )
                }
                let column = normalised(keyText)
                guard values[column] == nil, column != "mac" || macs == nil else {
                    throw QlustarError(.invalidArgument, "\(place): \(column) is given twice")
                }
                if column == "mac", let list = value.sequence {
                    macs = try list.map { v throws(QlustarError) in
                        guard let s = v.scalar?.string else {
                            throw QlustarError(.invalidArgument, "\(place): mac: each MAC is one value")
                        }
                        return s
                    }
                    continue
                }
                guard let scalar = value.scalar?.string else {
                    throw QlustarError(.invalidArgument, "\(place): \(column) must be one value, not a list or mapping")
                }
                if column == "mac" {
                    macs = scalar.split(separator: " ").map(String.init)
                } else {
                    values[column] = scalar
                }
            }
            specs.append(try spec(values, macs: macs, place))
        }
        return specs
    }

    private static func spec(_ values: [String: String], macs: [String]?, _ place: String) throws(QlustarError)
        -> NodeSpec
    {
        guard let name = values["name"] else { throw QlustarError(.invalidArgument, "\(place): no name") }
        guard let macs, !macs.isEmpty else { throw QlustarError(.invalidArgument, "\(place) (\(name)): no mac") }
        guard let ip = values["ip"] else { throw QlustarError(.invalidArgument, "\(place) (\(name)): no ip") }
        return NodeSpec(
            name: name, macs: macs, ip: ip, image: values["image"], group: values["group"],
            bootConfig: values["boot_config"], bmc: values["bmc"])
    }

    /// `boot-config`, `Boot Config` and `boot_config` name one column.
    private static func normalised(_ column: String) -> String {
        column.trimmingCharacters(in: .whitespaces).lowercased().replacingOccurrences(of: "-", with: "_")
            .replacingOccurrences(of: " ", with: "_")
    }

    private static func quote(_ value: String) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        let data = (try? encoder.encode(value)) ?? Data("\"\"".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
