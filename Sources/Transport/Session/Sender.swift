import Platform

#if canImport(Glibc)
    import Glibc
#endif

/// Sends one object to a multicast group and repairs what receivers report missing.
///
/// One pass sends every block's source symbols (pointers into the caller's mapping) followed by
/// its proactive parity. NAKs ask for a *number* of symbols per block; the sender merges them
/// (maximum need, ignoring requests already covered by repair just sent) and answers with parity
/// indices never sent before for that block. Pacing is a token bucket; the rate backs off when a
/// receiver reports its queue filling or overrun, or the NAK rate climbs above its baseline, and
/// recovers when they stop.
///
/// The loop does bounded work per turn — drain control traffic, emit one batch — so a NAK is
/// never more than one batch away from being seen. A class: it owns its state and buffers and
/// runs on one thread. Split by aspect: `Sender+Control.swift` (NAKs, STATUS, ANNOUNCE, FIN,
/// end of session) and `Sender+RateControl.swift` (pacing, adaptation, dropping receivers).
public final class Sender {
    public let configuration: SenderConfiguration
    public let layout: ObjectLayout
    public let digest: SHA256Digest
    /// Called every 100 ms from the sending loop with a snapshot (for status queries); keep it cheap.
    public var onProgress: ((SenderProgress) -> Void)?
    public internal(set) var counters = SenderCounters()
    public internal(set) var receivers: [UInt32: ReceiverRecord] = [:]
    /// What each receiver may still make us do (repair, back-offs): `ReceiverBudget`.
    var budgets: [UInt32: ReceiverBudget] = [:]
    /// Receivers still receiving, counted every 100 ms: the divisor of the fair repair share.
    var activeReceivers = 1
    /// When a receiver last reported finished (complete or failed).
    var lastFinishedAt: UInt64 = 0
    /// The rate policy: `NakRatioRateControl` when adaptive, else `FixedRateControl`.
    public internal(set) var rateControl: any RateController
    /// The rate in force now (after adaptation).
    public var currentRate: Rate { rateControl.rate }
    public internal(set) var proactiveRatio: Double
    /// Commands from other threads (new members, rate share, abort), applied between batches.
    public let mailbox: SenderMailbox
    /// Receivers to wait for before ending (the configured number plus members announced later).
    var expectedReceivers: Int
    /// Why the session was aborted, once it was.
    public internal(set) var abortReason: String?

    let object: UnsafeRawBufferPointer
    let channel: DatagramChannel
    /// Tags control datagrams (and symbols, unless sealed).
    let authenticator: PacketAuthenticator?
    /// Admits NAKs and STATUS (the receiver's gate: header, session, tag).
    let gate: DatagramGate
    /// Seals DATA and PARITY when the session is encrypted.
    let sealer: PacketSealer?
    var loss: LossModel
    let batch: OutgoingBatch
    let parityScratch: UnsafeMutableRawPointer
    let tailPad: UnsafeMutableRawPointer
    let control = ControlDatagram()
    var coefficientScratch: [UInt8]
    var sourcePointers: [UnsafePointer<UInt8>?]
    var parityOutputs: [UnsafeMutablePointer<UInt8>?]
    var parityIndices: [Int]

    // Pass state. The pass is a carousel: `passPosition` counts blocks whose turn came since the
    // start (unwrapped), the block being sent is `passPosition % blockCount`, and the pass ends
    // at `passEnd` — one turn of every block, extended for members that join while it runs.
    var passPosition = 0
    var passEnd: Int
    var passBlock = 0
    var passSymbol = 0
    var passParity = 0
    public internal(set) var passDone = false
    var passEndedAt: UInt64 = 0

    // Per-block repair state.
    var nextParity: [UInt16]
    var repeatCursor: [UInt16]
    var pendingNeed: [UInt16]
    var lastRepairAt: [UInt64]
    /// `lastRepairAt` in header-timestamp units (µs since the session's epoch, wrapping).
    var lastRepairStamp: [UInt32]
    var lastRepairCount: [UInt16]
    var repairQueue: RingQueue

