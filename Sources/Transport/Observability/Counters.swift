/// Datagrams dropped, by reason (one slot per `DropReason`, no allocation per packet).
public struct DropCounters: Sendable, Equatable, Codable {
    public private(set) var counts = [UInt64](repeating: 0, count: DropReason.allCases.count)

    public init() {}

    @inline(__always)
    public mutating func count(_ reason: DropReason) { counts[reason.rawValue] &+= 1 }

    public subscript(reason: DropReason) -> UInt64 { counts[reason.rawValue] }

    public var total: UInt64 { counts.reduce(0, &+) }

    /// Non-zero reasons as `name=count` pairs.
    public var summary: String {
        DropReason.allCases.filter { self[$0] > 0 }.map { "\($0)=\(self[$0])" }.joined(separator: " ")
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: DynamicKey.self)
        for r in DropReason.allCases { try c.encode(self[r], forKey: DynamicKey(r.description)) }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: DynamicKey.self)
        for r in DropReason.allCases {
            counts[r.rawValue] = try c.decodeIfPresent(UInt64.self, forKey: DynamicKey(r.description)) ?? 0
        }
    }
}

struct DynamicKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// What a sender did in a session.
public struct SenderCounters: Sendable, Equatable, Codable {
    public var datagramsSent: UInt64 = 0
    /// UDP payload bytes sent (headers, symbols, tags, control).
    public var wireBytes: UInt64 = 0
    public var objectBytes: UInt64 = 0
    public var dataSymbols: UInt64 = 0
    public var proactiveParity: UInt64 = 0
    public var repairSymbols: UInt64 = 0
    /// Repair symbols that were not fresh (all 255 − k parity indices of the block were used).
    public var repairRepeats: UInt64 = 0
    public var announces: UInt64 = 0
    public var fins: UInt64 = 0
    public var naksReceived: UInt64 = 0
    public var nakEntries: UInt64 = 0
    /// NAK entries already covered by a queued or just-sent repair (merged, not re-sent).
    public var nakEntriesMerged: UInt64 = 0
    public var nakEntriesFromDropped: UInt64 = 0
    /// NAK entries not answered because their receiver had used up its share of repair.
    public var nakEntriesOverBudget: UInt64 = 0
    public var statusReceived: UInt64 = 0
    public var rateDecreases: UInt64 = 0
    /// Rate decreases caused by receivers reporting kernel overruns.
    public var overrunBackoffs: UInt64 = 0
    /// Rate decreases caused by receivers reporting a filling receive queue.
    public var queueBackoffs: UInt64 = 0
    /// Rate decreases caused by receivers missing a share of the datagrams only overload explains
    /// (`OverloadLoss`), and receivers whose loss then stayed at the lower rate (the path's own).
    public var lossBackoffs: UInt64 = 0
    public var pathLossReceivers: UInt64 = 0
    public var rateIncreases: UInt64 = 0
    /// Queue and overrun reports that did not slow the session: their receiver had used up the
    /// back-offs it may cause (a receiver that keeps reporting trouble is discounted).
    public var pressureDiscounted: UInt64 = 0
    /// A receiver reported finished and then NAKed or reported receiving again (a forged
    /// "complete" for it, or a reordered report): taken back as receiving.
    public var verdictsContradicted: UInt64 = 0
    public var receiversDropped: UInt64 = 0
    /// Receivers that fell silent before finishing (no report for `silentReceiverNanos`).
    public var receiversSilent: UInt64 = 0
    /// Payload bytes copied in user space to send (the design keeps this at 0: iovecs point
    /// into the object's mapping).
    public var payloadBytesCopied: UInt64 = 0
    /// Bytes copied to pad the object's final short symbol for parity computation.
    public var paddingBytesCopied: UInt64 = 0
    public var sendCalls: UInt64 = 0
    /// Sends this host's own queue refused (a slower link than the sender's pace), each waited
    /// for and sent again; and ICMP errors about the stream taken off the socket and ignored
    /// (anyone can forge them). From the channel (`SocketOptions.localDropsPushBack`).
    public var localDrops: UInt64 = 0
    public var reportedErrors: UInt64 = 0
    /// Turns of the pass round the object (more than one when members joined late).
    public var passes: UInt64 = 0
    /// Blocks sent again by the pass for members that joined late, and the joins that extended it.
    public var carouselBlocks: UInt64 = 0
    public var passExtensions: UInt64 = 0
    /// Late joins the pass could not cover in full within `maxPasses` turns.
    public var lateJoinsBeyondPasses: UInt64 = 0
    public var drops = DropCounters()

