#if canImport(Glibc)
    import Glibc
#endif

/// Sends one object to a multicast group and repairs what receivers report missing.
///
/// One pass sends every block's source symbols (pointers into the caller's mapping) followed by
/// its proactive parity. NAKs ask for a *number* of symbols per block; the sender merges them
/// (maximum need, ignoring requests already covered by repair just sent) and answers with parity
/// indices never sent before for that block. Pacing is a token bucket; the rate backs off when
/// the NAK rate climbs above its running baseline and recovers when it falls.
///
/// The loop does bounded work per turn — drain control traffic, emit one batch — so a NAK is
/// never more than one batch away from being seen. A class: it owns its state and buffers and
/// runs on one thread.
public final class Sender {
    public let configuration: SenderConfiguration
    public let layout: ObjectLayout
    public let digest: SHA256Digest
    /// Called every 100 ms from the sending loop with a snapshot (for status queries); keep it cheap.
    public var onProgress: ((SenderProgress) -> Void)?
    public private(set) var counters = SenderCounters()
    public private(set) var receivers: [UInt32: ReceiverRecord] = [:]
    /// The rate in force now (after adaptation).
    public private(set) var currentRate: Rate
    public private(set) var proactiveRatio: Double

    private let object: UnsafeRawBufferPointer
    private let channel: DatagramChannel
    private let authenticator: PacketAuthenticator?
    private var loss: LossModel
    private let batch: OutgoingBatch
    private let parityScratch: UnsafeMutableRawPointer
    private let tailPad: UnsafeMutableRawPointer
    private let control = ControlDatagram()
    private var coefficientScratch: [UInt8]
    private var sourcePointers: [UnsafePointer<UInt8>?]
    private var parityOutputs: [UnsafeMutablePointer<UInt8>?]
    private var parityIndices: [Int]

    // Pass state.
    private var passBlock = 0
    private var passSymbol = 0
    private var passParity = 0
    public private(set) var passDone = false
    private var passEndedAt: UInt64 = 0

    // Per-block repair state.
    private var nextParity: [UInt16]
    private var repeatCursor: [UInt16]
    private var pendingNeed: [UInt16]
    private var lastRepairAt: [UInt64]
    /// `lastRepairAt` in header-timestamp units (µs since the session's epoch, wrapping).
    private var lastRepairStamp: [UInt32]
    private var lastRepairCount: [UInt16]
    private var repairQueue: RingQueue

    // Timing and adaptation.
    private var sequence: UInt32 = 0
    private var startedAt: UInt64 = 0
    private let epoch = MonotonicClock.nanoseconds()
    private var tokens = 0.0
    private var lastRefill: UInt64 = 0
    private var lastAnnounce: UInt64 = 0
    private var lastFin: UInt64 = 0
    private var lastActivity: UInt64 = 0
    private var windowStart: UInt64 = 0
    private var windowSymbols: UInt64 = 0
    private var windowNeed: UInt64 = 0
    private var windowBytes: UInt64 = 0
    private var nakRatioBaseline = -1.0
    private var adaptWindows = 0
    private var windowOverrun = false
    private var lastBackoff: UInt64 = 0
    /// Recent achieved send rate (bytes/s) and the rate at which unpaced sending first overran.
    private var sendRateEstimate = 0.0
    private var sendRateCeiling = 0.0
    private var slowStart = true
    private var rateSampleStart: UInt64 = 0
    private var rateSampleBytes: UInt64 = 0
    private var lossEstimate = 0.0
    private var rttNanos: UInt64 = 1_000_000
    /// A NAK this soon after a repair of the block, asking no more than was sent, crossed it.
    private var holdoffNanos: UInt64 { max(5_000_000, 2 * rttNanos) }

