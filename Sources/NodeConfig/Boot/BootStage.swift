/// The stages of one node's boot as the head node sees them, in the order they happen. A node
/// is *in* a stage from the first sign of it until the first sign of the next: "tftp 45 s" is a
/// node whose loader, kernel or initrd has been loading for 45 seconds.
public enum BootStage: String, Codable, Sendable, CaseIterable, Comparable {
    /// The firmware's DHCP (PXE): discover, offer, request, ack.
    case dhcp
    /// TFTP: pxelinux.0, its config, the kernel and the initrd.
    case tftp
    /// The initrd's `/init` runs: its own DHCP, then the image request.
    case initrd
    /// The image: in a multicast session, or fetched by unicast.
    case image
    /// The image is verified (SHA-256); the union root and `init.qlustar` come next.
    case verified
    /// `qluman-execd --configure` (from `init.qlustar`) is configuring the node.
    case configure
    /// Configured; the `init.d` scripts run.
    case initd
    /// `init.d` done: the image's init (systemd) is starting its services.
    case system
    /// execd's daemon connected to qlumand: the node is up.
    case up

    /// The stage's place in the boot (0 for `dhcp`).
    public var order: Int { Self.allCases.firstIndex(of: self) ?? 0 }

    public static func < (a: BootStage, b: BootStage) -> Bool { a.order < b.order }
}

/// How a boot ended, or that it has not yet.
public enum BootOutcome: String, Codable, Sendable {
    case booting
    case up
    case failed
}

/// One thing the head node saw of a node's boot.
public struct BootEvent: Codable, Sendable, Equatable {
    /// Seconds since the epoch (the head node's clock).
    public var at: Double
    public var stage: BootStage
    /// What happened, short: "DHCPACK 10.1.0.5", "sent vmlinuz", "joined session 4711 late".
    public var what: String
    /// The event is a failure; `what` says why.
    public var failed: Bool
    /// The event repeats an earlier step (a DHCP or TFTP request sent again, a fetch retried).
    public var retry: Bool

    public init(at: Double, stage: BootStage, what: String, failed: Bool = false, retry: Bool = false) {
        self.at = at
        self.stage = stage
        self.what = String(what.prefix(BootEvent.maxWhat))
        self.failed = failed
        self.retry = retry
    }

    /// The longest `what` kept: events come from the network (a node's report, a client's last
    /// log lines) and logs.
    public static let maxWhat = 2_000
}

/// One boot of one node: where it is, since when, and what it has seen.
public struct BootRecord: Codable, Sendable, Equatable {
    /// Increasing across the registry (0 until stored).
    public var id: Int64
    public var node: String
    public var startedAt: Double
    public var stage: BootStage
    /// When the boot entered `stage`.
    public var stageAt: Double
    public var outcome: BootOutcome
    /// The image and its version as the head node served it.
    public var image: String?
    /// The image's version as served: the first 12 hex digits of its SHA-256.
    public var imageVersion: String?
    public var session: String?
    /// The node's receiver's recent loss (0…1) in its session, as ql-mcastd last saw it.
    public var loss: Double?
    /// Fraction of the image received (0…1) while in `image`.
    public var progress: Double?
    /// Steps repeated so far (DHCP and TFTP requests sent again, fetches retried).
    public var retries: Int
    public var lastError: String?
    /// When the last event arrived.
    public var lastEventAt: Double
    /// The boot's events, oldest first (at most `maxEvents`; later ones only update the record).
    public var events: [BootEvent]

    public static let maxEvents = 200

    public init(node: String, startedAt: Double, stage: BootStage) {
        id = 0
        self.node = node
        self.startedAt = startedAt
        self.stage = stage
        stageAt = startedAt
        outcome = .booting
        retries = 0
        lastEventAt = startedAt
        events = []
    }

    /// Takes `event` in: the stage moves forward (never back), a failure ends the boot as
    /// failed with its reason, `up` ends it as up.
    public mutating func take(_ event: BootEvent) {
        if events.count < Self.maxEvents { events.append(event) }
        lastEventAt = max(lastEventAt, event.at)
        if event.retry { retries += 1 }
        if event.stage > stage {
            stage = event.stage
            stageAt = event.at
        }
        if event.failed {
            outcome = .failed
            lastError = event.what
        } else if event.stage == .up {
            outcome = .up
        } else if outcome == .failed, event.stage > (events.last(where: \.failed)?.stage ?? .dhcp) {
            // Went on past the failure (a fallback that worked): booting again.
            outcome = .booting
        }
        if stage != .image { progress = nil }
    }
}
