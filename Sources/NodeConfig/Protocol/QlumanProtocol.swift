/// The control-channel operations of qlumand (framing: `docs/PROTOCOL.md`, operations:
/// `docs/QLUMAN.md`). Always over TLS: node configurations carry keys and secrets.
public enum QlumanOperation {
    /// A node asks for its configuration (`ConfigureRequest` → data answer: `ConfigureReply`
    /// JSON, then the Root FS Customization archives back to back).
    public static let configure = "configure"
    /// An administrator asks for counters (`QlumandStatus`).
    public static let status = "status"
}

/// What a node sends with `configure`. The node is identified by the address it connects from;
/// the MACs must include one registered for that node, and the token must match when the node
/// has one.
public struct ConfigureRequest: Codable, Sendable, Equatable {
    public var macs: [String]
    /// The enrollment token, when the node has been given one (never logged).
    public var token: String?
    public var osFamily: OSFamily
    public var hostname: String?

    public init(macs: [String], token: String?, osFamily: OSFamily, hostname: String?) {
        self.macs = macs
        self.token = token
        self.osFamily = osFamily
        self.hostname = hostname
    }
}

public struct ConfigureReply: Codable, Sendable, Equatable {
    public var options: NodeOptions
    public init(options: NodeOptions) { self.options = options }
}

/// qlumand's counters.
public struct QlumandStatus: Codable, Sendable, Equatable {
    public var configured: UInt64 = 0
    /// Refused configure requests by reason (unknown-address, mac-mismatch, token, invalid).
    public var refused: [String: UInt64] = [:]
    public var failed: UInt64 = 0
    public var rootFSArchivesBuilt: UInt64 = 0
    public var nodes: Int = 0
    public var connections: UInt64 = 0
    public var framingErrors: UInt64 = 0
    public var tlsErrors: UInt64 = 0

    public init() {}
}
