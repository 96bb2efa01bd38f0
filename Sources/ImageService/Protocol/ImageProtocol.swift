import Platform
import Transport

/// The operations ql-mcastd answers on its control port (framed JSON, see docs/PROTOCOL.md and
/// docs/IMAGE-SERVICE.md), and their arguments and answers.
public enum ImageOperation {
    /// `request-image {image, host?, unicast?, token?, expect?}` → `ImageTicket`. With a registry, this,
    /// `fetch` and `list-images` are answered for registered nodes only (`not-registered`).
    public static let requestImage = "request-image"
    /// `fetch {image, sha256, offset, length}` → data frame `FetchHeader` + the bytes.
    public static let fetch = "fetch"
    /// `status` → `ServerStatus`.
    public static let status = "status"
    /// `list-images {token?}` → `[ImageManifest]`.
    public static let listImages = "list-images"
    /// `report {image, exitStatus, message, token?}` → `{}`: a client that gives up says why (a
    /// boot monitor shows it; the daemon only records it).
    public static let report = "report"
    /// `fetch-file {image, file, offset, length, token}` → data frame `FileFetchHeader` + the
    /// bytes: a range of the image's initrd, kernel or manifest, for the other head node only
    /// (its `token` is the heads' shared `peer-token`): what `qlustar-image replicate` copies.
    public static let fetchFile = "fetch-file"
}

/// The files published beside `IMG.img` that `fetch-file` serves (nodes get the first two by TFTP).
public enum PublishedFile: String, Codable, Sendable, CaseIterable {
    case initrd, vmlinuz, manifest
}

public struct FileFetchRequest: Codable, Sendable {
    public var image: String
    public var file: PublishedFile
    public var offset: UInt64
    public var length: Int
    /// The heads' shared secret (`peer-token`).
    public var token: String

    public init(image: String, file: PublishedFile, offset: UInt64, length: Int, token: String) {
        self.image = image
        self.file = file
        self.offset = offset
        self.length = length
        self.token = token
    }
}

/// The JSON before the bytes of a `fetch-file` answer: the range and the whole file's size.
public struct FileFetchHeader: Codable, Sendable {
    public var offset: UInt64
    public var length: Int
    public var size: UInt64
}

/// What a client that failed says before it exits.
public struct ClientFailureReport: Codable, Sendable {
    public var image: String
    public var exitStatus: Int32
    public var message: String
    /// The client's last log lines (the daemon keeps at most 10, each at most 150 characters).
    public var logTail: [String]?
    public var token: String?

    public init(image: String, exitStatus: Int32, message: String, logTail: [String]?, token: String?) {
        self.image = image
        self.exitStatus = exitStatus
        self.message = message
        self.logTail = logTail
        self.token = token
    }
}

public struct ImageRequest: Codable, Sendable {
    public var image: String
    /// The node's host name, for status and logs.
    public var host: String?
    /// Ask for the unicast path straight away.
    public var unicast: Bool?
    /// The node's enrollment token, when the registry gives it one.
    public var token: String?
    /// How many nodes of this boot wave will ask for the image, this one included: the session
    /// starts as soon as that many members have asked (the largest number any member gave), at
    /// the latest when its window ends. 1…`ImageRequest.maxExpect`.
    public var expect: Int?

    /// The largest `expect` a request may carry; more is garbage, not a wave.
    public static let maxExpect = 1_000_000

    public init(image: String, host: String? = nil, unicast: Bool? = nil, token: String? = nil, expect: Int? = nil) {
        self.image = image
        self.host = host
        self.unicast = unicast
        self.token = token
        self.expect = expect
    }
}

/// The answer to `request-image`: how to get the image, and what it must hash to.
public struct ImageTicket: Codable, Sendable, Equatable {
    public enum Mode: String, Codable, Sendable {
        /// Join `group:port`; the session starts in `startsInMillis`.
        case multicast
        /// Fetch everything with `fetch` (asked for, or the server's session limit was reached).
        case unicast
    }

    public var mode: Mode
    /// Why the mode is unicast when the client did not ask for it.
    public var reason: String?
    public var image: String
    public var sha256: SHA256Digest
    public var objectSize: UInt64
    public var symbolSize: Int
    public var sourceSymbols: Int
    public var sessionID: UInt32 = 0
    public var group: String?
    public var port: UInt16?
    /// The id this client uses in its NAKs and STATUS (the server waits for it).
    public var receiverID: UInt32 = 0
    /// Hex session key for per-datagram authentication, when the server requires it.
    public var key: String?
    /// The session's symbols are sealed under `key` (AES-GCM).
    public var encrypted: Bool?
    public var startsInMillis: Int = 0
    /// True when this client joins a session that has already started (late join).
    public var lateJoin: Bool = false

    /// The layout, validated (the ticket came off the network).
    public func layout() throws(QlustarError) -> ObjectLayout {
        do {
            return try ObjectLayout(objectSize: objectSize, symbolSize: symbolSize, sourceSymbols: sourceSymbols)
        } catch {
            throw QlustarError(.transfer, "the server's layout for '\(image)' is invalid: \(error.message)")
        }
    }
}

public struct FetchRequest: Codable, Sendable {
    public var image: String
    public var sha256: SHA256Digest
    public var offset: UInt64
    public var length: Int
    /// The node's enrollment token, as in `ImageRequest`.
    public var token: String?

    public init(image: String, sha256: SHA256Digest, offset: UInt64, length: Int, token: String? = nil) {
        self.image = image
        self.sha256 = sha256
        self.offset = offset
        self.length = length
        self.token = token
    }
}

