import Platform
/// Receives one object from a multicast session into a destination buffer, repairing losses
/// with FEC and NAKs, and verifies it against the announced SHA-256.
///
/// Each datagram is validated, then its payload is copied once into its final place in the
/// destination (source symbols) or into a parity slot; a block with `k` symbols is decoded in
/// place. Blocks that ended short are NAKed after a random back-off unless another receiver's
/// NAK (overheard on the group) or arriving repair already covers them. The SHA-256 advances over
/// the completed in-order prefix as blocks complete, so verification needs no second pass.
///
/// `handle(_:now:)` and `tick(now:)` are the whole state machine, callable without sockets for
/// deterministic tests; `run()` drives them from the channel. A class: owns state and buffers,
/// used from one thread.
public final class Receiver {
    public enum State: Equatable, Sendable {
        case waitingForAnnounce
        case receiving
        case complete(SHA256Digest)
        case failed(TransportError)
    }

    public let configuration: ReceiverConfiguration
    public private(set) var state = State.waitingForAnnounce
    public private(set) var counters = ReceiverCounters()
    public private(set) var announce: AnnounceBody?
    public private(set) var sessionID: UInt32?
    public private(set) var objectID: UInt32?
    /// Called from `run()` at most every 100 ms with (blocks complete, blocks in the object).
    public var onProgress: ((Int, Int) -> Void)?

    private let channel: DatagramChannel?
    private let makeDestination: (AnnounceBody) throws(TransportError) -> UnsafeMutableRawBufferPointer
    /// Checks the tags of control datagrams (and of symbols, unless sealed).
    private let authenticator: PacketAuthenticator?
    /// Opens sealed symbols once the ANNOUNCE gave the sender's salt; `plaintext` holds one.
    private var sealer: PacketSealer?
    private let plaintext: UnsafeMutableRawPointer?
    private var loss: LossModel
    private var rng: SplitMix64
    private var destination = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    private var layout: ObjectLayout?
    private var decoder: BlockDecoder?
    private var parity = ParityStore(symbolSize: 64, memoryLimit: 0)
    private let hasher = SHA256()

    // Per block.
    private var have: [UInt16] = []
    private var sources: [UInt16] = []
    private var sourceBits: [UInt64] = []
    private var parityBits: [UInt64] = []
    private var complete: [Bool] = []
    private var parityHead: [Int32] = []
    private var pending: [Bool] = []
    private var scheduledAt: [UInt64] = []
    private var rounds: [UInt16] = []
    private var heardNeed: [UInt16] = []
    private var heardAt: [UInt64] = []
    private var repairSeenAt: [UInt64] = []
    private var nakSentAt: [UInt64] = []
    private var unanswered: [UInt8] = []
    /// Our last NAK round for the block was suppressed by an overheard NAK.
    private var suppressed: [Bool] = []
    private var responseNanos: UInt64 = 0

    // NAK schedule: blocks in (roughly) due order.
    private var queue: [Int32] = []
    private var due: [UInt64] = []
    private var queueHead = 0
    private var nakEntries: [NakEntry] = []
    private var parityList: [(index: Int, bytes: UnsafePointer<UInt8>)] = []

    private var blocksComplete = 0
    private var blocksEnded = 0
    private var hashedBlocks = 0
    private var startedAt: UInt64 = 0
    private var lastSenderPacket: UInt64 = 0
    /// Last sender datagram other than a final FIN: the sender still sending.
    private var lastStreamAt: UInt64 = 0
    /// Last new symbol taken: the session still delivering to us.
    private var lastProgressAt: UInt64 = 0
    /// When a final FIN with blocks missing, or a "dropped" verdict, arrived (0: none standing).
    private var finalFinAt: UInt64 = 0
    private var droppedAt: UInt64 = 0
    private var lastStatus: UInt64 = 0
    private var lastTimestamp: UInt32 = 0
    private var firstSequence: UInt32?
    private var highestSequence: UInt32 = 0
    private var senderDatagrams: UInt64 = 0
    private var reportedOverruns: UInt64 = 0
    private var queueFill = 0
    private var lastQueueProbe: UInt64 = 0
    /// Receive-queue fill (percent) at which the sender is told at once to slow down.
    static let queueAlarm = 70
    private let control = ControlDatagram()