    public init() {}
}

/// What a receiver did in a session.
public struct ReceiverCounters: Sendable, Equatable, Codable {
    public var datagramsReceived: UInt64 = 0
    /// Datagrams used (every received datagram is either accepted or dropped for one reason).
    public var accepted: UInt64 = 0
    public var wireBytes: UInt64 = 0
    public var dataSymbols: UInt64 = 0
    public var paritySymbols: UInt64 = 0
    public var repairSymbols: UInt64 = 0
    /// Object bytes copied from a receive buffer into the destination.
    public var payloadBytesCopied: UInt64 = 0
    /// Object bytes found already at their place when handled: received there by the kernel
    /// (a placed receive), or moved there once from the place predicted for them.
    public var payloadBytesInPlace: UInt64 = 0
    /// Datagrams of placed receives the socket moved to their place, or into its own buffer,
    /// because they did not arrive where predicted (see `MulticastSocket+Placement.swift`).
    public var payloadsMoved: UInt64 = 0
    /// Object bytes written into the destination by the FEC decoder.
    public var payloadBytesRebuilt: UInt64 = 0
    public var blocksDecoded: UInt64 = 0
    public var symbolsRebuilt: UInt64 = 0
    public var naksSent: UInt64 = 0
    public var nakEntriesSent: UInt64 = 0
    /// Block NAKs not sent because another receiver's NAK already asked for as much.
    public var nakSuppressedByNak: UInt64 = 0
    /// Block NAKs not sent because repair for the block was arriving.
    public var nakSuppressedByRepair: UInt64 = 0
    public var naksHeard: UInt64 = 0
    /// NAK rounds brought forward because the block's repair run ended with the block still
    /// short (some of the repair was lost): asked again after a back-off, not the repair time-out.
    public var repairRoundsBroughtForward: UInt64 = 0
    /// Overheard NAKs that would have suppressed ours a second time although the first
    /// suppression brought no repair: we NAKed ourselves (a NAK nobody answers must not silence us).
    public var nakSuppressionsRefused: UInt64 = 0
    /// A final FIN or "dropped" verdict the session then contradicted (the sender kept sending
    /// after the FIN, or answered a NAK we sent after the verdict): not the real sender's, ignored.
    public var verdictsContradicted: UInt64 = 0
    public var statusSent: UInt64 = 0
    /// Sender datagrams missing from the sequence (network or injected loss).
    public var sequenceGaps: UInt64 = 0
    public var hashedBytes: UInt64 = 0
    public var maxRepairRounds: UInt64 = 0
    public var parityBufferHighWater: UInt64 = 0
    public var receiveCalls: UInt64 = 0
    /// Datagrams the kernel dropped because this receiver fell behind (SO_RXQ_OVFL).
    public var overruns: UInt64 = 0
    /// Highest receive-queue fill seen, percent of the socket buffer.
    public var maxQueueFill: UInt64 = 0
    public var drops = DropCounters()

    public init() {}

    /// Writes per object byte into the destination (1.0 when every byte was written once),
    /// whether by a copy, the kernel's placed receive or the decoder.
    public func copiesPerByte(objectSize: UInt64) -> Double {
        objectSize == 0
            ? 0 : Double(payloadBytesCopied + payloadBytesInPlace + payloadBytesRebuilt) / Double(objectSize)
    }
}
