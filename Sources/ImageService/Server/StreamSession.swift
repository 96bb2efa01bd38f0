import NIOConcurrencyHelpers
import Platform
import Transport

/// One multicast session of ql-mcastd: an image snapshot streamed to its members on one
/// group:port from the pool.
///
/// `@unchecked Sendable`: the mutable fields (`state`, `members`, `startAt`, `outcome`,
/// `finishedAt`) are touched only under the `SessionManager`'s lock; `progress` has its own lock;
/// `mailbox` is Sendable; the rest is immutable.
final class StreamSession: @unchecked Sendable {
    let id: UInt32
    let snapshot: ImageSnapshot
    let endpoint: MulticastEndpoint
    let key: [UInt8]?
    let createdAt: UInt64
    let mailbox = SenderMailbox()
    let progress = NIOLockedValueBox<SenderProgress?>(nil)

    var startAt: UInt64
    var state = SessionStatus.State.gathering
    var members: [MemberStatus] = []
    var outcome: String?
    var finishedAt: UInt64?
    /// Members to wait for before the window ends (0: the window alone).
    var expected = 0
    var startReason: String?
    /// The share of the daemon's rate last posted to the sender.
    var rateShare: Rate?

    init(id: UInt32, snapshot: ImageSnapshot, endpoint: MulticastEndpoint, key: [UInt8]?, now: UInt64, startAt: UInt64)
    {
        self.id = id
        self.snapshot = snapshot
        self.endpoint = endpoint
        self.key = key
        createdAt = now
        self.startAt = startAt
    }

    var isActive: Bool { state != .finished }

    func status(now: UInt64) -> SessionStatus {
        SessionStatus(
            sessionID: id, image: snapshot.name.value, sha256: snapshot.manifest.sha256, group: endpoint.description,
            state: state, members: members, expected: expected > 0 ? expected : nil, startReason: startReason,
            ageSeconds: Double(now &- createdAt) / 1e9,
            progress: progress.withLockedValue { $0 }, outcome: outcome)
    }

    /// The sender's settings for this session.
    func senderConfiguration(_ config: DaemonConfiguration) -> SenderConfiguration {
        var c = SenderConfiguration(sessionID: id)
        c.name = snapshot.name.value
        c.symbolSize = snapshot.layout.symbolSize
        c.sourceSymbols = snapshot.layout.sourceSymbols
        c.proactiveParity = config.parity
        c.rate = rateShare ?? config.rate
        c.authenticationKey = key
        c.encrypt = key != nil && config.encryptsSessions
        c.loss = config.simulateLoss
        // Members are announced through the mailbox; the session ends when all of them are
        // done, dropped or silent (or at the latest `maxLingerNanos` after the pass).
        c.expectedReceivers = 0
        // Receiver ids are ours to hand out (in the ticket): nobody else takes part.
        c.closedMembership = true
        return c
    }
}