    /// - Parameters:
    ///   - channel: The group's socket (nil when a test feeds `handle` directly).
    ///   - destination: Called once the layout is known; returns a zero-filled buffer of
    ///     `layout.paddedSize` bytes (typically a file mapping) that outlives the receiver.
    public init(
        channel: DatagramChannel?, configuration: ReceiverConfiguration,
        destination: @escaping (AnnounceBody) throws(TransportError) -> UnsafeMutableRawBufferPointer
    ) throws(TransportError) {
        self.channel = channel
        self.configuration = configuration
        makeDestination = destination
        if configuration.encrypted {
            guard let master = configuration.authenticationKey else {
                throw TransportError(.invalidArgument, "an encrypted session needs its session key")
            }
            authenticator = try PacketAuthenticator(key: PacketSealer.controlKey(master: master))
            plaintext = .allocate(byteCount: PacketHeader.maxPayload, alignment: 64)
        } else {
            authenticator = try configuration.authenticationKey.map { k throws(TransportError) in try PacketAuthenticator(key: k) }
            plaintext = nil
        }
        loss = configuration.loss
        rng = SplitMix64(seed: configuration.seed)
        sessionID = configuration.sessionID
        objectID = configuration.objectID
    }

    deinit { plaintext?.deallocate() }

    public var isFinished: Bool {
        switch state {
        case .complete, .failed: true
        default: false
        }
    }

    /// Receives until the object is complete and verified, or the session fails.
    /// - Returns: The verified digest.
    /// - Throws: The session's failure (repair exhausted naming blocks, digest mismatch,
    ///   timed out, dropped by the sender), or a socket error.
    @discardableResult
    public func run() throws(TransportError) -> SHA256Digest {
        guard let channel else { throw TransportError(.invalidArgument, "receiver has no channel") }
        startedAt = MonotonicClock.nanoseconds()
        var lastProgress: UInt64 = 0
        while !isFinished {
            let n = try channel.receive { datagram in handle(datagram, now: MonotonicClock.nanoseconds()) }
            counters.receiveCalls += 1
            let now = MonotonicClock.nanoseconds()
            try tick(now: now)
            if let onProgress, let l = layout, now - lastProgress >= 100_000_000 {
                lastProgress = now
                onProgress(blocksComplete, l.blockCount)
            }
            if n == 0 && !isFinished { _ = try channel.waitReadable(timeoutNanos: 2_000_000) }
        }
        switch state {
        case .complete(let d):
            try reportEnd(now: MonotonicClock.nanoseconds())
            return d
        case .failed(let e):
            try? reportEnd(now: MonotonicClock.nanoseconds())
            throw e
        default: preconditionFailure("unreachable")
        }
    }

    // MARK: - Datagrams

    /// Processes one datagram as received. Never throws: every problem is a counted drop.
    public func handle(_ datagram: UnsafeRawBufferPointer, now: UInt64) {
        counters.datagramsReceived += 1
        counters.wireBytes += UInt64(datagram.count)
        if isFinished { return counters.drops.count(.sessionOver) }
        if loss.kind != .none, loss.drop() { return counters.drops.count(.injectedLoss) }
        let h: PacketHeader
        switch PacketHeader.decode(datagram) {
        case .failure(let r): return counters.drops.count(r)
        case .success(let v): h = v
        }
        if let sid = sessionID, h.sessionID != sid { return counters.drops.count(.foreignSession) }
        if let oid = objectID, h.objectID != oid { return counters.drops.count(.foreignObject) }
        let payload: UnsafeRawBufferPointer
        if let plaintext, h.type == .data || h.type == .parity {
            // Symbols of an encrypted session: sealed, and opened before anything reads them.
            guard h.flags.contains(.sealed) else { return counters.drops.count(.authenticationFailed) }
            guard let sealer else { return counters.drops.count(.beforeAnnounce) }
            guard let n = sealer.open(datagram, into: plaintext) else { return counters.drops.count(.authenticationFailed) }
            payload = UnsafeRawBufferPointer(start: plaintext, count: n)
        } else {
            if let auth = authenticator {
                guard h.flags.contains(.authenticated), auth.verify(datagram) else {
                    return counters.drops.count(.authenticationFailed)
                }
            }
            payload = UnsafeRawBufferPointer(rebasing: datagram[PacketHeader.size..<(PacketHeader.size + Int(h.payloadLength))])
        }
        switch h.type {
        case .announce: handleAnnounce(h, payload, now: now)
        case .nak: handleOverheardNak(payload, now: now)
        case .status: handleStatus(payload, now: now)
        case .data, .parity, .fin:
            guard layout != nil else { return counters.drops.count(.beforeAnnounce) }
            noteSender(h, now: now)
            if h.type == .fin {
                handleFin(h, payload, now: now)
            } else {
                handleSymbol(h, payload, now: now)
            }
        }
    }

