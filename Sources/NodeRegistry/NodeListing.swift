import Foundation
import NodeConfig

#if canImport(Glibc)
    import Glibc
#endif

/// A registered node as `qluman node list` shows it: the registry's values, whether it is up,
/// and its last boot.
public struct NodeListing: Codable, Sendable, Equatable {
    /// Up: its qluman-execd is connected to qlumand. Down: known to have booted (or to have
    /// been connected) but silent now. Never booted: no boot and no agent seen. Unknown:
    /// qlumand could not be asked.
    public enum State: String, Codable, Sendable {
        case up, down
        case neverBooted = "never-booted"
        case unknown
    }

    public var node: Node
    public var state: State
    /// Since when it is down (seconds since 1970): its agent's last report, else its last
    /// boot event.
    public var downSince: Double?
    /// When its newest boot started, how far it got and how it ended.
    public var lastBoot: LastBoot?

    public struct LastBoot: Codable, Sendable, Equatable {
        public var startedAt: Double
        public var stage: BootStage
        public var outcome: BootOutcome
    }

    /// The listing of `nodes`.
    /// - Parameters:
    ///   - boots: Each node's newest boot (`Registry.currentBoots`).
    ///   - agents: qlumand's agents (`QlumanOperation.nodes`); nil when qlumand did not answer.
    ///   - now: Seconds since 1970.
    public static func of(
        _ nodes: [Node], boots: [String: BootRecord], agents: [NodeMonitor]?, now: Double
    ) -> [NodeListing] {
        let byName = Dictionary((agents ?? []).map { ($0.node, $0) }, uniquingKeysWith: { a, _ in a })
        return nodes.map { node in
            let boot = boots[node.name]
            let last = boot.map { LastBoot(startedAt: $0.startedAt, stage: $0.stage, outcome: $0.outcome) }
            guard agents != nil else { return NodeListing(node: node, state: .unknown, lastBoot: last) }
            if let agent = byName[node.name] {
                if agent.connected { return NodeListing(node: node, state: .up, lastBoot: last) }
                let seen = agent.secondsSinceSeen.map { now - $0 }
                return NodeListing(node: node, state: .down, downSince: seen ?? boot?.lastEventAt, lastBoot: last)
            }
            guard let boot else { return NodeListing(node: node, state: .neverBooted) }
            return NodeListing(node: node, state: .down, downSince: boot.lastEventAt, lastBoot: last)
        }
    }

    public init(node: Node, state: State, downSince: Double? = nil, lastBoot: LastBoot? = nil) {
        self.node = node
        self.state = state
        self.downSince = downSince
        self.lastBoot = lastBoot
    }

    /// The columns `qluman node list -o` knows, in their default order.
    public static let columns = ["name", "ip", "mac", "group", "image", "boot-config", "bmc", "state", "last-boot"]

    /// The text of `column` (one of `columns`); `-` for nothing.
    public func text(_ column: String, now: Double) -> String {
        let value: String?
        switch column {
        case "name": value = node.name
        case "ip": value = "\(node.ip)/\(node.prefix)"
        case "mac": value = node.macs.joined(separator: ",")
        case "group": value = node.group
        case "image": value = node.image
        case "boot-config": value = node.bootConfig
        case "bmc": value = node.bmc
        case "state":
            switch state {
            case .down: value = "down" + (downSince.map { " since " + NodeListing.time($0, now: now) } ?? "")
            default: value = state.rawValue
            }
        case "last-boot":
            value = lastBoot.map { b in
                NodeListing.time(b.startedAt, now: now) + " "
                    + (b.outcome == .booting ? "at \(b.stage.rawValue)" : b.outcome.rawValue)
                    + (b.outcome == .failed ? " at \(b.stage.rawValue)" : "")
            }
        default: value = nil
        }
        return value ?? "-"
    }

    /// A time as an administrator reads it in a list: the clock time today, else the date too.
    static func time(_ t: Double, now: Double) -> String {
        var seconds = time_t(t.isFinite ? max(0, min(t, 1e11)) : 0)
        var parts = tm()
        localtime_r(&seconds, &parts)
        let clock = String(format: "%02d:%02d:%02d", parts.tm_hour, parts.tm_min, parts.tm_sec)
        guard !(now - t < 20 * 3_600 && t <= now) else { return clock }
        return String(format: "%04d-%02d-%02d ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday) + clock
    }
}
