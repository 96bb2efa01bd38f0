/// The receiver's side of repair: blocks that ended short are NAKed after a random back-off
/// unless an overheard NAK or arriving repair already covers them, and NAKed again, later each
/// time the sender leaves one unanswered, up to the configured rounds.
extension Receiver {
    /// A repair symbol for block `b` arrived.
    func noteRepair(block b: Int, now: UInt64) {
        let r = table.repair[b]
        if r.nakSentAt > r.repairSeenAt {
            // First repair since our NAK: how long the sender takes to answer (including its
            // queue and ours). Rises fast, decays slowly.
            responseNanos = (responseNanos * 7 + (now - r.nakSentAt)) / 8
        }
        table.repair[b].repairSeenAt = now
        table.repair[b].suppressed = false
        if table.repair[b].repairHeard < .max { table.repair[b].repairHeard += 1 }
        counters.repairSymbols += 1
        if droppedAt != 0, r.nakSentAt > droppedAt {
            // Repair for a NAK we sent after the verdict: the sender still serves us, so the
            // verdict was not its own.
            droppedAt = 0
            counters.verdictsContradicted += 1
        }
    }

    /// The first `upTo` blocks of the pass as this receiver heard it (from `passStart`, round
    /// the object) have had their turn: schedule NAKs for the short ones. A member that joined
    /// late does not NAK what went before it joined until the pass comes round to it again, or
    /// the pass ends (FIN).
    func endBlocks(upTo: Int, now: UInt64) {
        while table.ended < min(upTo, table.count) {
            let b = table.block(atPassPosition: table.ended)
            table.ended += 1
            if !table.blocks[b].complete { schedule(b, at: now + backoff(), now: now) }
        }
    }

    private func backoff() -> UInt64 {
        configuration.nakBackoffNanos == 0 ? 0 : rng.next() % configuration.nakBackoffNanos
    }

    private func schedule(_ b: Int, at time: UInt64, now: UInt64) {
        guard !table.repair[b].pending else { return }
        table.repair[b].pending = true
        table.repair[b].scheduledAt = now
        table.repair[b].dueAt = time
        table.repair[b].broughtForward = false
        table.repair[b].repairHeard = 0
        naks.append(b, due: time)
    }

    /// A datagram other than the next repair symbol of the block whose repair was coming: that
    /// run is over. When it left the block short, some of it was lost on the way (or the sender
    /// could not send it all), and waiting out the repair time-out — twice a response time
    /// learnt while the sender's queue was full, 100 ms and more on a shaped link — only stalls
    /// the end of the session: the block's next round is brought forward to a NAK back-off from
    /// now, once per round (so forged datagrams cannot make a receiver NAK faster than that).
    /// Only when at least half of what the block needed arrived: a receiver that loses most of
    /// its repair is overloaded (a drowning NIC), and asking again at once would only feed it
    /// more of what it cannot take; it waits as before, and the rate policy sees its loss.
    func endRepairRun(now: UInt64) {
        let b = repairRun
        guard b >= 0 else { return }
        repairRun = -1
        let r = table.repair[b]
        guard r.pending, !r.broughtForward, !table.blocks[b].complete else { return }
        guard r.asked > 0, Int(r.repairHeard) * 2 >= Int(r.asked) else { return }
        let due = now + backoff()
        guard due < r.dueAt else { return }
        table.repair[b].broughtForward = true
        // The round starts now: what was heard or seen before it is the round before.
        table.repair[b].scheduledAt = now
        table.repair[b].dueAt = due
        counters.repairRoundsBroughtForward += 1
        naks.append(b, due: due)
    }

