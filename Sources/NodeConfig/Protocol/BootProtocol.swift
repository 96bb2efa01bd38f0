import Foundation

/// The boot monitor's operations on qlumand (`docs/QLUMAN.md`, "Boot monitor").
extension QlumanOperation {
    /// A node's execd reports a step of its boot (TLS port, identified like `configure`):
    /// `BootReportRequest` → `{}`.
    public static let bootReport = "boot-report"
    /// Administration socket: every node's current boot (`BootStatusRequest` → `BootStatus`).
    public static let bootStatus = "boot-status"
}

/// What a node's execd says of its boot: the stage it reached and what happened.
public struct BootReportRequest: Codable, Sendable {
    public var credentials: NodeCredentials
    public var stage: BootStage
    public var what: String
    public var failed: Bool

    public init(credentials: NodeCredentials, stage: BootStage, what: String, failed: Bool = false) {
        self.credentials = credentials
        self.stage = stage
        self.what = what
        self.failed = failed
    }
}

public struct BootStatusRequest: Codable, Sendable {
    /// The nodes to show (nil: every registered node).
    public var nodes: [String]?
    /// A node in one stage longer than this is flagged stuck.
    public var stuckSeconds: Double

    public init(nodes: [String]?, stuckSeconds: Double) {
        self.nodes = nodes
        self.stuckSeconds = stuckSeconds
    }
}

/// `qluman boot status`: one line per node, and counts.
public struct BootStatus: Codable, Sendable {
    public struct Line: Codable, Sendable {
        public var node: String
        /// booting, up, failed; silent (registered, no sign of it since the wave began); never
        /// (no boot recorded at all).
        public var state: String
        public var stage: BootStage?
        /// Seconds in `stage` (booting), or since the boot ended.
        public var seconds: Double?
        public var stuck: Bool
        public var startedAt: Double?
        public var image: String?
        /// The first 12 hex digits of the image's SHA-256, as served.
        public var imageVersion: String?
        public var session: String?
        public var progress: Double?
        /// The node's multicast loss (0…1) while in `image`.
        public var loss: Double?
        public var retries: Int
        public var lastError: String?
        /// The boot's stages with the time each was reached (seconds since it started).
        public var stages: [String: Double]

        public init(node: String, state: String) {
            self.node = node
            self.state = state
            stuck = false
            retries = 0
            stages = [:]
        }
    }

    /// When qlumand answered (seconds since the epoch).
    public var at: Double
    /// The first boot start of the current wave (nil: no boot seen).
    public var waveStartedAt: Double?
    public var stuckSeconds: Double
    public var nodes: [Line]
    /// Nodes per stage (booting), and per state (up, failed, silent, never, stuck).
    public var counts: [String: Int]

    public init(at: Double, waveStartedAt: Double?, stuckSeconds: Double, nodes: [Line], counts: [String: Int]) {
        self.at = at
        self.waveStartedAt = waveStartedAt
        self.stuckSeconds = stuckSeconds
        self.nodes = nodes
        self.counts = counts
    }
}