    // Timing and adaptation.
    var sequence: UInt32 = 0
    var startedAt: UInt64 = 0
    var lastFinishCheck: UInt64 = 0
    /// The clock the session runs on (monotonic nanoseconds): `MonotonicClock` unless a test steps it.
    let clock: () -> UInt64
    /// Header timestamps count microseconds from here.
    let epoch: UInt64
    var tokens = 0.0
    var lastRefill: UInt64 = 0
    var lastAnnounce: UInt64 = 0
    /// ANNOUNCE every 10 ms until then: a member joined late and waits for one.
    var announceBurstUntil: UInt64 = 0
    var lastFin: UInt64 = 0
    var lastActivity: UInt64 = 0
    var windowStart: UInt64 = 0
    var windowSymbols: UInt64 = 0
    var windowNeed: UInt64 = 0
    var windowBytes: UInt64 = 0
    /// Recent achieved send rate (bytes/s).
    var sendRateEstimate = 0.0
    var rateSampleStart: UInt64 = 0
    var rateSampleBytes: UInt64 = 0
    var lossEstimate = 0.0
    var rttNanos: UInt64 = 1_000_000
    /// A NAK this soon after a repair of the block, asking no more than was sent, crossed it.
    var holdoffNanos: UInt64 { max(5_000_000, 2 * rttNanos) }

    /// - Parameters:
    ///   - object: The object's bytes (typically a read-only file mapping); must outlive the sender.
    ///   - digest: SHA-256 of the object, announced to receivers.
    ///   - channel: The group's socket.
    ///   - clock: Monotonic nanoseconds; tests pass their own and step the sender with `turn(now:)`.
    public init(
        object: UnsafeRawBufferPointer, digest: SHA256Digest, channel: DatagramChannel,
        configuration: SenderConfiguration, mailbox: SenderMailbox = SenderMailbox(),
        clock: @escaping () -> UInt64 = MonotonicClock.nanoseconds
    ) throws(TransportError) {
        self.clock = clock
        epoch = clock()
        layout = try configuration.validate(objectSize: UInt64(object.count))
        self.mailbox = mailbox
        expectedReceivers = configuration.expectedReceivers
        passEnd = layout.blockCount
        self.configuration = configuration
        self.object = object
        self.digest = digest
        self.channel = channel
        if configuration.encrypt, let master = configuration.authenticationKey {
            sealer = try PacketSealer(master: master, salt: PacketSealer.randomSalt())
            authenticator = try PacketAuthenticator(key: PacketSealer.controlKey(master: master))
        } else {
            sealer = nil
            authenticator = try configuration.authenticationKey.map { k throws(TransportError) in
                try PacketAuthenticator(key: k)
            }
        }
        gate = DatagramGate(
            sessionID: configuration.sessionID, objectID: configuration.objectID, authenticator: authenticator,
            sealedSymbols: false)
        loss = configuration.loss
        rateControl =
            configuration.adaptiveRate
            ? NakRatioRateControl(
                rate: configuration.rate, initial: configuration.initialRate, minimum: configuration.minimumRate)
            : FixedRateControl(rate: configuration.rate)
        proactiveRatio = configuration.proactiveParity
        let s = layout.symbolSize
        batch = OutgoingBatch(capacity: configuration.batch, maxPayload: s)
        parityScratch = .allocate(byteCount: configuration.batch * s, alignment: 64)
        tailPad = .allocate(byteCount: s, alignment: 64)
        coefficientScratch = .init(repeating: 0, count: 255 * configuration.batch)
        sourcePointers = .init(repeating: nil, count: 255)
        parityOutputs = .init(repeating: nil, count: configuration.batch)
        parityIndices = .init(repeating: 0, count: configuration.batch)
        let blocks = layout.blockCount
        nextParity = .init(repeating: UInt16(configuration.sourceSymbols), count: blocks)
        repeatCursor = .init(repeating: 0, count: blocks)
        pendingNeed = .init(repeating: 0, count: blocks)
        lastRepairAt = .init(repeating: 0, count: blocks)
        lastRepairStamp = .init(repeating: 0, count: blocks)
        lastRepairCount = .init(repeating: 0, count: blocks)
        repairQueue = RingQueue(capacity: blocks)
        // The object's final symbol, zero-padded, stands in for it when computing parity.
        tailPad.initializeMemory(as: UInt8.self, repeating: 0, count: s)
        let lastBlock = blocks - 1
        let lastSymbol = layout.sourceSymbols(inBlock: lastBlock) - 1
        let tailLength = layout.payloadLength(block: lastBlock, symbol: lastSymbol)
        if tailLength > 0, let base = object.baseAddress {
            tailPad.copyMemory(from: base + layout.offset(ofBlock: lastBlock) + lastSymbol * s, byteCount: tailLength)
            counters.paddingBytesCopied = UInt64(tailLength)
        }
        counters.objectBytes = UInt64(object.count)
    }