    private func noteSender(_ h: PacketHeader, now: UInt64) {
        lastSenderPacket = now
        if h.type != .fin || !h.flags.contains(.final) { lastStreamAt = now }
        lastTimestamp = h.timestamp
        senderDatagrams += 1
        if firstSequence == nil {
            firstSequence = h.sequence
            highestSequence = h.sequence
        } else if Int32(bitPattern: h.sequence &- highestSequence) > 0 {
            highestSequence = h.sequence
        }
    }

    private func handleAnnounce(_ h: PacketHeader, _ payload: UnsafeRawBufferPointer, now: UInt64) {
        let body: AnnounceBody
        switch AnnounceBody.decode(payload) {
        case .failure(let r): return counters.drops.count(r)
        case .success(let b): body = b
        }
        if let a = announce {
            // Repeats must agree with what we set up; a different layout is another object.
            guard a.layout == body.layout, a.digest == body.digest, a.salt == body.salt else {
                return counters.drops.count(.foreignObject)
            }
            noteSender(h, now: now)
            counters.accepted += 1
            return
        }
        if configuration.encrypted {
            // The tag was right, so this is the sender (or a key holder): without a salt its
            // symbols could not be opened, so it is not the session we were told of.
            guard let salt = body.salt, let master = configuration.authenticationKey,
                let opener = try? PacketSealer(master: master, salt: salt)
            else { return counters.drops.count(.authenticationFailed) }
            sealer = opener
        }
        do throws(TransportError) {
            let dest = try makeDestination(body)
            guard dest.count >= body.layout.paddedSize else {
                throw TransportError(.invalidArgument, "destination smaller than \(body.layout.paddedSize) bytes")
            }
            destination = dest
        } catch {
            state = .failed(error)
            counters.accepted += 1
            return
        }
        counters.accepted += 1
        sessionID = h.sessionID
        objectID = h.objectID
        announce = body
        let l = body.layout
        layout = l
        decoder = BlockDecoder(symbolSize: l.symbolSize)
        parity = ParityStore(symbolSize: l.symbolSize, memoryLimit: configuration.parityMemoryLimit)
        let n = l.blockCount
        have = .init(repeating: 0, count: n)
        sources = .init(repeating: 0, count: n)
        sourceBits = .init(repeating: 0, count: n * 4)
        parityBits = .init(repeating: 0, count: n * 4)
        complete = .init(repeating: false, count: n)
        parityHead = .init(repeating: -1, count: n)
        pending = .init(repeating: false, count: n)
        scheduledAt = .init(repeating: 0, count: n)
        rounds = .init(repeating: 0, count: n)
        heardNeed = .init(repeating: 0, count: n)
        heardAt = .init(repeating: 0, count: n)
        repairSeenAt = .init(repeating: 0, count: n)
        nakSentAt = .init(repeating: 0, count: n)
        unanswered = .init(repeating: 0, count: n)
        suppressed = .init(repeating: false, count: n)
        queue.reserveCapacity(n * 2)
        due.reserveCapacity(n * 2)
        nakEntries.reserveCapacity(NakBody.capacity(payload: l.symbolSize))
        parityList.reserveCapacity(255)
        state = .receiving
        noteSender(h, now: now)
        if startedAt == 0 { startedAt = now }
    }

