/// How a sender runs one session. Defaults suit a cluster LAN at MTU 1500.
public struct SenderConfiguration: Sendable {
    public var sessionID: UInt32
    public var objectID: UInt32 = 1
    public var name = ""
    /// Bytes per symbol; 1,440 fills a 1,500-byte MTU with IP, UDP and our header.
    public var symbolSize = 1_440

    /// The symbol that fills a 1,500-byte MTU: 1,440 bytes, or 1,424 when every datagram also
    /// carries the 16-byte authentication tag.
    public static func defaultSymbolSize(authenticated: Bool) -> Int {
        1_500 - 28 - PacketHeader.size - (authenticated ? PacketHeader.tagSize : 0)
    }
    /// Source symbols per FEC block (k). Larger blocks need less repair for the same loss.
    public var sourceSymbols = 128
    /// Proactive parity per block as a fraction of k (sent with the block, before any NAK).
    public var proactiveParity = 0.0
    /// Raise proactive parity toward the loss receivers report, lower it when loss falls.
    public var adaptiveParity = true
    public var maxProactiveParity = 0.5
    /// Configured rate (0 = unpaced).
    public var rate = Rate.unpaced
    /// Back off when the NAK rate climbs above its baseline; recover when it falls.
    public var adaptiveRate = true
    /// With adaptive rate, sending starts here and grows every 100 ms until a receiver
    /// reports its queue filling (+25 % every 100 ms), then probes in 5 % steps.
    public var initialRate = Rate(bytesPerSecond: 100_000_000)
    /// The rate never backs off below this.
    public var minimumRate = Rate(bytesPerSecond: 1_000_000)
    /// Datagrams per send call.
    public var batch = 64
    public var announceIntervalNanos: UInt64 = 100_000_000
    public var finIntervalNanos: UInt64 = 100_000_000
    /// After the pass, end once nothing was asked for this long (and every known receiver is done).
    public var lingerNanos: UInt64 = 2_000_000_000
    /// After the pass, end at the latest after this long, whatever is still missing.
    public var maxLingerNanos: UInt64 = 120_000_000_000
    /// Most turns the pass takes round the object for members that join late (`joinLate`):
    /// past it, a late member NAKs what it missed once the pass ends.
    public var maxPasses = 3
    /// End as soon as this many receivers reported complete (0: rely on linger).
    public var expectedReceivers = 0
    /// A receiver still incomplete this long after the others finished is dropped.
    public var slowReceiverGraceNanos: UInt64 = 15_000_000_000
    /// A receiver reporting more loss than this fraction for 2 s is dropped.
    public var maxReceiverLoss = 0.6
    /// A receiver not heard from this long (it reports every 200 ms) is taken as gone.
    public var silentReceiverNanos: UInt64 = 5_000_000_000
    /// Most receivers tracked; messages from further receiver ids are dropped and counted.
    public var maxReceivers = 65_536
    /// Only receivers announced through the mailbox (`expectReceiver`) take part: NAKs and STATUS
    /// from any other receiver id are dropped as `unknown-receiver`. A daemon that hands out the
    /// receiver ids itself sets this, so a host on the LAN cannot invent receivers.
    public var closedMembership = false
    /// With every receiver finished, end only once none has contradicted its report for this
    /// long: a forged "complete" for a receiver that is still receiving is answered by that
    /// receiver's next STATUS (every 200 ms) or NAK, and must not end the session under it.
    public var finishConfirmNanos: UInt64 = 300_000_000
    /// Session key for per-datagram HMAC tags (nil: unauthenticated).
    public var authenticationKey: [UInt8]?
    /// Seal DATA and PARITY with AES-GCM under a key derived from `authenticationKey` and a fresh
    /// salt (control datagrams are tagged with a derived key); needs `authenticationKey`.
    public var encrypt = false
    /// Seeded drop model applied to our own sends (tests, benchmarks).
    public var loss = LossModel.none

    public init(sessionID: UInt32) { self.sessionID = sessionID }

    func validate(objectSize: UInt64) throws(TransportError) -> ObjectLayout {
        let layout = try ObjectLayout(objectSize: objectSize, symbolSize: symbolSize, sourceSymbols: sourceSymbols)
        guard (1...64).contains(maxPasses) else { throw TransportError(.invalidArgument, "max passes must be 1…64") }
        guard batch >= 1, batch <= 1024 else { throw TransportError(.invalidArgument, "batch must be 1…1024") }
        guard (0...1).contains(proactiveParity), (0...1).contains(maxProactiveParity) else {
            throw TransportError(.invalidArgument, "parity ratios must be between 0 and 1")
        }
        guard !encrypt || authenticationKey != nil else {
            throw TransportError(.invalidArgument, "encryption needs a session key")
        }
        return layout
    }
}
