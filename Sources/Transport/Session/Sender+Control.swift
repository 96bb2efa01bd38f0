/// The sender's control traffic: NAKs and STATUS in; ANNOUNCE, FIN and verdicts out; when to end.
extension Sender {
    // MARK: - Control traffic

    func drainControl(now: UInt64) throws(TransportError) {
        while try channel.receive({ handleControl($0, now: now) }) > 0 {}
    }

    func handleControl(_ datagram: UnsafeRawBufferPointer, now: UInt64) {
        let admitted: DatagramGate.Admitted
        switch gate.admit(datagram) {
        case .failure(let r): return counters.drops.count(r)
        case .success(let a): admitted = a
        }
        let (h, body) = (admitted.header, admitted.payload)
        switch h.type {
        case .nak: handleNak(body, now: now)
        case .status: handleStatus(body, now: now)
        default: counters.drops.count(.notForThisRole)  // our own traffic looped back, or another sender
        }
    }

    func handleNak(_ body: UnsafeRawBufferPointer, now: UInt64) {
        // Validate the whole body before acting on any entry.
        let info: (receiverID: UInt32, echo: UInt32, entries: Int)
        switch NakBody.validate(body, against: layout) {
        case .failure(let r): return counters.drops.count(r)
        case .success(let v): info = v
        }
        if receivers[info.receiverID]?.state == .dropped {
            counters.naksReceived += 1
            counters.nakEntriesFromDropped += UInt64(info.entries)
            repeatDropNotice(info.receiverID, now: now)
            return
        }
        guard noteReceiver(info.receiverID, now: now) else { return }
        counters.naksReceived += 1
        lastActivity = now
        reopenIfFinished(info.receiverID)
        var budget = refilledBudget(info.receiverID, now: now)
        defer { budgets[info.receiverID] = budget }
        let nowMicros = timestampMicros()
        if info.echo != 0 {
            // Round trip including the receiver's queueing: rises fast, decays slowly. The echo
            // comes off the wire: a sample outside 0…5 s is not a round trip and is ignored.
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
                guard need > pendingNeed[b] else {
                    counters.nakEntriesMerged += 1
                    return
                }
                guard budget.spendRepair(Int(need - pendingNeed[b])) else {
                    counters.nakEntriesOverBudget += 1
                    return
                }
                pendingNeed[b] = need
            } else if need <= lastRepairCount[b], crossedRepair(block: b, echo: info.echo, now: now) {
                // Already answered: the receiver had not yet seen our repair when it asked.
                counters.nakEntriesMerged += 1
            } else {
                // Every answered symbol is charged to the asker: one receiver (or whoever uses
                // its id) gets at most its fair share of the repair bandwidth.
                guard budget.spendRepair(Int(need)) else {
                    counters.nakEntriesOverBudget += 1
                    return
                }
                pendingNeed[b] = need
                repairQueue.push(b)
                windowNeed += UInt64(need)
            }
        }
    }

    /// The fair share of repair one receiver may ask for: the session's symbol rate divided
    /// among the receivers still receiving, with two seconds' worth (and at least 64 blocks'
    /// worth of symbols) available at once, so an honest receiver's burst of NAKs after a short
    /// outage is answered in full.
    var repairShare: (perSecond: Double, capacity: Double) {
        let bytesPerSecond =
            currentRate.isUnpaced
            ? max(sendRateEstimate, Double(configuration.initialRate.bytesPerSecond))
            : Double(currentRate.bytesPerSecond)
        let perSecond = bytesPerSecond / Double(layout.symbolSize) / Double(max(1, activeReceivers))
        return (perSecond, max(64 * Double(layout.sourceSymbols), 2 * perSecond))
    }

    /// Receiver `id`'s budget, refilled up to now (a new one starts full).
    func refilledBudget(_ id: UInt32, now: UInt64) -> ReceiverBudget {
        let share = repairShare
        guard var budget = budgets[id] else { return ReceiverBudget(repairCapacity: share.capacity, now: now) }
        budget.refill(now: now, repairPerSecond: share.perSecond, repairCapacity: share.capacity)
        return budget
    }

    /// Whether the first turn of the pass has sent every source symbol of the last block.
    var lastSourcesSent: Bool {
        let last = layout.blockCount - 1
        return passDone || passPosition > last
            || (passPosition == last && passSymbol >= layout.sourceSymbols(inBlock: last))
    }

    /// A receiver we took as finished speaks up as receiving: its "complete" was not its own
    /// (forged) or was overtaken. Take it back, so the session does not end under it.
    func reopenIfFinished(_ id: UInt32) {
        guard let state = receivers[id]?.state, state == .complete || state == .failed else { return }
        receivers[id]?.state = .receiving
        receivers[id]?.finishedAt = nil
        counters.verdictsContradicted += 1
    }

    /// Whether a NAK for block `b` was written before the receiver could have seen our last
    /// repair of it: the NAK echoes the timestamp of the newest datagram the receiver had
    /// processed, so a repair sent after that instant is still on its way (or in its queue).
    func crossedRepair(block b: Int, echo: UInt32, now: UInt64) -> Bool {
        guard lastRepairAt[b] != 0 else { return false }
        if echo != 0 { return Int32(bitPattern: lastRepairStamp[b] &- echo) > 0 }
        return now &- lastRepairAt[b] < holdoffNanos
    }

    func handleStatus(_ body: UnsafeRawBufferPointer, now: UInt64) {
        let s: StatusBody
        switch StatusBody.decode(body) {
        case .failure(let r): return counters.drops.count(r)
        case .success(let v): s = v
        }
        guard s.state != .dropped else { return counters.drops.count(.notForThisRole) }  // our own verdict
        // No receiver can have every block before the pass has sent the last block's sources
        // (its parity may still be on the way: a receiver with every source is complete then).
        guard s.state != .complete || lastSourcesSent else { return counters.drops.count(.implausible) }
        guard noteReceiver(s.receiverID, now: now) else { return }
        counters.statusReceived += 1
        guard var r = receivers[s.receiverID], r.state != .dropped else {
            repeatDropNotice(s.receiverID, now: now)
            return
        }
        // Every number here is the receiver's claim: differences are taken only when both
        // counters moved forward, and summed without overflow.
        if s.received >= r.received, s.lost >= r.lost {
            let dLost = s.lost - r.lost
            let (sum, overflow) = dLost.addingReportingOverflow(s.received - r.received)
            if !overflow, sum > 64 { r.recentLoss = Double(dLost) / Double(sum) }
            overloadReported(
                &r, overload: OverloadLoss.isOverload(lost: dLost, received: s.received - r.received), now: now)
        }
        r.statusAt = now
        let overran = s.overruns > r.overruns
        let fill = Int(s.queueFill)
        r.queueTrough = min(r.queueTrough, fill)
        switch QueuePressure(fill: fill, trough: r.queueTrough, overran: overran) {
        case .cut:
            // Its kernel dropped datagrams, or its queue grows: it cannot keep up at this rate.
            if pressure(from: s.receiverID, now: now, cut: true) {
                if overran { counters.overrunBackoffs += 1 } else { counters.queueBackoffs += 1 }
                r.queueTrough = fill
            }
        case .hold: _ = pressure(from: s.receiverID, now: now, cut: false)
        case .none: break
        }
        r.queueFill = fill
        // Taken back on any "receiving" report, whatever its counters: a forged "complete" may
        // carry received = 2⁶⁴−1, which no honest count would exceed. (A report overtaken by the
        // receiver's own "complete" would cost only the silence bound; one socket does not reorder.)
        if r.state == .complete || r.state == .failed, s.state == .receiving {
            r.state = .receiving
            r.finishedAt = nil
            counters.verdictsContradicted += 1
        }
        r.overruns = s.overruns
        r.received = s.received
        r.lost = s.lost
        r.blocksComplete = s.blocksComplete
        if r.state == .receiving, s.state != .receiving {
            r.state = s.state
            r.finishedAt = now
            lastFinishedAt = now
        }
        receivers[s.receiverID] = r
    }

    /// Loss that follows the rate (`OverloadLoss`), from one receiver's report. The first
    /// interval wholly after a cut its loss caused tests that cut: when the loss stayed at the
    /// lower rate `OverloadLoss.pathTests` times in a row, it is the path's and this receiver's
    /// loss cuts no more. Otherwise an interval with a share missing that only overload explains
    /// cuts to the receiver's pace — not one that began before the last such cut (its loss is
    /// that cut's), nor a receiver's first (it spans the receiver's own start).
    /// - Parameter overload: This report's interval is overload by `OverloadLoss.isOverload`.
    func overloadReported(_ r: inout ReceiverRecord, overload: Bool, now: UInt64) {
        guard r.state == .receiving, !r.lossIsPath, r.statusAt != 0 else { return }
        if let cutAt = r.lossCutAt {
            guard r.statusAt > cutAt else { return }
            r.lossCutAt = nil
            if overload, r.recentLoss >= OverloadLoss.pathShare * r.lossAtCut {
                r.lossTestsFailed += 1
                if r.lossTestsFailed >= OverloadLoss.pathTests {
                    r.lossIsPath = true
                    counters.pathLossReceivers += 1
                    return
                }
            } else {
                r.lossTestsFailed = 0
            }
        }
        if overload, pressure(from: r.id, now: now, loss: r.recentLoss) {
            counters.lossBackoffs += 1
            r.lossCutAt = now
            r.lossAtCut = r.recentLoss
        }
    }

    /// A receiver reports trouble keeping up: hold the rate for this window and, with `cut`,
    /// back off — as long as that receiver has back-offs left in its budget. One that keeps
    /// reporting trouble is discounted after `ReceiverBudget.backoffBurst` cuts, so a liar (or a
    /// receiver that can never keep up, which the loss and straggler rules drop) cannot pin
    /// the session's rate. The last receiver still receiving is not held to its budget: its
    /// rate is nobody else's (`scripts/e2e`: a discounted TCG VM got repair at 30 MB/s and took
    /// 2). Returns whether the rate was cut.
    /// - Parameter loss: The share of datagrams it missed, when that (not its queue) is the trouble.
    func pressure(from id: UInt32, now: UInt64, cut: Bool = true, loss: Double? = nil) -> Bool {
        var budget = refilledBudget(id, now: now)
        defer { budgets[id] = budget }
        let alone = activeReceivers <= 1 && receivers[id]?.state == .receiving
        guard alone || budget.mayPressure else {
            counters.pressureDiscounted += 1
            return false
        }
        guard cut else {
            _ = rateControl.pressure(cut: false, achieved: sendRateEstimate, now: now)
            budget.spend(backoffs: ReceiverBudget.holdCost)
            return false
        }
        let didCut =
            if let loss {
                rateControl.overloaded(loss: loss, achieved: sendRateEstimate, now: now)
            } else {
                rateControl.pressure(cut: true, achieved: sendRateEstimate, now: now)
            }
        guard didCut else { return false }
        counters.rateDecreases += 1
        budget.spend(backoffs: 1)
        return true
    }

    /// Records that receiver `id` spoke. Returns false (and the message is to be ignored) when
    /// the id is unknown to a closed session, or the table is full: receiver ids come off the
    /// wire, so their number must be bounded.
    /// - Parameter admit: The id comes from the mailbox (a member the daemon admitted).
    func noteReceiver(_ id: UInt32, now: UInt64, admit: Bool = false) -> Bool {
        if receivers[id] == nil {
            guard admit || !configuration.closedMembership else {
                counters.drops.count(.unknownReceiver)
                return false
            }
            guard receivers.count < configuration.maxReceivers else {
                counters.drops.count(.bufferLimit)
                return false
            }
            receivers[id] = ReceiverRecord(id: id, firstSeen: now)
        }
        receivers[id]?.lastSeen = now
        return true
    }

    // MARK: - Announce, FIN, end of session

    func sendControl(_ type: PacketType, flags: PacketFlags = [], body: (UnsafeMutableRawPointer, Int) -> Int)
        throws(TransportError)
    {
        let datagram = control.build(
            header(type, block: 0, symbol: 0, flags: flags), authenticator: authenticator, body: body)
        counters.datagramsSent += 1
        counters.wireBytes += UInt64(datagram.count)
        if loss.drop() { return }
        try channel.sendOne(datagram)
    }

    func sendAnnounce(now: UInt64) throws(TransportError) {
        lastAnnounce = now
        counters.announces += 1
        let body = AnnounceBody(
            layout: layout, proactiveParity: Int((Double(layout.sourceSymbols) * proactiveRatio).rounded(.up)),
            digest: digest, name: configuration.name, salt: sealer?.salt)
        try sendControl(.announce) { body.encode(to: $0, capacity: $1) }
    }

    func sendFin(now: UInt64, final: Bool) throws(TransportError) {
        lastFin = now
        counters.fins += 1
        let fin = FinBody(blockCount: UInt32(layout.blockCount), pass: UInt32(counters.passes))
        try sendControl(.fin, flags: final ? .final : []) { fin.encode(to: $0, capacity: $1) }
    }

    func sendDrop(_ id: UInt32) throws(TransportError) {
        let st = StatusBody(receiverID: id, state: .dropped, blocksComplete: 0, received: 0, lost: 0)
        try sendControl(.status) { st.encode(to: $0, capacity: $1) }
    }

    /// A dropped receiver that still talks has not heard its verdict (lost): say it again,
    /// at most every 100 ms.
    func repeatDropNotice(_ id: UInt32, now: UInt64) {
        guard let r = receivers[id], r.state == .dropped, now - (r.finishedAt ?? 0) >= 100_000_000 else { return }
        receivers[id]?.finishedAt = now
        try? sendDrop(id)
    }

    func shouldFinish(now: UInt64) -> Bool {
        guard repairQueue.isEmpty else { return now - passEndedAt > configuration.maxLingerNanos }
        let active = receivers.values.filter { $0.state != .dropped }
        let finished = receivers.values.filter { $0.state != .receiving }.count
        // A finish report that nobody contradicted for a moment: see `finishConfirmNanos`.
        let confirmed = now &- lastFinishedAt >= configuration.finishConfirmNanos
        if expectedReceivers > 0, finished >= expectedReceivers, confirmed {
            // Complete, failed or dropped: nobody we wait for is still receiving.
            return receivers.values.allSatisfy { $0.state != .receiving }
        }
        let quiet = now - lastActivity
        // Everyone we know of is done: a short quiet period lets late NAKs arrive, then stop.
        if expectedReceivers == 0, !active.isEmpty, active.allSatisfy({ $0.state != .receiving }), confirmed,
            quiet > min(configuration.lingerNanos, 200_000_000)
        {
            return true
        }
        if expectedReceivers == 0, quiet > configuration.lingerNanos { return true }
        return now - passEndedAt > configuration.maxLingerNanos
    }
}