    private func handleSymbol(_ h: PacketHeader, _ payload: UnsafeRawBufferPointer, now: UInt64) {
        let l = layout!
        let b = Int(h.block)
        guard b < l.blockCount else { return counters.drops.count(.blockOutOfRange) }
        let kb = l.sourceSymbols(inBlock: b)
        let j = Int(h.symbol)
        // Validate everything before the datagram may change any state.
        if h.type == .data {
            guard j < kb else { return counters.drops.count(.symbolOutOfRange) }
            guard Int(h.payloadLength) == l.payloadLength(block: b, symbol: j) else {
                return counters.drops.count(.badLength)
            }
        } else {
            guard j >= l.sourceSymbols, j < ReedSolomon.maxSymbols else { return counters.drops.count(.symbolOutOfRange) }
            guard Int(h.payloadLength) == l.symbolSize else { return counters.drops.count(.badLength) }
        }
        if h.flags.contains(.repair) {
            if nakSentAt[b] > repairSeenAt[b] {
                // First repair since our NAK: how long the sender takes to answer (including
                // its queue and ours). Rises fast, decays slowly.
                let sample = now - nakSentAt[b]
                responseNanos = (responseNanos * 7 + sample) / 8
            }
            repairSeenAt[b] = now
            suppressed[b] = false
            counters.repairSymbols += 1
            if droppedAt != 0, nakSentAt[b] > droppedAt {
                // Repair for a NAK we sent after the verdict: the sender still serves us, so the
                // verdict was not its own.
                droppedAt = 0
                counters.verdictsContradicted += 1
            }
        } else if b > blocksEnded {
            endBlocks(upTo: b, now: now)
        }
        if complete[b] { return counters.drops.count(.blockAlreadyComplete) }
        let (w, bit) = (b * 4 + j >> 6, UInt64(1) << UInt64(j & 63))
        if h.type == .data {
            if sourceBits[w] & bit != 0 { return counters.drops.count(.duplicate) }
            sourceBits[w] |= bit
            if payload.count > 0 {
                // The one copy: receive buffer → the symbol's final place in the destination.
                (destination.baseAddress! + l.offset(ofBlock: b) + j * l.symbolSize)
                    .copyMemory(from: payload.baseAddress!, byteCount: payload.count)
            }
            counters.payloadBytesCopied += UInt64(payload.count)
            counters.dataSymbols += 1
            sources[b] += 1
        } else {
            if parityBits[w] & bit != 0 { return counters.drops.count(.duplicate) }
            guard let slot = parity.take(symbol: j, linkedTo: parityHead[b]) else {
                return counters.drops.count(.bufferLimit)
            }
            parityBits[w] |= bit
            parityHead[b] = slot
            parity.pointer(slot).update(from: payload.baseAddress!.assumingMemoryBound(to: UInt8.self), count: l.symbolSize)
            counters.paritySymbols += 1
            counters.parityBufferHighWater = UInt64(parity.highWater)
        }
        counters.accepted += 1
        lastProgressAt = now
        have[b] += 1
        if Int(have[b]) >= kb { completeBlock(b) }
    }

    private func completeBlock(_ b: Int) {
        let l = layout!
        let kb = l.sourceSymbols(inBlock: b)
        if Int(sources[b]) < kb {
            parityList.removeAll(keepingCapacity: true)
            var s = parityHead[b]
            while s >= 0 {
                parityList.append((index: parity.index(s), bytes: UnsafePointer(parity.pointer(s))))
                s = parity.successor(s)
            }
            let base = (destination.baseAddress! + l.offset(ofBlock: b)).assumingMemoryBound(to: UInt8.self)
            let bits = b * 4
            do throws(TransportError) {
                let rebuilt = try decoder!.decode(
                    k: kb, sources: { base + $0 * l.symbolSize },
                    present: { self.sourceBits[bits + $0 >> 6] & (UInt64(1) << UInt64($0 & 63)) != 0 },
                    parity: parityList)
                counters.blocksDecoded += 1
                counters.symbolsRebuilt += UInt64(rebuilt)
                for j in 0..<kb where sourceBits[bits + j >> 6] & (UInt64(1) << UInt64(j & 63)) == 0 {
                    counters.payloadBytesRebuilt += UInt64(l.payloadLength(block: b, symbol: j))
                }
            } catch {
                state = .failed(TransportError(.decodeFailed, "block \(b): \(error.message)"))
                return
            }
        }
        parity.release(list: parityHead[b])
        parityHead[b] = -1
        complete[b] = true
        blocksComplete += 1
    }

    /// Blocks before `upTo` have had their turn in the pass: schedule NAKs for the short ones.
    private func endBlocks(upTo: Int, now: UInt64) {
        while blocksEnded < upTo {
            let b = blocksEnded
            blocksEnded += 1
            if !complete[b] { schedule(b, at: now + backoff(), now: now) }
        }
    }

    private func backoff() -> UInt64 {
        configuration.nakBackoffNanos == 0 ? 0 : rng.next() % configuration.nakBackoffNanos
    }

