/// How a receiver takes part in a session.
public struct ReceiverConfiguration: Sendable {
    /// Session to accept; nil takes the first session announced on the group.
    public var sessionID: UInt32?
    public var objectID: UInt32?
    /// This receiver's id in NAKs and STATUS (random by default).
    public var receiverID = UInt32.random(in: 1...UInt32.max)
    /// Key for per-datagram tags; when set, untagged or badly tagged datagrams are dropped.
    public var authenticationKey: [UInt8]?
    /// The session's symbols are sealed (`SenderConfiguration.encrypt`): DATA and PARITY must
    /// open under the key and the announced salt; needs `authenticationKey`.
    public var encrypted = false
    /// Seeded drop model applied to what we receive (tests, benchmarks).
    public var loss = LossModel.none
    /// Random NAK back-off is uniform in 0…this.
    public var nakBackoffNanos: UInt64 = 6_000_000
    /// Least wait for repair after a NAK (it follows twice the measured response time); doubles
    /// for each NAK in a row that got no repair, up to `maxRepairWaitNanos`.
    public var repairWaitNanos: UInt64 = 20_000_000
    public var maxRepairWaitNanos: UInt64 = 500_000_000
    /// NAK rounds per block before the receiver gives up naming the block.
    public var maxRepairRounds = 40
    /// Give up when the sender has been silent this long.
    public var idleTimeoutNanos: UInt64 = 10_000_000_000
    /// Give up when no ANNOUNCE arrived this long after starting.
    public var joinTimeoutNanos: UInt64 = 30_000_000_000
    public var statusIntervalNanos: UInt64 = 200_000_000
    /// A final FIN or a "dropped" verdict ends the session only once the session agrees: no
    /// sender datagram after the final FIN, no progress after the verdict, for this long.
    /// Anyone on the LAN can send either; the real sender cannot be made to keep sending.
    public var verdictConfirmNanos: UInt64 = 500_000_000
    /// Let the socket put each data payload straight into its place in the destination
    /// (`Receiver+Placement.swift`): no copy in user space for a symbol that arrives where the
    /// pass predicts. Only for sessions without tags or seals, on sockets with GRO.
    public var placePayloads = true
    /// Memory for parity symbols of incomplete blocks.
    public var parityMemoryLimit = 256 << 20
    /// Seed of the back-off randomness (reproducible tests).
    public var seed: UInt64 = UInt64.random(in: 0...UInt64.max)

    public init() {}
}