    /// - Parameters:
    ///   - object: The object's bytes (typically a read-only file mapping); must outlive the sender.
    ///   - digest: SHA-256 of the object, announced to receivers.
    ///   - channel: The group's socket.
    public init(
        object: UnsafeRawBufferPointer, digest: SHA256Digest, channel: DatagramChannel,
        configuration: SenderConfiguration
    ) throws(TransportError) {
        layout = try configuration.validate(objectSize: UInt64(object.count))
        self.configuration = configuration
        self.object = object
        self.digest = digest
        self.channel = channel
        authenticator = try configuration.authenticationKey.map { k throws(TransportError) in try PacketAuthenticator(key: k) }
        loss = configuration.loss
        // Adaptive sending starts at the initial rate and doubles until receivers push back.
        currentRate =
            configuration.adaptiveRate && !configuration.initialRate.isUnpaced
                && (configuration.rate.isUnpaced || configuration.rate.bytesPerSecond > configuration.initialRate.bytesPerSecond)
            ? configuration.initialRate : configuration.rate
        proactiveRatio = configuration.proactiveParity
        let s = layout.symbolSize
        batch = OutgoingBatch(capacity: configuration.batch)
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

    /// Runs the session to its end.
    /// - Returns: The final report (counters and per-receiver outcome).
    /// - Throws: Socket errors only; receivers that fail are reported, not thrown.
    @discardableResult
    public func run() throws(TransportError) -> SenderReport {
        let start = MonotonicClock.nanoseconds()
        startedAt = start
        lastRefill = start
        windowStart = start
        for _ in 0..<3 { try sendAnnounce(now: start) }
        while true {
            let now = MonotonicClock.nanoseconds()
            try drainControl(now: now)
            if now &- lastAnnounce >= configuration.announceIntervalNanos { try sendAnnounce(now: now) }
            adapt(now: now)
            if passDone {
                if now &- lastFin >= configuration.finIntervalNanos { try sendFin(now: now, final: false) }
                if shouldFinish(now: now) { break }
            }
            let budget = refillTokens(now: now)
            if budget > 0, try fillAndSend(maxDatagrams: budget, now: now) > 0 { continue }
            // Nothing to send now: wait for control traffic or the next token.
            let wait: UInt64 = budget > 0 || currentRate.isUnpaced ? 2_000_000 : tokenWaitNanos()
            _ = try channel.waitReadable(timeoutNanos: max(20_000, wait))
        }
        for _ in 0..<3 { try sendFin(now: MonotonicClock.nanoseconds(), final: true) }
        return SenderReport(
            counters: counters, receivers: receivers, seconds: Double(MonotonicClock.nanoseconds() - start) / 1e9,
            passSeconds: Double(passEndedAt - start) / 1e9, finalRate: currentRate, proactiveRatio: proactiveRatio)
    }

    // MARK: - Emitting symbols

    /// Fills one batch with repair (first) and pass symbols and sends it. Returns datagrams sent.
    private func fillAndSend(maxDatagrams: Int, now: UInt64) throws(TransportError) -> Int {
        batch.removeAll()
        let limit = min(maxDatagrams, batch.capacity)
        // While the pass runs, repairs get at most half of each batch so the pass keeps moving.
        let repairLimit = passDone ? limit : max(1, limit / 2)
        while batch.count < repairLimit, let b = repairQueue.first {
            emitRepair(block: b, max: repairLimit - batch.count, now: now)
            if pendingNeed[b] == 0 { _ = repairQueue.popFirst() }
        }
        while batch.count < limit, !passDone { emitPass(max: limit - batch.count) }
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

    private func transmit() throws(TransportError) {
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
        } catch where error.message == "gso-unsupported" {
            counters.gsoFallbacks += 1
            try channel.send(batch)
        } catch where error.errno == EMSGSIZE {
            let size = PacketHeader.size + layout.symbolSize + (authenticator == nil ? 0 : PacketHeader.tagSize)
            throw TransportError(
                .invalidArgument,
                "datagrams of \(size) bytes (symbol \(layout.symbolSize) + header\(authenticator == nil ? "" : " + tag")) "
                    + "do not fit the interface MTU; use a smaller symbol size (MTU − 28 − \(size - layout.symbolSize))",
                errno: EMSGSIZE)
        }
        counters.sendCalls += 1
    }

    private func header(_ type: PacketType, block: Int, symbol: Int, flags: PacketFlags = []) -> PacketHeader {
        sequence &+= 1
        return PacketHeader(
            type: type, flags: flags, sessionID: configuration.sessionID, objectID: configuration.objectID,
            block: UInt32(block), symbol: UInt16(symbol), sequence: sequence, timestamp: timestampMicros())
    }

    private func timestampMicros() -> UInt32 {
        UInt32(truncatingIfNeeded: (MonotonicClock.nanoseconds() - epoch) / 1_000)
    }

    /// Pointer to source symbol `j` of block `b` for parity computation (padded tail if short).
    private func sourcePointer(block b: Int, symbol j: Int) -> UnsafePointer<UInt8> {
        let s = layout.symbolSize
        if layout.payloadLength(block: b, symbol: j) < s {
            return UnsafePointer(tailPad.assumingMemoryBound(to: UInt8.self))
        }
        // In bounds: a full symbol lies inside the object.
        return (object.baseAddress! + layout.offset(ofBlock: b) + j * s).assumingMemoryBound(to: UInt8.self)
    }

    private func emitSource(block b: Int, symbol j: Int, flags: PacketFlags) {
        let len = layout.payloadLength(block: b, symbol: j)
        let start = object.baseAddress.map { $0 + layout.offset(ofBlock: b) + j * layout.symbolSize }
        batch.append(
            header(.data, block: b, symbol: j, flags: flags),
            payload: UnsafeRawBufferPointer(start: len > 0 ? start : nil, count: len), authenticator: authenticator)
    }

    /// Computes `count` parity symbols of block `b` starting at index `first`... given as a list
    /// in `parityIndices[0..<count]`, into the scratch slots of the next batch positions, and queues them.
    private func emitParity(block b: Int, count: Int, flags: PacketFlags) {
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
                authenticator: authenticator)
        }
    }

    private func emitPass(max: Int) {
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
        // Block done: advance.
        passBlock += 1
        passSymbol = 0
        passParity = 0
        if passBlock == layout.blockCount {
            passDone = true
            counters.passes += 1
            passEndedAt = MonotonicClock.nanoseconds()
            lastActivity = passEndedAt
        }
    }

    private func emitRepair(block b: Int, max: Int, now: UInt64) {
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
        lastRepairCount[b] = pendingNeed[b] == 0 ? UInt16(n) : lastRepairCount[b] + UInt16(n)
    }

    // MARK: - Control traffic

    private func drainControl(now: UInt64) throws(TransportError) {
        while try channel.receive({ handleControl($0, now: now) }) > 0 {}
    }

    private func handleControl(_ datagram: UnsafeRawBufferPointer, now: UInt64) {
        let h: PacketHeader
        switch PacketHeader.decode(datagram) {
        case .failure(let r):
            counters.drops.count(r)
            return
        case .success(let v): h = v
        }
        guard h.sessionID == configuration.sessionID else { return counters.drops.count(.foreignSession) }
        guard h.objectID == configuration.objectID else { return counters.drops.count(.foreignObject) }
        if let auth = authenticator {
            guard h.flags.contains(.authenticated), auth.verify(datagram) else {
                return counters.drops.count(.authenticationFailed)
            }
        }
        let body = UnsafeRawBufferPointer(rebasing: datagram[PacketHeader.size..<(PacketHeader.size + Int(h.payloadLength))])
        switch h.type {
        case .nak: handleNak(body, now: now)
        case .status: handleStatus(body, now: now)
        default: counters.drops.count(.notForThisRole)  // our own traffic looped back, or another sender
        }
    }

    private func handleNak(_ body: UnsafeRawBufferPointer, now: UInt64) {
        // Validate the whole body before acting on any entry.
        var entries = 0
        var outOfRange = false
        let parsed = NakBody.forEachEntry(body) { e in
            entries += 1
            let b = Int(e.block)
            if b >= layout.blockCount || Int(e.needed) > layout.sourceSymbols(inBlock: b) { outOfRange = true }
        }
        let info: (receiverID: UInt32, echo: UInt32)
        switch parsed {
        case .failure(let r): return counters.drops.count(r)
        case .success(let v): info = v
        }
        guard !outOfRange else { return counters.drops.count(.blockOutOfRange) }
        counters.naksReceived += 1
        if receivers[info.receiverID]?.state == .dropped {
            counters.nakEntriesFromDropped += UInt64(entries)
            repeatDropNotice(info.receiverID, now: now)
            return
        }
        guard noteReceiver(info.receiverID, now: now) else { return }
        lastActivity = now
        let nowMicros = timestampMicros()
        if info.echo != 0 {
            // Round trip including the receiver's queueing: rises fast, decays slowly.
            let sample = UInt64(nowMicros &- info.echo) * 1_000
            if sample < 5_000_000_000 {
                rttNanos = sample > rttNanos ? (rttNanos + sample) / 2 : (rttNanos * 7 + sample) / 8
            }
        }
        _ = NakBody.forEachEntry(body) { e in
            let b = Int(e.block)
            // With the parity indices used up, a request is answered by a full round of sources.
            let need = nextParity[b] >= 255 ? UInt16(layout.sourceSymbols(inBlock: b)) : UInt16(e.needed)
            counters.nakEntries += 1
            if repairQueue.contains(b) || pendingNeed[b] > 0 {
                if need > pendingNeed[b] { pendingNeed[b] = need } else { counters.nakEntriesMerged += 1 }
            } else if need <= lastRepairCount[b], crossedRepair(block: b, echo: info.echo, now: now) {
                // Already answered: the receiver had not yet seen our repair when it asked.
                counters.nakEntriesMerged += 1
            } else {
                pendingNeed[b] = need
                repairQueue.push(b)
                windowNeed += UInt64(need)
            }
        }
    }

    /// Whether a NAK for block `b` was written before the receiver could have seen our last
    /// repair of it: the NAK echoes the timestamp of the newest datagram the receiver had
    /// processed, so a repair sent after that instant is still on its way (or in its queue).
    private func crossedRepair(block b: Int, echo: UInt32, now: UInt64) -> Bool {
        guard lastRepairAt[b] != 0 else { return false }
        if echo != 0 { return Int32(bitPattern: lastRepairStamp[b] &- echo) > 0 }
        return now &- lastRepairAt[b] < holdoffNanos
    }

    private func handleStatus(_ body: UnsafeRawBufferPointer, now: UInt64) {
        switch StatusBody.decode(body) {
        case .failure(let r): counters.drops.count(r)
        case .success(let s):
            guard s.state != .dropped else { return counters.drops.count(.notForThisRole) }  // our own verdict
            counters.statusReceived += 1
            guard noteReceiver(s.receiverID, now: now) else { return }
            guard var r = receivers[s.receiverID], r.state != .dropped else {
                repeatDropNotice(s.receiverID, now: now)
                return
            }
            let dLost = s.lost &- r.lost
            let dRecv = s.received &- r.received
            if s.received >= r.received, s.lost >= r.lost, dLost + dRecv > 64 {
                r.recentLoss = Double(dLost) / Double(dLost + dRecv)
            }
            if s.overruns > r.overruns {
                // The receiver's kernel dropped datagrams: it cannot keep up at this rate.
                windowOverrun = true
                if backOff(now: now) { counters.overrunBackoffs += 1 }
            } else if Int(s.queueFill) >= Receiver.queueAlarm {
                // Its queue is filling: slow down before it overflows.
                windowOverrun = true
                if backOff(now: now) { counters.queueBackoffs += 1 }
            } else if s.queueFill >= 25 {
                windowOverrun = true  // hold the rate: no increase while a queue is half-way there
            }
            r.overruns = s.overruns
            r.received = s.received
            r.lost = s.lost
            r.blocksComplete = s.blocksComplete
            if r.state == .receiving { r.state = s.state }
            if s.state == .complete || s.state == .failed { r.finishedAt = now }
            receivers[s.receiverID] = r
        }
    }

    /// Records that receiver `id` spoke. Returns false (and the message is to be ignored) when
    /// the table is full: receiver ids come off the wire, so their number must be bounded.
    private func noteReceiver(_ id: UInt32, now: UInt64) -> Bool {
        if receivers[id] == nil {
            guard receivers.count < configuration.maxReceivers else {
                counters.drops.count(.bufferLimit)
                return false
            }
            receivers[id] = ReceiverRecord(id: id, firstSeen: now)
        }
        receivers[id]!.lastSeen = now
        return true
    }

    // MARK: - Announce, FIN, end of session

    private func sendControl(_ type: PacketType, flags: PacketFlags = [], body: (UnsafeMutableRawPointer, Int) -> Int)
        throws(TransportError)
    {
        let datagram = control.build(header(type, block: 0, symbol: 0, flags: flags), authenticator: authenticator, body: body)
        counters.datagramsSent += 1
        counters.wireBytes += UInt64(datagram.count)
        if loss.drop() { return }
        try channel.sendOne(datagram)
    }

    private func sendAnnounce(now: UInt64) throws(TransportError) {
        lastAnnounce = now
        counters.announces += 1
        let body = AnnounceBody(
            layout: layout, proactiveParity: Int((Double(layout.sourceSymbols) * proactiveRatio).rounded(.up)),
            digest: digest, name: configuration.name)
        try sendControl(.announce) { body.encode(to: $0, capacity: $1) }
    }

    private func sendFin(now: UInt64, final: Bool) throws(TransportError) {
        lastFin = now
        counters.fins += 1
        let fin = FinBody(blockCount: UInt32(layout.blockCount), pass: UInt32(counters.passes))
        try sendControl(.fin, flags: final ? .final : []) { fin.encode(to: $0, capacity: $1) }
    }

    private func sendDrop(_ id: UInt32) throws(TransportError) {
        let st = StatusBody(receiverID: id, state: .dropped, blocksComplete: 0, received: 0, lost: 0)
        try sendControl(.status) { st.encode(to: $0, capacity: $1) }
    }

    /// A dropped receiver that still talks has not heard its verdict (lost): say it again,
    /// at most every 100 ms.
    private func repeatDropNotice(_ id: UInt32, now: UInt64) {
        guard let r = receivers[id], r.state == .dropped, now - (r.finishedAt ?? 0) >= 100_000_000 else { return }
        receivers[id]?.finishedAt = now
        try? sendDrop(id)
    }

    private func shouldFinish(now: UInt64) -> Bool {
        guard repairQueue.isEmpty else { return now - passEndedAt > configuration.maxLingerNanos }
        let active = receivers.values.filter { $0.state != .dropped }
        let finished = receivers.values.filter { $0.state != .receiving }.count
        if configuration.expectedReceivers > 0, finished >= configuration.expectedReceivers {
            // Complete, failed or dropped: nobody we wait for is still receiving.
            return receivers.values.allSatisfy { $0.state != .receiving }
        }
        let quiet = now - lastActivity
        // Everyone we know of is done: a short quiet period lets late NAKs arrive, then stop.
        if configuration.expectedReceivers == 0, !active.isEmpty, active.allSatisfy({ $0.state != .receiving }),
            quiet > min(configuration.lingerNanos, 200_000_000)
        {
            return true
        }
        if configuration.expectedReceivers == 0, quiet > configuration.lingerNanos { return true }
        return now - passEndedAt > configuration.maxLingerNanos
    }

    // MARK: - Pacing and adaptation

    /// Adds tokens for the elapsed time; returns how many full-size datagrams may go now.
    private func refillTokens(now: UInt64) -> Int {
        if currentRate.isUnpaced { return batch.capacity }
        let dt = Double(now - lastRefill) / 1e9
        lastRefill = now
        let datagram = Double(PacketHeader.size + layout.symbolSize)
        let burst = datagram * Double(batch.capacity) * 2
        tokens = min(burst, tokens + dt * Double(currentRate.bytesPerSecond))
        // Send in runs big enough for one segmentation-offload super-datagram: many small sends
        // would cost the per-call overhead GSO exists to avoid.
        return tokens >= datagram * Double(minimumBurst) ? min(batch.capacity, Int(tokens / datagram)) : 0
    }

    private var minimumBurst: Int { min(batch.capacity, max(1, 60_000 / (PacketHeader.size + layout.symbolSize))) }

    private func tokenWaitNanos() -> UInt64 {
        let datagram = Double(PacketHeader.size + layout.symbolSize)
        let missing = max(0, datagram * Double(minimumBurst) - tokens)
        return UInt64(missing / Double(max(1, currentRate.bytesPerSecond)) * 1e9)
    }

    /// Every 100 ms: compare the NAK rate with its baseline, recover the rate when no receiver
    /// signals trouble, adapt proactive parity to the loss receivers report, and drop receivers
    /// that cannot keep up.
    private func adapt(now: UInt64) {
        let elapsed = now - windowStart
        guard elapsed >= 100_000_000 else { return }
        defer {
            if let onProgress { onProgress(progress(now: now)) }
            windowStart = now
            windowSymbols = 0
            windowNeed = 0
            windowBytes = 0
            windowOverrun = false
        }
        if configuration.adaptiveRate {
            var climbing = false
            if windowSymbols >= 256 {
                let ratio = Double(windowNeed) / Double(windowSymbols)
                if ratio > 0 || adaptWindows > 0 { adaptWindows += 1 }
                if adaptWindows > 0 && adaptWindows <= 5 {
                    // Warm-up once NAKs flow: learn the loss the path always has (steady random
                    // loss is not congestion, backing off would not reduce it).
                    nakRatioBaseline = nakRatioBaseline < 0 ? ratio : (nakRatioBaseline + ratio) / 2
                } else if adaptWindows > 5 {
                    climbing = ratio > max(2 * nakRatioBaseline, nakRatioBaseline + 0.15)
                    nakRatioBaseline = nakRatioBaseline * 0.9 + ratio * 0.1
                }
            }
            if climbing {
                backOff(now: now)
            } else if slowStart, !windowOverrun, !currentRate.isUnpaced {
                // Slow start: +25 % each window until a receiver's queue fills or NAKs climb.
                let next = Double(currentRate.bytesPerSecond) * 1.25
                if configuration.rate.isUnpaced {
                    currentRate = next > 4e9 ? .unpaced : Rate(bytesPerSecond: UInt64(next))
                } else {
                    currentRate = Rate(bytesPerSecond: UInt64(min(next, Double(configuration.rate.bytesPerSecond))))
                }
                counters.rateIncreases += 1
            } else if !windowOverrun, !currentRate.isUnpaced, currentRate != configuration.rate {
                // No receiver in trouble: probe upward toward the configured rate (or unpaced).
                // Never above the rate that last overran a receiver.
                let cap = configuration.rate.isUnpaced
                    ? sendRateCeiling : min(sendRateCeiling, Double(configuration.rate.bytesPerSecond))
                let next = min(cap, Double(currentRate.bytesPerSecond) * 1.05)
                if next > Double(currentRate.bytesPerSecond) {
                    currentRate = Rate(bytesPerSecond: UInt64(next))
                    counters.rateIncreases += 1
                }
            }
        }
        if configuration.adaptiveParity {
            let worst = receivers.values.filter { $0.state == .receiving }.map(\.recentLoss).max() ?? 0
            lossEstimate = lossEstimate * 0.7 + worst * 0.3
            proactiveRatio = min(configuration.maxProactiveParity, max(configuration.proactiveParity, lossEstimate))
        }
        // A receiver silent far longer than its report interval is gone (crashed, unplugged, or an
        // id nobody uses): stop waiting for it.
        for r in receivers.values where r.state == .receiving && now - r.lastSeen > configuration.silentReceiverNanos {
            receivers[r.id]!.state = .failed
            receivers[r.id]!.finishedAt = now
            counters.receiversSilent += 1
        }
        for r in receivers.values where r.state == .receiving && (isLossy(r, now: now) || isSlow(r, now: now)) {
            receivers[r.id]!.state = .dropped
            receivers[r.id]!.finishedAt = now
            counters.receiversDropped += 1
            try? sendDrop(r.id)
        }
    }

    /// Cuts the rate to 3/4 of what is being achieved (at most once per 100 ms, so the reports
    /// of one episode do not compound). Returns whether it cut.
    @discardableResult
    private func backOff(now: UInt64) -> Bool {
        guard configuration.adaptiveRate, now - lastBackoff >= 100_000_000 else { return false }
        lastBackoff = now
        slowStart = false
        let base = currentRate.isUnpaced ? max(sendRateEstimate, 1e6) : Double(currentRate.bytesPerSecond)
        sendRateCeiling = sendRateCeiling == 0 ? base : min(sendRateCeiling, base)
        let floor = Double(configuration.minimumRate.bytesPerSecond)
        currentRate = Rate(bytesPerSecond: UInt64(max(floor, base * 0.75)))
        counters.rateDecreases += 1
        return true
    }

    /// A receiver reporting more loss than `maxReceiverLoss` for two seconds running.
    private func isLossy(_ r: ReceiverRecord, now: UInt64) -> Bool {
        guard r.recentLoss > configuration.maxReceiverLoss else {
            receivers[r.id]?.lossySince = nil
            return false
        }
        if r.lossySince == nil { receivers[r.id]?.lossySince = now }
        return now - (receivers[r.id]?.lossySince ?? now) > 2_000_000_000
    }

    private func progress(now: UInt64) -> SenderProgress {
        SenderProgress(
            sessionID: configuration.sessionID, name: configuration.name, objectSize: layout.objectSize, digest: digest,
            blocks: layout.blockCount, passBlocks: passBlock, pendingRepairBlocks: repairQueue.count, rate: currentRate,
            proactiveParity: proactiveRatio, elapsedSeconds: Double(now - startedAt) / 1e9, counters: counters,
            receivers: receivers.values.sorted { $0.id < $1.id })
    }

    private func isSlow(_ r: ReceiverRecord, now: UInt64) -> Bool {
        guard passDone, r.state == .receiving else { return false }
        let others = receivers.values.filter { $0.id != r.id && $0.state != .dropped }
        guard !others.isEmpty, others.allSatisfy({ $0.state != .receiving }) else { return false }
        let lastOther = others.compactMap(\.finishedAt).max() ?? now
        return now - lastOther > configuration.slowReceiverGraceNanos
    }
}

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
    /// Loss fraction between its last two reports.
    public var recentLoss = 0.0
    /// Since when its reported loss exceeds the bound.
    public var lossySince: UInt64?

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
}