    private func schedule(_ b: Int, at time: UInt64, now: UInt64) {
        guard !pending[b] else { return }
        pending[b] = true
        scheduledAt[b] = now
        if queueHead > 4_096 && queueHead * 2 > queue.count {
            queue.removeFirst(queueHead)
            due.removeFirst(queueHead)
            queueHead = 0
        }
        queue.append(Int32(b))
        due.append(time)
    }

    private func handleFin(_ h: PacketHeader, _ payload: UnsafeRawBufferPointer, now: UInt64) {
        switch FinBody.decode(payload) {
        case .failure(let r): return counters.drops.count(r)
        case .success(let fin):
            guard Int(fin.blockCount) == layout!.blockCount else { return counters.drops.count(.malformedBody) }
        }
        counters.accepted += 1
        endBlocks(upTo: layout!.blockCount, now: now)
        // Believed in `tick` once the sender has stayed silent after it (anyone can send a FIN).
        if h.flags.contains(.final), blocksComplete < layout!.blockCount, finalFinAt == 0 { finalFinAt = now }
    }

    /// Acts on a standing final FIN or "dropped" verdict once the session has not contradicted
    /// it for `verdictConfirmNanos`: a forged one costs us that long at most, never the session.
    private func confirmVerdicts(now: UInt64) {
        let wait = configuration.verdictConfirmNanos
        if finalFinAt != 0 {
            if lastStreamAt > finalFinAt {
                finalFinAt = 0
                counters.verdictsContradicted += 1
            } else if now &- finalFinAt >= wait {
                state = .failed(
                    TransportError(
                        .repairExhausted,
                        "sender ended the session with \(layout!.blockCount - blocksComplete) blocks missing "
                            + "(\(missingBlocksDescription())); use the unicast fallback"))
                return
            }
        }
        if droppedAt != 0, now &- droppedAt >= wait, now &- lastProgressAt >= wait {
            state = .failed(
                TransportError(
                    .dropped,
                    "the sender dropped this receiver from the session (too slow or too much loss); "
                        + "use the unicast fallback"))
        }
    }

    private func handleOverheardNak(_ payload: UnsafeRawBufferPointer, now: UInt64) {
        guard let l = layout else { return counters.drops.count(.beforeAnnounce) }
        if payload.count >= 4, UInt32(bigEndian: payload.loadUnaligned(as: UInt32.self)) == configuration.receiverID {
            return counters.drops.count(.notForThisRole)  // our own NAK looped back
        }
        if case .failure(let reason) = NakBody.validate(payload, against: l) { return counters.drops.count(reason) }
        _ = NakBody.forEachEntry(payload) { e in
            let b = Int(e.block)
            if heardAt[b] < scheduledAt[b] { heardNeed[b] = 0 }
            heardNeed[b] = max(heardNeed[b], e.needed)
            heardAt[b] = now
        }
        counters.naksHeard += 1
        counters.accepted += 1
    }

    private func handleStatus(_ payload: UnsafeRawBufferPointer, now: UInt64) {
        switch StatusBody.decode(payload) {
        case .failure(let r): counters.drops.count(r)
        case .success(let s):
            counters.accepted += 1
            // Believed in `tick` once we stop getting anywhere (anyone can send a verdict).
            if s.state == .dropped, s.receiverID == configuration.receiverID, droppedAt == 0 { droppedAt = now }
        // Other receivers' progress reports need no action here.
        }
    }

    /// Tells the sender how this receiver ended (complete twice: one may be lost; failed once),
    /// so it can end without waiting. `run()` calls it; a test stepping `tick` calls it itself.
    public func reportEnd(now: UInt64) throws(TransportError) {
        guard isFinished else { return }
        try sendStatus(now: now)
        if case .complete = state { try sendStatus(now: now) }
    }

    // MARK: - Timers