    func handleOverheardNak(_ payload: UnsafeRawBufferPointer, now: UInt64) {
        guard let l = layout else { return counters.drops.count(.beforeAnnounce) }
        if payload.count >= 4, UInt32(bigEndian: payload.loadUnaligned(as: UInt32.self)) == configuration.receiverID {
            return counters.drops.count(.notForThisRole)  // our own NAK looped back
        }
        if case .failure(let reason) = NakBody.validate(payload, against: l) { return counters.drops.count(reason) }
        _ = NakBody.forEachEntry(payload) { e in
            let b = Int(e.block)
            if table.repair[b].heardAt < table.repair[b].scheduledAt { table.repair[b].heardNeed = 0 }
            table.repair[b].heardNeed = max(table.repair[b].heardNeed, e.needed)
            table.repair[b].heardAt = now
        }
        counters.naksHeard += 1
        counters.accepted += 1
    }

    /// How long to wait for repair of block `b` before checking it again: twice the observed
    /// NAK-to-repair response time (at least the configured wait); doubled for every NAK in a
    /// row that got no repair at all (the sender is backlogged or the NAK was lost), but not
    /// when repair came and some of it was lost — then the next round should follow quickly.
    private func repairWait(block b: Int) -> UInt64 {
        let base = min(configuration.maxRepairWaitNanos / 2, max(configuration.repairWaitNanos, 2 * responseNanos))
        return min(configuration.maxRepairWaitNanos, base << UInt64(min(Int(table.repair[b].unanswered), 5)))
    }

    func processNaks(now: UInt64) throws(TransportError) {
        let l = layout!
        // Entries per NAK: what fits a datagram of the path (a symbol's size) and our buffer.
        let capacity = NakBody.capacity(payload: min(l.symbolSize, ControlDatagram.bodyCapacity))
        // Once one round is due, rounds due within a quarter of the back-off join its NAK: every
        // receiver on the group reads every NAK, so fewer and fuller datagrams matter with
        // hundreds of nodes (the schedule is exact; it used to batch by being only roughly sorted).
        var horizon = now
        while let entry = naks.next(dueBy: horizon) {
            let b = entry.block
            // An entry replaced by an earlier one (`endRepairRun`) is stale.
            guard table.repair[b].pending, table.repair[b].dueAt == entry.due else { continue }
            horizon = now + configuration.nakBackoffNanos / 4
            table.repair[b].pending = false
            if table.blocks[b].complete { continue }
            let need = UInt16(l.sourceSymbols(inBlock: b) - Int(table.blocks[b].have))
            var r = table.repair[b]
            let since = r.scheduledAt
            // A round brought forward follows repair that came: the sender serves us, and the
            // bound on rounds is for a sender that does not (else a receiver losing most of what
            // reaches it would give up itself before the sender's verdict on it).
            if !r.broughtForward { r.rounds = r.rounds == .max ? .max : r.rounds + 1 }
            counters.maxRepairRounds = max(counters.maxRepairRounds, UInt64(r.rounds))
            if Int(r.rounds) > configuration.maxRepairRounds {
                table.repair[b] = r
                state = .failed(
                    TransportError(
                        .repairExhausted,
                        "gave up after \(configuration.maxRepairRounds) repair rounds; missing "
                            + "\(missingBlocksDescription()); use the unicast fallback"))
                return
            }
            // A NAK of ours that saw no repair since is unanswered; any repair resets the count.
            let unanswered = r.nakSentAt >= since && r.repairSeenAt < since
            r.unanswered = unanswered ? (r.unanswered == .max ? .max : r.unanswered + 1) : 0
            r.asked = need
            let covered = r.heardAt >= since && r.heardNeed >= need
            var ask = false
            if covered, !r.suppressed {
                counters.nakSuppressedByNak += 1
                r.suppressed = true
            } else if r.repairSeenAt >= since {
                counters.nakSuppressedByRepair += 1
            } else {
                // A NAK we held back for another's saw no repair: ask ourselves this time.
                if r.suppressed, covered { counters.nakSuppressionsRefused += 1 }
                r.suppressed = false
                r.nakSentAt = now
                ask = true
            }
            table.repair[b] = r
            if ask {
                nakEntries.append(NakEntry(block: UInt32(b), needed: need))
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
}