    deinit {
        parityScratch.deallocate()
        tailPad.deallocate()
    }

    /// What one `turn(now:)` did, and what the caller should do next.
    public enum Turn: Equatable, Sendable {
        /// Datagrams went out: turn again at once.
        case sent(Int)
        /// Nothing to send before this many nanoseconds pass (or a control datagram arrives).
        case wait(UInt64)
        /// The session is over (every receiver done, lingered out, or aborted): call `finish(now:)`.
        case finished
    }

    /// Runs the session to its end on the sender's clock, waiting on the channel between turns.
    /// - Returns: The final report (counters and per-receiver outcome).
    /// - Throws: Socket errors only; receivers that fail are reported, not thrown.
    @discardableResult
    public func run() throws(TransportError) -> SenderReport {
        try begin(now: clock())
        while true {
            switch try turn(now: clock()) {
            case .sent: continue
            case .wait(let nanos): _ = try channel.waitReadable(timeoutNanos: nanos)
            case .finished: return try finish(now: clock())
            }
        }
    }

    /// Starts the session at `now`: the first ANNOUNCEs. `run()` calls it; tests step a sender
    /// with `begin`, `turn` and `finish` on a clock of their own.
    public func begin(now: UInt64) throws(TransportError) {
        startedAt = now
        lastRefill = now
        windowStart = now
        for _ in 0..<3 { try sendAnnounce(now: now) }
    }

    /// One step of the session at `now`: the mailbox, control traffic, ANNOUNCE/FIN timers, rate
    /// adaptation, the end check, and one batch of what the rate allows.
    public func turn(now: UInt64) throws(TransportError) -> Turn {
        applyCommands(now: now)
        if abortReason != nil { return .finished }
        try drainControl(now: now)
        let announceEvery = now < announceBurstUntil ? 10_000_000 : configuration.announceIntervalNanos
        if now &- lastAnnounce >= announceEvery { try sendAnnounce(now: now) }
        adapt(now: now)
        if passDone {
            if now &- lastFin >= configuration.finIntervalNanos { try sendFin(now: now, final: false) }
            // Walks the receiver table: every 10 ms is soon enough to stop.
            if now &- lastFinishCheck >= 10_000_000 {
                lastFinishCheck = now
                if shouldFinish(now: now) { return .finished }
            }
        }
        let budget = refillTokens(now: now)
        if budget > 0 {
            let sent = try fillAndSend(maxDatagrams: budget, now: now)
            if sealer?.exhausted == true {
                abortReason = "2^32 datagrams sealed under one key: the next would repeat a nonce"
                return .finished
            }
            if sent > 0 { return .sent(sent) }
        }
        // Nothing to send now: wait for control traffic or the next token.
        let wait: UInt64 = budget > 0 || currentRate.isUnpaced ? 2_000_000 : tokenWaitNanos()
        return .wait(max(20_000, wait))
    }

    /// Ends the session at `now`: the final FINs, the last progress report, the report.
    public func finish(now: UInt64) throws(TransportError) -> SenderReport {
        for _ in 0..<3 { try sendFin(now: now, final: true) }
        onProgress?(progress(now: now))
        takeChannelCounters()
        return SenderReport(
            counters: counters, receivers: receivers, seconds: Double(now &- startedAt) / 1e9,
            passSeconds: Double(max(passEndedAt, startedAt) - startedAt) / 1e9, finalRate: currentRate,
            proactiveRatio: proactiveRatio, abortReason: abortReason)
    }