    /// Advances hashing, sends due NAKs and STATUS, and enforces the timeouts.
    public func tick(now: UInt64) throws(TransportError) {
        if startedAt == 0 { startedAt = now }
        switch state {
        case .waitingForAnnounce:
            if now - startedAt > configuration.joinTimeoutNanos {
                state = .failed(
                    TransportError(
                        .timedOut,
                        "no session announced on the group within \(configuration.joinTimeoutNanos / 1_000_000_000) s; "
                            + "check the group, port and interface, and that multicast reaches this host"))
            }
            return
        case .complete, .failed: return
        case .receiving: break
        }
        advanceHash()
        if blocksComplete == layout!.blockCount, hashedBlocks == layout!.blockCount {
            let d = hasher.finalize()
            state =
                d == announce!.digest
                ? .complete(d)
                : .failed(
                    TransportError(
                        .integrity,
                        "SHA-256 mismatch for '\(announce!.name)': announced \(announce!.digest), received \(d); "
                            + "the copy is discarded"))
            return
        }
        confirmVerdicts(now: now)
        if isFinished { return }
        try processNaks(now: now)
        // Report at once (at most every 20 ms) when the kernel dropped datagrams for us: the
        // sender must slow down before the loss grows.
        let overruns = channel?.overruns ?? 0
        if now - lastQueueProbe >= 2_000_000 {
            // One getsockopt; every 2 ms is plenty to see a queue filling.
            lastQueueProbe = now
            queueFill = max(queueFill, channel?.receiveQueuePercent ?? 0)
        }
        if now - lastStatus >= configuration.statusIntervalNanos
            || ((overruns > reportedOverruns || queueFill >= Receiver.queueAlarm) && now - lastStatus >= 20_000_000)
        {
            try sendStatus(now: now)
        }
        if now - lastSenderPacket > configuration.idleTimeoutNanos {
            state = .failed(
                TransportError(
                    .timedOut,
                    "sender silent for \(configuration.idleTimeoutNanos / 1_000_000_000) s with "
                        + "\(layout!.blockCount - blocksComplete) blocks missing (\(missingBlocksDescription()))"))
        }
    }

    /// SHA-256 over the completed in-order prefix, a block at a time.
    private func advanceHash() {
        let l = layout!
        while hashedBlocks < l.blockCount, complete[hashedBlocks] {
            let start = l.offset(ofBlock: hashedBlocks)
            let end = min(UInt64(start + l.blockBytes), l.objectSize)
            if UInt64(start) < end {
                hasher.update(UnsafeRawBufferPointer(start: destination.baseAddress! + start, count: Int(end) - start))
                counters.hashedBytes += end - UInt64(start)
            }
            hashedBlocks += 1
        }
    }

    /// How long to wait for repair of block `b` before checking it again: twice the observed
    /// NAK-to-repair response time (at least the configured wait); doubled for every NAK in a
    /// row that got no repair at all (the sender is backlogged or the NAK was lost), but not
    /// when repair came and some of it was lost — then the next round should follow quickly.
    private func repairWait(block b: Int) -> UInt64 {
        let base = min(configuration.maxRepairWaitNanos / 2, max(configuration.repairWaitNanos, 2 * responseNanos))
        return min(configuration.maxRepairWaitNanos, base << UInt64(min(Int(unanswered[b]), 5)))
    }

    private func processNaks(now: UInt64) throws(TransportError) {
        let l = layout!
        // Entries per NAK: what fits a datagram of the path (a symbol's size) and our buffer.
        let capacity = NakBody.capacity(payload: min(l.symbolSize, ControlDatagram.bodyCapacity))
        while queueHead < queue.count, due[queueHead] <= now {
            let b = Int(queue[queueHead])
            queueHead += 1
            pending[b] = false
            if complete[b] { continue }
            let need = UInt16(l.sourceSymbols(inBlock: b) - Int(have[b]))
            let since = scheduledAt[b]
            rounds[b] = rounds[b] == .max ? .max : rounds[b] + 1
            counters.maxRepairRounds = max(counters.maxRepairRounds, UInt64(rounds[b]))
            if Int(rounds[b]) > configuration.maxRepairRounds {
                state = .failed(
                    TransportError(
                        .repairExhausted,
                        "gave up after \(configuration.maxRepairRounds) repair rounds; missing "
                            + "\(missingBlocksDescription()); use the unicast fallback"))
                return
            }
            // A NAK of ours that saw no repair since is unanswered; any repair resets the count.
            unanswered[b] =
                nakSentAt[b] >= since && repairSeenAt[b] < since ? (unanswered[b] == .max ? .max : unanswered[b] + 1) : 0
            if heardAt[b] >= since, heardNeed[b] >= need, !suppressed[b] {
                counters.nakSuppressedByNak += 1
                suppressed[b] = true
            } else if repairSeenAt[b] >= since {
                counters.nakSuppressedByRepair += 1
            } else {
                // A NAK we held back for another's saw no repair: ask ourselves this time.
                if suppressed[b], heardAt[b] >= since, heardNeed[b] >= need { counters.nakSuppressionsRefused += 1 }
                suppressed[b] = false
                nakEntries.append(NakEntry(block: UInt32(b), needed: need))
                nakSentAt[b] = now
                if nakEntries.count == capacity { try flushNak() }
            }
            schedule(b, at: now + repairWait(block: b) + backoff(), now: now)
        }
        if !nakEntries.isEmpty { try flushNak() }
    }

