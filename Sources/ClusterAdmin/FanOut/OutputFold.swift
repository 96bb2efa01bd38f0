import Platform

/// Many nodes' output folded as `dshbak -c` does: nodes whose output is the same byte for byte
/// are printed once, under a header naming them as a hostlist; the largest groups first.
public enum OutputFold {
    public struct Group: Codable, Sendable, Equatable {
        public var nodes: String
        public var count: Int
        public var output: String
    }

    /// The groups of `results` (node, output).
    public static func groups(_ results: [(node: String, output: String)]) -> [Group] {
        var byOutput: [String: [String]] = [:]
        for r in results { byOutput[r.output, default: []].append(r.node) }
        return byOutput.map { Group(nodes: Hostlist.fold($0.value), count: $0.value.count, output: $0.key) }
            .sorted { ($0.count, $1.nodes) > ($1.count, $0.nodes) }
    }

    /// The groups as text: a ruled header with the hostlist (and count when several), then the
    /// output (a last line without its line end gets one).
    public static func text(_ groups: [Group]) -> String {
        groups.map { g in
            let title = g.count > 1 ? "\(g.nodes) (\(g.count))" : g.nodes
            let rule = String(repeating: "-", count: max(16, min(title.count, 78)))
            let body = g.output.isEmpty ? "" : g.output.hasSuffix("\n") ? g.output : g.output + "\n"
            return "\(rule)\n\(title)\n\(rule)\n\(body)"
        }.joined()
    }
}