    /// Applies what other threads posted to the mailbox.
    func applyCommands(now: UInt64) {
        for command in mailbox.take() {
            switch command {
            case .expectReceiver(let id):
                expectedReceivers += 1
                // Known from now: the silence bound applies from the moment it joined.
                if noteReceiver(id, now: now, admit: true) { lastActivity = now }
            case .joinLate(let id):
                expectedReceivers += 1
                if noteReceiver(id, now: now, admit: true) { lastActivity = now }
                extendPass(now: now)
            case .rateLimit(let r):
                rateControl.limit(to: r)
            case .abort(let reason):
                abortReason = reason
            }
        }
    }

    // MARK: - Emitting symbols

    /// Fills one batch with repair (first) and pass symbols and sends it. Returns datagrams sent.
    func fillAndSend(maxDatagrams: Int, now: UInt64) throws(TransportError) -> Int {
        batch.removeAll()
        let limit = min(maxDatagrams, batch.capacity)
        // While the pass runs, repairs get at most half of each batch so the pass keeps moving.
        let repairLimit = passDone ? limit : max(1, limit / 2)
        while batch.count < repairLimit, let b = repairQueue.first {
            emitRepair(block: b, max: repairLimit - batch.count, now: now)
            if pendingNeed[b] == 0 { _ = repairQueue.popFirst() }
        }
        while batch.count < limit, !passDone { emitPass(max: limit - batch.count, now: now) }
        guard !batch.isEmpty else { return 0 }
        let n = batch.count
        try transmit()
        rateSampleBytes += UInt64(batch.bytes)
        if now - rateSampleStart >= 10_000_000 {
            let sample = Double(rateSampleBytes) / (Double(now - rateSampleStart) / 1e9)
            sendRateEstimate = sendRateEstimate == 0 ? sample : sendRateEstimate * 0.7 + sample * 0.3
            rateSampleStart = now
            rateSampleBytes = 0
        }
        windowSymbols += UInt64(n)
        lastActivity = repairQueue.isEmpty ? lastActivity : now
        return n
    }

    func transmit() throws(TransportError) {
        counters.datagramsSent += UInt64(batch.count)
        counters.wireBytes += UInt64(batch.bytes)
        windowBytes += UInt64(batch.bytes)
        if !currentRate.isUnpaced { tokens -= Double(batch.bytes) }
        if loss.kind != .none {
            // Send-side loss: transmit only the survivors, one by one, copied (a test path, not
            // the hot one; its copies are counted like any other).
            for i in 0..<batch.count where !loss.drop() {
                let len = batch.datagramLength(i)
                var buf = [UInt8](repeating: 0, count: len)
                buf.withUnsafeMutableBytes { d in
                    let slot = batch.slots + i * OutgoingBatch.slotSize
                    d.baseAddress!.copyMemory(from: slot, byteCount: PacketHeader.size)
                    if batch.payloadLengths[i] > 0 {
                        (d.baseAddress! + PacketHeader.size).copyMemory(
                            from: batch.payloads[i]!, byteCount: batch.payloadLengths[i])
                        counters.payloadBytesCopied += UInt64(batch.payloadLengths[i])
                    }
                    if batch.tagged[i] {
                        (d.baseAddress! + PacketHeader.size + batch.payloadLengths[i]).copyMemory(
                            from: slot + PacketHeader.size, byteCount: PacketHeader.tagSize)
                    }
                }
                let result = buf.withUnsafeBytes { b in Result { () throws(TransportError) in try channel.sendOne(b) } }
                try result.get()
            }
            counters.sendCalls += UInt64(batch.count)
            return
        }
        do {
            try channel.send(batch)
        } catch  where error.errno == EMSGSIZE {
            let size = PacketHeader.size + layout.symbolSize + (authenticator == nil ? 0 : PacketHeader.tagSize)
            throw TransportError(
                .invalidArgument,
                "datagrams of \(size) bytes (symbol \(layout.symbolSize) + header\(authenticator == nil ? "" : " + tag")) "
                    + "do not fit the interface MTU; use a smaller symbol size (MTU − 28 − \(size - layout.symbolSize))",
                errno: EMSGSIZE)
        }
        counters.sendCalls += 1
    }