    private func flushNak() throws(TransportError) {
        let body = NakBody(receiverID: configuration.receiverID, echoTimestamp: lastTimestamp, entries: nakEntries)
        counters.naksSent += 1
        counters.nakEntriesSent += UInt64(nakEntries.count)
        nakEntries.removeAll(keepingCapacity: true)
        try sendControl(.nak) { body.encode(to: $0, capacity: $1) }
    }

    private func sendStatus(now: UInt64) throws(TransportError) {
        lastStatus = now
        let st: StatusBody.State =
            switch state {
            case .complete: .complete
            case .failed: .failed
            default: .receiving
            }
        let expected = firstSequence.map { UInt64(highestSequence &- $0) + 1 } ?? 0
        counters.sequenceGaps = expected > senderDatagrams ? expected - senderDatagrams : 0
        reportedOverruns = channel?.overruns ?? 0
        counters.overruns = reportedOverruns
        let body = StatusBody(
            receiverID: configuration.receiverID, state: st, blocksComplete: UInt32(blocksComplete),
            received: senderDatagrams, lost: counters.sequenceGaps, overruns: reportedOverruns,
            queueFill: UInt8(min(queueFill, 100)))
        counters.maxQueueFill = max(counters.maxQueueFill, UInt64(queueFill))
        queueFill = 0
        counters.statusSent += 1
        try sendControl(.status) { body.encode(to: $0, capacity: $1) }
    }

    private func sendControl(_ type: PacketType, body: (UnsafeMutableRawPointer, Int) -> Int) throws(TransportError) {
        guard let channel, let sid = sessionID, let oid = objectID else { return }
        let h = PacketHeader(type: type, sessionID: sid, objectID: oid)
        try channel.sendOne(control.build(h, authenticator: authenticator, body: body))
    }

    /// "blocks 3, 17, 40–45 and 12 more" style list of incomplete blocks.
    public func missingBlocksDescription(limit: Int = 10) -> String {
        guard let l = layout else { return "all blocks" }
        var ranges: [(Int, Int)] = []
        for b in 0..<l.blockCount where !complete[b] {
            if let last = ranges.last, last.1 == b - 1 { ranges[ranges.count - 1].1 = b } else { ranges.append((b, b)) }
        }
        let shown = ranges.prefix(limit).map { $0.0 == $0.1 ? "\($0.0)" : "\($0.0)–\($0.1)" }
        let more = ranges.count > limit ? " and \(ranges.count - limit) more ranges" : ""
        return "blocks " + shown.joined(separator: ", ") + more
    }

    /// Blocks complete so far.
    public var completedBlocks: Int { blocksComplete }

    /// The byte ranges of the object not yet delivered (incomplete blocks, adjacent ones merged,
    /// cut at the object's size): what a unicast fallback must fetch. All of it before announce.
    public func missingRanges() -> [Range<UInt64>] {
        guard let l = layout else { return [] }
        var ranges: [Range<UInt64>] = []
        for b in 0..<l.blockCount where !complete[b] {
            let start = UInt64(l.offset(ofBlock: b))
            let end = min(start + UInt64(l.blockBytes), l.objectSize)
            guard start < end else { continue }
            if let last = ranges.last, last.upperBound == start {
                ranges[ranges.count - 1] = last.lowerBound..<end
            } else {
                ranges.append(start..<end)
            }
        }
        return ranges
    }

    /// Hands over the in-line SHA-256 for the caller to finish after filling the gaps, so the
    /// prefix already hashed is not read again.
    /// - Returns: The hash state and how many leading bytes of the object it covers. The receiver
    ///   must not be used afterwards.
    public func takeHashState() -> (hasher: SHA256, hashedBytes: UInt64) {
        (hasher, counters.hashedBytes)
    }
}
