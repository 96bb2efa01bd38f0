import Platform

/// Many nodes' outcomes folded as an administrator reads them: one hostlist per outcome,
/// successes first, then the rest by size (`on: beo-[001-097]  timeout: beo-[098-100]`).
public struct OutcomeSummary: Codable, Sendable, Equatable {
    public struct Group: Codable, Sendable, Equatable {
        public var outcome: String
        public var nodes: String
        public var count: Int
        public var succeeded: Bool
    }

    public var groups: [Group]

    /// `results` as (node, outcome, succeeded) folded by outcome.
    public init(_ results: [(node: String, outcome: String, succeeded: Bool)]) {
        var byOutcome: [String: (nodes: [String], succeeded: Bool)] = [:]
        for r in results {
            byOutcome[r.outcome, default: ([], r.succeeded)].nodes.append(r.node)
        }
        groups = byOutcome.map {
            Group(
                outcome: $0.key, nodes: Hostlist.fold($0.value.nodes), count: $0.value.nodes.count,
                succeeded: $0.value.succeeded)
        }
        .sorted { ($0.succeeded ? 0 : 1, -$0.count, $0.outcome) < ($1.succeeded ? 0 : 1, -$1.count, $1.outcome) }
    }

    /// True when every node succeeded.
    public var allSucceeded: Bool { groups.allSatisfy(\.succeeded) }

    /// One line: `outcome: hostlist` per group, two spaces apart.
    public var line: String { groups.map { "\($0.outcome): \($0.nodes)" }.joined(separator: "  ") }
}