    func header(_ type: PacketType, block: Int, symbol: Int, flags: PacketFlags = []) -> PacketHeader {
        sequence &+= 1
        return PacketHeader(
            type: type, flags: flags, sessionID: configuration.sessionID, objectID: configuration.objectID,
            block: UInt32(block), symbol: UInt16(symbol), sequence: sequence, timestamp: timestampMicros())
    }

    func timestampMicros() -> UInt32 {
        UInt32(truncatingIfNeeded: (clock() &- epoch) / 1_000)
    }

    /// Pointer to source symbol `j` of block `b` for parity computation (padded tail if short).
    func sourcePointer(block b: Int, symbol j: Int) -> UnsafePointer<UInt8> {
        let s = layout.symbolSize
        if layout.payloadLength(block: b, symbol: j) < s {
            return UnsafePointer(tailPad.assumingMemoryBound(to: UInt8.self))
        }
        // In bounds: a full symbol lies inside the object.
        return (object.baseAddress! + layout.offset(ofBlock: b) + j * s).assumingMemoryBound(to: UInt8.self)
    }

    func emitSource(block b: Int, symbol j: Int, flags: PacketFlags) {
        let len = layout.payloadLength(block: b, symbol: j)
        let start = object.baseAddress.map { $0 + layout.offset(ofBlock: b) + j * layout.symbolSize }
        batch.append(
            header(.data, block: b, symbol: j, flags: flags),
            payload: UnsafeRawBufferPointer(start: len > 0 ? start : nil, count: len), authenticator: authenticator,
            sealer: sealer)
    }

    /// Computes `count` parity symbols of block `b` starting at index `first`... given as a list
    /// in `parityIndices[0..<count]`, into the scratch slots of the next batch positions, and queues them.
    func emitParity(block b: Int, count: Int, flags: PacketFlags) {
        let kb = layout.sourceSymbols(inBlock: b)
        let s = layout.symbolSize
        for j in 0..<kb { sourcePointers[j] = sourcePointer(block: b, symbol: j) }
        let base = batch.count
        for i in 0..<count {
            parityOutputs[i] = (parityScratch + (base + i) * s).assumingMemoryBound(to: UInt8.self)
        }
        sourcePointers.withUnsafeBufferPointer { src in
            parityIndices.withUnsafeBufferPointer { idx in
                parityOutputs.withUnsafeBufferPointer { out in
                    coefficientScratch.withUnsafeMutableBufferPointer { scratch in
                        ReedSolomon.encode(
                            sources: UnsafeBufferPointer(rebasing: src[0..<kb]),
                            parityIndices: UnsafeBufferPointer(rebasing: idx[0..<count]),
                            outputs: UnsafeBufferPointer(rebasing: out[0..<count]), length: s, scratch: scratch)
                    }
                }
            }
        }
        for i in 0..<count {
            batch.append(
                header(.parity, block: b, symbol: parityIndices[i], flags: flags),
                payload: UnsafeRawBufferPointer(start: parityScratch + (base + i) * s, count: s),
                authenticator: authenticator, sealer: sealer)
        }
    }

    func emitPass(max: Int, now: UInt64) {
        let b = passBlock
        let kb = layout.sourceSymbols(inBlock: b)
        if passSymbol < kb {
            let n = min(max, kb - passSymbol)
            for j in passSymbol..<(passSymbol + n) { emitSource(block: b, symbol: j, flags: []) }
            counters.dataSymbols += UInt64(n)
            passSymbol += n
            if passSymbol == kb { passParity = Int((Double(kb) * proactiveRatio).rounded(.up)) }
            if passSymbol < kb || passParity > 0 { return }
        } else if passParity > 0 {
            let n = min(max, passParity, 255 - Int(nextParity[b]))
            for i in 0..<n { parityIndices[i] = Int(nextParity[b]) + i }
            emitParity(block: b, count: n, flags: [])
            nextParity[b] += UInt16(n)
            counters.proactiveParity += UInt64(n)
            passParity = n == 0 ? 0 : passParity - n
            if passParity > 0 { return }
        }
        // Block done: advance (past the last block, round to the first while the carousel runs).
        passPosition += 1
        passBlock = passPosition % layout.blockCount
        passSymbol = 0
        passParity = 0
        if passPosition > layout.blockCount { counters.carouselBlocks += 1 }
        counters.passes = UInt64((passPosition + layout.blockCount - 1) / layout.blockCount)
        if passPosition == passEnd {
            passDone = true
            passEndedAt = now
            lastActivity = passEndedAt
        }
    }

