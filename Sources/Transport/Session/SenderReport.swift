import Platform

/// A snapshot of a running sender, published every 100 ms.
public struct SenderProgress: Sendable, Codable {
    public var sessionID: UInt32
    public var name: String
    public var objectSize: UInt64
    public var digest: SHA256Digest
    public var blocks: Int
    /// Blocks the first pass has sent.
    public var passBlocks: Int
    public var pendingRepairBlocks: Int
    public var rate: Rate
    public var proactiveParity: Double
    public var elapsedSeconds: Double
    public var counters: SenderCounters
    public var receivers: [ReceiverRecord]
}

/// What the sender knows of one receiver.
public struct ReceiverRecord: Sendable, Codable, Equatable {
    public var id: UInt32
    public var state: StatusBody.State = .receiving
    public var firstSeen: UInt64
    public var lastSeen: UInt64 = 0
    public var finishedAt: UInt64?
    public var blocksComplete: UInt32 = 0
    public var received: UInt64 = 0
    public var lost: UInt64 = 0
    public var overruns: UInt64 = 0
    /// Its receive queue (percent) in its last report, and the lowest since the last cut it
    /// caused (`QueuePressure`).
    public var queueFill = 0
    public var queueTrough = 0
    /// Loss fraction between its last two reports.
    public var recentLoss = 0.0
    /// Since when its reported loss exceeds the bound.
    public var lossySince: UInt64?
    /// When its last STATUS came.
    public var statusAt: UInt64 = 0
    /// When its loss last cut the rate, and that loss (`OverloadLoss`).
    public var lossCutAt: UInt64?
    public var lossAtCut = 0.0
    /// Cuts in a row whose next interval still showed the loss, and whether that made it the
    /// path's (it no longer cuts).
    public var lossTestsFailed = 0
    public var lossIsPath = false

    init(id: UInt32, firstSeen: UInt64) {
        self.id = id
        self.firstSeen = firstSeen
    }
}

/// The outcome of a sender's session.
public struct SenderReport: Sendable, Codable {
    public var counters: SenderCounters
    public var receivers: [UInt32: ReceiverRecord]
    public var seconds: Double
    /// Time until the first pass over the object was sent.
    public var passSeconds: Double
    public var finalRate: Rate
    public var proactiveRatio: Double
    /// Set when the session was aborted through the mailbox (daemon shutdown, image withdrawn).
    public var abortReason: String?
}
