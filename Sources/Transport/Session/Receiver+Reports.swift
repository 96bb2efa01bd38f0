/// What the receiver hears of the session's end and tells the sender: FIN and "dropped"
/// verdicts (believed only once nothing contradicts them), STATUS reports, and what is missing.
extension Receiver {
    func handleFin(_ h: PacketHeader, _ payload: UnsafeRawBufferPointer, now: UInt64) {
        switch FinBody.decode(payload) {
        case .failure(let r): return counters.drops.count(r)
        case .success(let fin):
            guard Int(fin.blockCount) == table.count else { return counters.drops.count(.malformedBody) }
        }
        counters.accepted += 1
        endBlocks(upTo: table.count, now: now)
        // Believed in `tick` once the sender has stayed silent after it (anyone can send a FIN).
        if h.flags.contains(.final), !table.allComplete, finalFinAt == 0 { finalFinAt = now }
    }

    func handleStatus(_ payload: UnsafeRawBufferPointer, now: UInt64) {
        switch StatusBody.decode(payload) {
        case .failure(let r): counters.drops.count(r)
        case .success(let s):
            counters.accepted += 1
            // Believed in `tick` once we stop getting anywhere (anyone can send a verdict).
            // Other receivers' progress reports need no action here.
            if s.state == .dropped, s.receiverID == configuration.receiverID, droppedAt == 0 { droppedAt = now }
        }
    }

    /// Acts on a standing final FIN or "dropped" verdict once the session has not contradicted
    /// it for `verdictConfirmNanos`: a forged one costs us that long at most, never the session.
    func confirmVerdicts(now: UInt64) {
        let wait = configuration.verdictConfirmNanos
        if finalFinAt != 0 {
            if lastStreamAt > finalFinAt {
                finalFinAt = 0
                counters.verdictsContradicted += 1
            } else if now &- finalFinAt >= wait {
                state = .failed(
                    TransportError(
                        .repairExhausted,
                        "sender ended the session with \(table.count - table.completed) blocks missing "
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

    /// Tells the sender how this receiver ended (complete twice: one may be lost; failed once),
    /// so it can end without waiting. `run()` calls it; a test stepping `tick` calls it itself.
    public func reportEnd(now: UInt64) throws(TransportError) {
        guard isFinished else { return }
        try sendStatus(now: now)
        if case .complete = state { try sendStatus(now: now) }
    }

    /// Sends STATUS every status interval, and at once (at most every 20 ms) when the kernel
    /// dropped datagrams for us, our queue is filling, or we miss a share of the datagrams only
    /// overload explains (`OverloadLoss`): the sender must slow down before the loss grows.
    func reportIfDue(now: UInt64) throws(TransportError) {
        let overruns = channel?.overruns ?? 0
        var overloaded = false
        if now - lastQueueProbe >= 2_000_000 {
            // One getsockopt; every 2 ms is plenty to see a queue filling.
            lastQueueProbe = now
            queueFill = max(queueFill, channel?.receiveQueuePercent ?? 0)
            let gaps = sequenceGaps
            overloaded = OverloadLoss.isOverload(
                lost: gaps > gapsAtStatus ? gaps - gapsAtStatus : 0, received: senderDatagrams - receivedAtStatus)
        }
        let alarm = overruns > reportedOverruns || queueFill >= QueuePressure.reportAt || overloaded
        if now - lastStatus >= configuration.statusIntervalNanos || (alarm && now - lastStatus >= 20_000_000) {
            try sendStatus(now: now)
        }
    }

    private func sendStatus(now: UInt64) throws(TransportError) {
        lastStatus = now
        let st: StatusBody.State =
            switch state {
            case .complete: .complete
            case .failed: .failed
            default: .receiving
            }
        counters.sequenceGaps = sequenceGaps
        gapsAtStatus = counters.sequenceGaps
        receivedAtStatus = senderDatagrams
        reportedOverruns = channel?.overruns ?? 0
        counters.overruns = reportedOverruns
        let body = StatusBody(
            receiverID: configuration.receiverID, state: st, blocksComplete: UInt32(table.completed),
            received: senderDatagrams, lost: counters.sequenceGaps, overruns: reportedOverruns,
            queueFill: UInt8(min(queueFill, 100)))
        counters.maxQueueFill = max(counters.maxQueueFill, UInt64(queueFill))
        queueFill = 0
        counters.statusSent += 1
        try sendControl(.status) { body.encode(to: $0, capacity: $1) }
    }

    /// The sender's datagrams we never got: the gaps in its sequence numbers since the first
    /// we saw (one socket does not reorder).
    var sequenceGaps: UInt64 {
        let expected = firstSequence.map { UInt64(highestSequence &- $0) + 1 } ?? 0
        return expected > senderDatagrams ? expected - senderDatagrams : 0
    }

    func sendControl(_ type: PacketType, body: (UnsafeMutableRawPointer, Int) -> Int) throws(TransportError) {
        guard let channel, let sid = sessionID, let oid = objectID else { return }
        let h = PacketHeader(type: type, sessionID: sid, objectID: oid)
        try channel.sendOne(control.build(h, authenticator: gate.authenticator, body: body))
    }

    /// "blocks 3, 17, 40–45 and 12 more ranges" style list of incomplete blocks.
    public func missingBlocksDescription(limit: Int = 10) -> String {
        guard layout != nil else { return "all blocks" }
        let runs = table.incompleteRuns()
        let shown = runs.prefix(limit).map { $0.count == 1 ? "\($0.lowerBound)" : "\($0.lowerBound)–\($0.upperBound)" }
        let more = runs.count > limit ? " and \(runs.count - limit) more ranges" : ""
        return "blocks " + shown.joined(separator: ", ") + more
    }

    /// The byte ranges of the object not yet delivered (incomplete blocks, adjacent ones merged,
    /// cut at the object's size): what a unicast fallback must fetch. All of it before announce.
    public func missingRanges() -> [Range<UInt64>] {
        guard let l = layout else { return [] }
        return table.incompleteRuns().compactMap { run in
            let start = UInt64(l.offset(ofBlock: run.lowerBound))
            let end = min(UInt64(l.offset(ofBlock: run.upperBound) + l.blockBytes), l.objectSize)
            return start < end ? start..<end : nil
        }
    }
}