    /// A member joined while the session runs: it hears the pass from about here on, so the
    /// pass goes on round the object until every block has had one more turn (and a margin for
    /// the time the member takes to join the group), at most `maxPasses` turns in all. What the
    /// bound leaves out, the member NAKs once the pass ends (or fetches by unicast).
    func extendPass(now: UInt64) {
        let count = layout.blockCount
        // ANNOUNCEs every 10 ms for a while: the member cannot take a symbol before it has one.
        announceBurstUntil = now + Self.joinMarginNanos
        let wanted = passPosition + count + joinMarginBlocks()
        let limit = max(count, configuration.maxPasses * count)
        if wanted > limit { counters.lateJoinsBeyondPasses += 1 }
        guard min(wanted, limit) > passEnd else { return }
        passEnd = min(wanted, limit)
        counters.passExtensions += 1
        if passDone {
            // The pass had ended (repair and linger time): it starts again at the first block.
            passDone = false
            passSymbol = 0
            passParity = 0
        }
    }

    /// How long a late member may take from the daemon admitting it to taking symbols: its
    /// ticket, setting up, joining the group and the next ANNOUNCE (every 10 ms after a join).
    static let joinMarginNanos: UInt64 = 100_000_000

    /// The blocks the pass sends in `joinMarginNanos` at the rate it achieves (at least 8,
    /// at most the object): what a late member may miss before it hears the group.
    func joinMarginBlocks() -> Int {
        let rate = sendRateEstimate > 0 ? sendRateEstimate : Double(configuration.initialRate.bytesPerSecond)
        let blockBytes = Double(layout.symbolSize * layout.sourceSymbols) * (1 + proactiveRatio)
        let blocks = rate * Double(Self.joinMarginNanos) / 1e9 / blockBytes
        return min(layout.blockCount, max(8, Int(blocks.rounded(.up))))
    }

    func emitRepair(block b: Int, max: Int, now: UInt64) {
        let kb = layout.sourceSymbols(inBlock: b)
        var n = min(max, Int(pendingNeed[b]))
        var fresh = 0
        while fresh < n, Int(nextParity[b]) + fresh < 255 {
            parityIndices[fresh] = Int(nextParity[b]) + fresh
            fresh += 1
        }
        if fresh > 0 {
            emitParity(block: b, count: fresh, flags: .repair)
            nextParity[b] += UInt16(fresh)
        }
        // Every parity index used: resend the block's source symbols. An incomplete receiver
        // lacks at least `need` of them (it has fewer than k distinct symbols, so it misses more
        // sources than the parity it holds), so one full round of sources always suffices.
        var repeats = 0
        while fresh + repeats < n {
            let c = Int(repeatCursor[b]) % kb
            repeatCursor[b] = UInt16((c + 1) % kb)
            emitSource(block: b, symbol: c, flags: .repair)
            repeats += 1
        }
        n = fresh + repeats
        counters.repairSymbols += UInt64(n)
        counters.repairRepeats += UInt64(repeats)
        pendingNeed[b] -= UInt16(n)
        lastRepairAt[b] = now
        lastRepairStamp[b] = timestampMicros()
        // At most 255 symbols exist per block: saturate (a NAK repeated while queued re-raises the need).
        lastRepairCount[b] = pendingNeed[b] == 0 ? UInt16(n) : UInt16(min(255, Int(lastRepairCount[b]) + n))
    }
}
