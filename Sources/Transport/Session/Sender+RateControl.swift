/// Pacing and adaptation: the token bucket, the rate policy's windows (`RateController`),
/// adaptive parity, and dropping receivers that cannot keep up.
extension Sender {
    // MARK: - Pacing and adaptation

    /// Adds tokens for the elapsed time; returns how many full-size datagrams may go now.
    func refillTokens(now: UInt64) -> Int {
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

    var minimumBurst: Int { min(batch.capacity, max(1, 60_000 / (PacketHeader.size + layout.symbolSize))) }

    func tokenWaitNanos() -> UInt64 {
        let datagram = Double(PacketHeader.size + layout.symbolSize)
        let missing = max(0, datagram * Double(minimumBurst) - tokens)
        return UInt64(missing / Double(max(1, currentRate.bytesPerSecond)) * 1e9)
    }

    /// Every 100 ms: end the rate policy's window (symbols sent, repair asked for), adapt
    /// proactive parity to the loss receivers report, and drop receivers that cannot keep up.
    func adapt(now: UInt64) {
        let elapsed = now - windowStart
        guard elapsed >= 100_000_000 else { return }
        defer {
            if let onProgress { onProgress(progress(now: now)) }
            windowStart = now
            windowSymbols = 0
            windowNeed = 0
            windowBytes = 0
        }
        let window = RateWindow(symbols: windowSymbols, need: windowNeed)
        switch rateControl.windowEnded(window, achieved: sendRateEstimate, now: now) {
        case .increased: counters.rateIncreases += 1
        case .decreased: counters.rateDecreases += 1
        case .unchanged: break
        }
        if configuration.adaptiveParity {
            let worst = receivers.values.filter { $0.state == .receiving }.map(\.recentLoss).max() ?? 0
            lossEstimate = lossEstimate * 0.7 + worst * 0.3
            proactiveRatio = min(configuration.maxProactiveParity, max(configuration.proactiveParity, lossEstimate))
        }
        activeReceivers = max(1, receivers.values.reduce(0) { $0 + ($1.state == .receiving ? 1 : 0) })
        // A receiver silent far longer than its report interval is gone (crashed, unplugged, or an
        // id nobody uses): stop waiting for it.
        for r in receivers.values where r.state == .receiving && now - r.lastSeen > configuration.silentReceiverNanos {
            receivers[r.id]!.state = .failed
            receivers[r.id]!.finishedAt = now
            counters.receiversSilent += 1
        }
        // Ids that spoke for under a second and then fell silent (forged, or a receiver that died
        // at once) leave the table once gone for twice the silence bound: the table feeds every
        // status answer and must not keep what a host on the LAN invented. Counted as silent.
        for r in receivers.values
        where r.state == .failed && r.lastSeen &- r.firstSeen < 1_000_000_000
            && now &- r.lastSeen > 2 * configuration.silentReceiverNanos
        {
            receivers[r.id] = nil
            budgets[r.id] = nil
        }
        let straggling = stragglerDeadlinePassed(now: now)
        for r in receivers.values where r.state == .receiving && (straggling || isLossy(r, now: now)) {
            receivers[r.id]!.state = .dropped
            receivers[r.id]!.finishedAt = now
            counters.receiversDropped += 1
            try? sendDrop(r.id)
        }
    }

    /// A receiver reporting more loss than `maxReceiverLoss` for two seconds running.
    func isLossy(_ r: ReceiverRecord, now: UInt64) -> Bool {
        guard r.recentLoss > configuration.maxReceiverLoss else {
            receivers[r.id]?.lossySince = nil
            return false
        }
        if r.lossySince == nil { receivers[r.id]?.lossySince = now }
        return now - (receivers[r.id]?.lossySince ?? now) > 2_000_000_000
    }

    func progress(now: UInt64) -> SenderProgress {
        takeChannelCounters()
        return SenderProgress(
            sessionID: configuration.sessionID, name: configuration.name, objectSize: layout.objectSize, digest: digest,
            blocks: layout.blockCount, passBlocks: passBlock, pendingRepairBlocks: repairQueue.count, rate: currentRate,
            proactiveParity: proactiveRatio, elapsedSeconds: Double(now - startedAt) / 1e9, counters: counters,
            receivers: receivers.values.sorted { $0.id < $1.id })
    }

    /// What the channel counted on the sender's behalf, into the session's counters.
    func takeChannelCounters() {
        counters.localDrops = channel.localDrops
        counters.reportedErrors = channel.reportedErrors
    }

    /// Whether the one receiver still receiving after the pass has kept the others waiting longer
    /// than the grace period since the last of them finished (one walk over the table).
    func stragglerDeadlinePassed(now: UInt64) -> Bool {
        guard passDone else { return false }
        var receiving = 0
        var othersDone = 0
        var lastFinished: UInt64 = 0
        for r in receivers.values where r.state != .dropped {
            if r.state == .receiving {
                receiving += 1
            } else {
                othersDone += 1
                lastFinished = max(lastFinished, r.finishedAt ?? now)
            }
        }
        return receiving == 1 && othersDone > 0 && now - lastFinished > configuration.slowReceiverGraceNanos
    }
}