/// The credentials any admission-checked request may carry (`list-images {token?}` has no others).
public struct Credentials: Codable, Sendable {
    public var token: String?
    public init(token: String? = nil) { self.token = token }
}

/// The JSON before the bytes of a `fetch` answer.
public struct FetchHeader: Codable, Sendable {
    public var offset: UInt64
    public var length: Int
}

/// What `status` answers: the daemon's sessions, members and counters.
public struct ServerStatus: Codable, Sendable {
    public var uptimeSeconds: Double
    public var images: [String]
    public var sessions: [SessionStatus]
    public var counters: ServerCounters
    public var limits: ServerLimits
    /// What happened to clients' requests outside the sessions (refusals, unicast tickets):
    /// those after `eventsSince`, or the newest 50 (absent from older daemons).
    public var events: [ClientEvent]?
    /// What this head last heard of the other head's images (`peer`; absent without one).
    public var peer: PeerStatus?
}

/// The other head node as ql-mcastd last heard it.
public struct PeerStatus: Codable, Sendable {
    public var address: String
    /// Seconds since its last answer (nil: none yet).
    public var heardSecondsAgo: Double?
    /// Its images and their SHA-256.
    public var images: [String: String]
    /// Whether versions it does not have are held back here.
    public var holdBack: Bool
}

/// `status {eventsSince?}`: the events after that sequence number (a boot monitor's poll).
public struct StatusRequest: Codable, Sendable {
    public var eventsSince: UInt64?
    public init(eventsSince: UInt64?) { self.eventsSince = eventsSince }
}

/// One thing that happened to a client's request: refused (and why), or answered with a
/// unicast ticket. Numbered: a poller asks for what came after the last it saw.
public struct ClientEvent: Codable, Sendable, Equatable {
    public var seq: UInt64
    /// Seconds since the epoch.
    public var at: Double
    /// The client's address (no port).
    public var address: String
    public var image: String
    public var what: String
    /// The request cannot succeed as asked (no such image, malformed, refused by the registry).
    public var failed: Bool
    /// The client is expected to ask again (ql-mcastd busy).
    public var retry: Bool
}

public struct SessionStatus: Codable, Sendable {
    public enum State: String, Codable, Sendable { case gathering, running, finished }
    public var sessionID: UInt32
    public var image: String
    public var sha256: SHA256Digest
    public var group: String
    public var state: State
    public var members: [MemberStatus]
    /// Members the session waits for before its window ends (the largest `expect` asked with;
    /// nil: it waits for the window alone).
    public var expected: Int?
    /// Why it started (or starts): `all N expected members asked` or `window`; nil while gathering.
    public var startReason: String?
    /// Seconds since the first request; negative start means it has not started yet.
    public var ageSeconds: Double
    /// The sender's last snapshot (rate, blocks, NAKs, per-receiver loss), once running.
    public var progress: SenderProgress?
    /// The outcome, once finished.
    public var outcome: String?
}

public struct MemberStatus: Codable, Sendable {
    public var receiverID: UInt32
    public var host: String
    public var address: String
    public var lateJoin: Bool
}

public struct ServerCounters: Codable, Sendable, Equatable {
    public var requests: UInt64 = 0
    public var sessionsStarted: UInt64 = 0
    public var sessionsFinished: UInt64 = 0
    public var sessionsAborted: UInt64 = 0
    public var lateJoins: UInt64 = 0
    /// Clients that reported giving up (`report`).
    public var clientFailures: UInt64 = 0
    /// Sessions started before their window ended because every expected member had asked.
    public var sessionsStartedEarly: UInt64 = 0
    /// Requests whose `expect` was outside 1…`ImageRequest.maxExpect` (refused as malformed).
    public var badExpect: UInt64 = 0
    public var unicastTickets: UInt64 = 0
    public var fetches: UInt64 = 0
    public var fetchedBytes: UInt64 = 0
    public var refusedAtLimit: UInt64 = 0
    public var badRequests: UInt64 = 0
    public var unknownImages: UInt64 = 0
    public var controlConnections: UInt64 = 0
    public var controlFramingErrors: UInt64 = 0
    public var controlIdleTimeouts: UInt64 = 0
    public var controlRefused: UInt64 = 0
    /// Of those, refused because their source address held `max-connections-per-host` already.
    public var controlRefusedPerHost: UInt64 = 0
    /// Request frames begun and not finished within the frame deadline (closed).
    public var controlIncompleteFrames: UInt64 = 0
    /// Requests answered `busy` because the connection's earlier answers were unread.
    public var controlUnreadAnswers: UInt64 = 0
    /// Connections that failed in TLS (wrong CA, plain text on the TLS port) or were reset.
    public var controlTLSErrors: UInt64 = 0
    /// Requests refused by the registry: the source address belongs to no registered node.
    public var refusedNotRegistered: UInt64 = 0
    /// ... it does, but the neighbour table shows another MAC for it (or none).
    public var refusedMACMismatch: UInt64 = 0
    /// ... with the right MAC, but without the node's enrollment token.
    public var refusedToken: UInt64 = 0
    /// `fetch-file` requests without the heads' peer token (refused), and the ranges served.
    public var peerRefusals: UInt64 = 0
    public var peerFileFetches: UInt64 = 0
    public var peerFileBytes: UInt64 = 0
    /// Requests for an image version the other head node does not have (served the previous
    /// version, or refused).
    public var heldBack: UInt64 = 0

    public init() {}
}

public struct ServerLimits: Codable, Sendable, Equatable {
    public var maxSessions: Int
    public var maxClients: Int
    public var rate: String
}
