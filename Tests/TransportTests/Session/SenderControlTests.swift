import XCTest

@testable import Transport

/// The sender's control path (NAK and STATUS in) under what a hostile host on the LAN can send:
/// extreme values, storms, lies. Driven directly through `handleControl` on an explicit clock.
final class SenderControlTests: XCTestCase {
    private let ms: UInt64 = 1_000_000

    /// A sender over the fixture's object whose sends go to a recording channel.
    final class Harness {
        let fixture: SessionFixture
        let channel = RecordingChannel()
        let object: UnsafeMutableRawBufferPointer
        let sender: Sender

        init(
            size: Int = 40_000, symbolSize: Int = 256, k: Int = 12,
            configure: (inout SenderConfiguration) -> Void = { _ in }
        ) throws {
            let f = try SessionFixture(size: size, symbolSize: symbolSize, k: k, parityPerBlock: 0)
            let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 64)
            f.object.withUnsafeBytes { copy.copyMemory(from: $0) }
            fixture = f
            object = copy
            var c = SenderConfiguration(sessionID: f.sessionID)
            c.objectID = fixture.objectID
            c.symbolSize = symbolSize
            c.sourceSymbols = k
            c.finishConfirmNanos = 300_000_000
            configure(&c)
            sender = try Sender(
                object: UnsafeRawBufferPointer(copy), digest: f.digest, channel: channel, configuration: c)
        }

        deinit { object.deallocate() }

        func feed(_ d: [UInt8], at now: UInt64) { d.withUnsafeBytes { sender.handleControl($0, now: now) } }

        func status(_ s: StatusBody, at now: UInt64) {
            var buf = [UInt8](repeating: 0, count: StatusBody.size)
            let n = buf.withUnsafeMutableBytes { s.encode(to: $0.baseAddress!, capacity: $0.count) }
            feed(fixture.datagram(fixture.header(.status), body: Array(buf[0..<n])), at: now)
        }

        func nak(_ id: UInt32, _ entries: [NakEntry], echo: UInt32 = 0, at now: UInt64) {
            var buf = [UInt8](repeating: 0, count: 2_048)
            let n = buf.withUnsafeMutableBytes {
                NakBody(receiverID: id, echoTimestamp: echo, entries: entries).encode(
                    to: $0.baseAddress!, capacity: $0.count)
            }
            feed(fixture.datagram(fixture.header(.nak), body: Array(buf[0..<n])), at: now)
        }

        /// Sends the whole first pass (as `run()` would, without pacing).
        func finishPass(at now: UInt64) throws {
            while !sender.passDone { _ = try sender.fillAndSend(maxDatagrams: 64, now: now) }
        }

        /// Repair symbols sent until the queue is empty.
        func drainRepair(at now: UInt64) throws -> UInt64 {
            let before = sender.counters.repairSymbols
            while try sender.fillAndSend(maxDatagrams: 64, now: now) > 0 {}
            return sender.counters.repairSymbols - before
        }
    }

    func testMillionForgedAndMutatedControlDatagramsNeverTrapTheSender() throws {
        let total = 1_000_000
        let h = try Harness()
        let f = h.fixture
        let blocks = f.layout.blockCount
        let extremes: [UInt64] = [0, 1, 63, 64, 65, UInt64(Int64.max), UInt64.max - 1, UInt64.max]
        var rng = SplitMix64(seed: 0x5E4D)
        func statusDatagram(_ s: StatusBody) -> [UInt8] {
            var buf = [UInt8](repeating: 0, count: StatusBody.size)
            let n = buf.withUnsafeMutableBytes { s.encode(to: $0.baseAddress!, capacity: $0.count) }
            return f.datagram(f.header(.status), body: Array(buf[0..<n]))
        }
        var datagram = [UInt8](repeating: 0, count: 2_048)
        var now: UInt64 = 0
        for i in 0..<total {
            now += 10_000  // 10 µs a datagram: 10 s of session in all
            var d: [UInt8]
            switch rng.next() % 5 {
            case 0:
                // STATUS with extreme counters from a few ids (so differences are taken) and new ones.
                let id = rng.next() % 2 == 0 ? UInt32(rng.next() % 8) : UInt32(truncatingIfNeeded: rng.next())
                let state = StatusBody.State(rawValue: UInt8(rng.next() % 4))!
                d = statusDatagram(
                    StatusBody(
                        receiverID: id, state: state, blocksComplete: UInt32(truncatingIfNeeded: rng.next()),
                        received: extremes[Int(rng.next() % 8)] &+ rng.next() % 3,
                        lost: extremes[Int(rng.next() % 8)] &- rng.next() % 3,
                        overruns: extremes[Int(rng.next() % 8)], queueFill: UInt8(rng.next() % 101)))
            case 1:
                // NAKs of any size for real and out-of-range blocks, any need.
                let n = Int(rng.next() % 40)
                let entries = (0..<n).map { _ in
                    NakEntry(
                        block: rng.next() % 8 == 0
                            ? UInt32(truncatingIfNeeded: rng.next()) : UInt32(rng.next() % UInt64(blocks)),
                        needed: UInt16(1 + rng.next() % 255))
                }
                var buf = [UInt8](repeating: 0, count: 2_048)
                let len = buf.withUnsafeMutableBytes {
                    NakBody(
                        receiverID: UInt32(rng.next() % 16), echoTimestamp: UInt32(truncatingIfNeeded: rng.next()),
                        entries: entries
                    )
                    .encode(to: $0.baseAddress!, capacity: $0.count)
                }
                d = f.datagram(f.header(.nak), body: Array(buf[0..<len]))
            case 2:
                // Pure noise behind a valid magic and version.
                let len = Int(rng.next() % 300)
                d = (0..<len).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                if len >= 5 { d.replaceSubrange(0..<5, with: [0x51, 0x4C, 0x4D, 0x43, 1]) }
            default:
                // A valid NAK or STATUS with bytes flipped, cut or extended.
                let seed =
                    rng.next() % 2 == 0
                    ? statusDatagram(
                        StatusBody(receiverID: 3, state: .receiving, blocksComplete: 1, received: 100, lost: 5))
                    : f.nak(receiver: 4, entries: [NakEntry(block: 1, needed: 3), NakEntry(block: 2, needed: 12)])
                let len = max(0, min(2_048, seed.count + Int(rng.next() % 9) - 4))
                for j in 0..<len { datagram[j] = j < seed.count ? seed[j] : UInt8(truncatingIfNeeded: rng.next()) }
                for _ in 0..<Int(rng.next() % 4) where len > 0 {
                    datagram[Int(rng.next() % UInt64(len))] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
                }
                d = Array(datagram[0..<len])
            }
            h.feed(d, at: now)
            if i % 64 == 0 { _ = try h.sender.fillAndSend(maxDatagrams: 64, now: now) }
            if i % 1_000 == 0 {
                h.sender.adapt(now: now)
                _ = h.sender.shouldFinish(now: now)
            }
        }
        let c = h.sender.counters
        XCTAssertEqual(
            c.naksReceived + c.statusReceived + c.drops.total, UInt64(total), "every datagram used or dropped once")
        for reason in [DropReason.malformedBody, .blockOutOfRange, .implausible, .badLength, .foreignSession] {
            XCTAssertGreaterThan(c.drops[reason], 0, "\(reason) exercised")
        }
        XCTAssertGreaterThan(c.nakEntriesOverBudget, 0, "a storm of NAKs meets the repair budget")
        XCTAssertGreaterThan(c.pressureDiscounted, 0, "endless queue reports are discounted")
        XCTAssertGreaterThan(c.repairSymbols, 0)
    }

    func testStatusWithExtremeCountersFromANewReceiverIsTakenWithoutTrapping() throws {
        let h = try Harness()
        h.status(StatusBody(receiverID: 77, state: .receiving, blocksComplete: 0, received: 1, lost: .max), at: ms)
        h.status(
            StatusBody(receiverID: 77, state: .receiving, blocksComplete: 0, received: .max, lost: .max), at: 2 * ms)
        h.status(StatusBody(receiverID: 77, state: .receiving, blocksComplete: 0, received: 0, lost: 0), at: 3 * ms)
        XCTAssertEqual(h.sender.counters.statusReceived, 3)
        XCTAssertEqual(h.sender.receivers[77]?.recentLoss, 0, "no difference is believed when the sum overflows")
    }

    func testNakRepeatedWhileQueuedNeverOverflowsTheRepairCount() throws {
        let h = try Harness()
        try h.finishPass(at: ms)
        // 100,000 NAKs for one block, each asking for the whole block, repair sent in between.
        var now = 2 * ms
        for i in 0..<100_000 {
            h.nak(UInt32(1 + i % 4), [NakEntry(block: 0, needed: 12)], echo: UInt32(truncatingIfNeeded: i), at: now)
            if i % 3 == 0 { _ = try h.sender.fillAndSend(maxDatagrams: 5, now: now) }
            now += 100_000
        }
        XCTAssertLessThanOrEqual(h.sender.lastRepairCount[0], 255)
        XCTAssertGreaterThan(h.sender.counters.repairRepeats, 0, "parity indices ran out and sources were repeated")
    }

    func testOneReceiverGetsOnlyItsShareOfRepair() throws {
        let h = try Harness(size: 256 * 12 * 200) { $0.rate = Rate(bytesPerSecond: 10_000_000) }
        try h.finishPass(at: ms)
        let share = h.sender.repairShare
        // Every 10 ms for 10 s, one id asks for every block in full, its echo claiming it has
        // seen no repair yet (so nothing counts as crossed).
        let everything = (0..<h.fixture.layout.blockCount).map { NakEntry(block: UInt32($0), needed: 12) }
        var now = 2 * ms
        var repaired: UInt64 = 0
        for _ in 0..<1_000 {
            for chunk in stride(from: 0, to: everything.count, by: 100) {
                h.nak(9, Array(everything[chunk..<min(chunk + 100, everything.count)]), at: now)
            }
            repaired += try h.drainRepair(at: now)
            now += 10 * ms
        }
        let bound = share.capacity + share.perSecond * 10 + 12
        XCTAssertLessThanOrEqual(Double(repaired), bound, "repair for one id stays within its share")
        XCTAssertGreaterThan(Double(repaired), share.perSecond * 5, "its share is answered")
        XCTAssertGreaterThan(h.sender.counters.nakEntriesOverBudget, 0)
        // Another receiver still gets its repair at once.
        h.nak(10, [NakEntry(block: 5, needed: 3)], at: now)
        XCTAssertGreaterThanOrEqual(try h.drainRepair(at: now), 3)
    }

    func testQueueReportsFromOneReceiverCannotPinTheRate() throws {
        let h = try Harness(size: 256 * 12 * 200) { $0.rate = .unpaced }
        var now: UInt64 = 0
        h.sender.startedAt = now
        h.sender.windowStart = now
        // A receiver that reports a full queue every 20 ms for 20 s, beside one that keeps up.
        for i in 1...1_000 {
            now = UInt64(i) * 20 * ms
            h.status(
                StatusBody(
                    receiverID: 5, state: .receiving, blocksComplete: 0, received: UInt64(i), lost: 0, queueFill: 100),
                at: now)
            if i % 10 == 0 {
                h.status(
                    StatusBody(receiverID: 6, state: .receiving, blocksComplete: 0, received: UInt64(i), lost: 0),
                    at: now)
            }
            h.sender.adapt(now: now)
        }
        let c = h.sender.counters
        XCTAssertLessThanOrEqual(
            c.queueBackoffs, UInt64(ReceiverBudget.backoffBurst + 20 * ReceiverBudget.backoffsPerSecond + 1))
        XCTAssertGreaterThan(c.pressureDiscounted, 900)
        let pinned = h.sender.currentRate
        XCTAssertTrue(pinned.isUnpaced || pinned.bytesPerSecond > 30_000_000, "the rate is not held near its floor")
        // The ceiling of those cuts is not for good: with no reports the rate climbs past it.
        let ceiling = (h.sender.rateControl as! NakRatioRateControl).ceiling
        for i in 1...100 { h.sender.adapt(now: now + UInt64(i) * 100 * ms) }
        let climbed = h.sender.currentRate
        XCTAssertTrue(climbed.isUnpaced || Double(climbed.bytesPerSecond) > ceiling * 1.5, "\(climbed)")
    }

    func testTheLastReceiverStillReceivingIsNotHeldToItsBudget() throws {
        let h = try Harness(size: 256 * 12 * 200) { $0.rate = .unpaced }
        h.sender.startedAt = 0
        h.sender.windowStart = 0
        // Alone, every growing queue it reports is a cut: its rate is nobody else's.
        for i in 1...40 {
            let now = UInt64(i) * 150 * ms
            h.status(
                StatusBody(
                    receiverID: 5, state: .receiving, blocksComplete: 0, received: UInt64(i), lost: 0,
                    queueFill: UInt8(min(10 + i, 100))),
                at: now)
            h.sender.adapt(now: now)
        }
        XCTAssertEqual(h.sender.counters.pressureDiscounted, 0)
        XCTAssertGreaterThan(h.sender.counters.queueBackoffs, UInt64(ReceiverBudget.backoffBurst) + 10)
    }

    /// Scripted reports of one receiver every `every`: `loss(rate)` is the share of datagrams it
    /// misses at the sender's rate then (1,000 datagrams sent per report).
    private func reportLoss(
        _ h: Harness, id: UInt32, reports: Int, every: UInt64, from start: UInt64, loss: (Double) -> Double
    ) -> UInt64 {
        var now = start
        var received: UInt64 = 0
        var lost: UInt64 = 0
        if h.sender.receivers[id] == nil {
            h.status(StatusBody(receiverID: id, state: .receiving, blocksComplete: 0, received: 0, lost: 0), at: now)
        } else {
            received = h.sender.receivers[id]!.received
            lost = h.sender.receivers[id]!.lost
        }
        for _ in 0..<reports {
            now += every
            let missed = UInt64(2_000 * loss(Double(h.sender.currentRate.bytesPerSecond)))
            lost += missed
            received += 2_000 - missed
            h.status(
                StatusBody(receiverID: id, state: .receiving, blocksComplete: 0, received: received, lost: lost),
                at: now)
            h.sender.adapt(now: now)
        }
        return now
    }

    func testLossOnlyOverloadExplainsCutsToTheReceiversPaceAtOnce() throws {
        let h = try Harness(size: 256 * 12 * 200) { $0.rate = .unpaced }
        h.sender.startedAt = 0
        h.sender.windowStart = 0
        let start = Double(h.sender.currentRate.bytesPerSecond)
        XCTAssertEqual(start, 100e6, "slow start begins at the initial rate")
        // A node whose NIC takes 20 MB/s and drops the rest before its socket (no queue, no overrun).
        let pace = 20e6
        let end = reportLoss(h, id: 9, reports: 1, every: 20 * ms, from: ms) { max(0, 1 - pace / $0) }
        XCTAssertEqual(h.sender.counters.lossBackoffs, 1)
        let cut = Double(h.sender.currentRate.bytesPerSecond)
        XCTAssertLessThan(cut, pace, "one cut reaches below the pace: \(cut)")
        XCTAssertGreaterThan(cut, 0.8 * pace)
        // Then it follows that pace (for as long as its back-off budget lasts: past it, the loss
        // and straggler rules decide), never far above it, and its loss is not the path's.
        var rates: [Double] = []
        var now = end
        for _ in 0..<50 {
            now = reportLoss(h, id: 9, reports: 1, every: 100 * ms, from: now) { max(0, 1 - pace / $0) }
            rates.append(Double(h.sender.currentRate.bytesPerSecond))
        }
        // At most one window of slow start (+25 %) past where the climb found its loss again.
        XCTAssertLessThan(rates.max()!, 1.4 * pace, "rates \(rates.prefix(30))")
        XCTAssertGreaterThan(rates.reduce(0, +) / Double(rates.count), 0.75 * pace, "rates \(rates.prefix(30))")
        XCTAssertEqual(h.sender.counters.pathLossReceivers, 0)
    }

    func testLossThatStaysWhenTheRateFallsIsThePathsAndCutsNoMore() throws {
        let h = try Harness(size: 256 * 12 * 200) { $0.rate = .unpaced }
        h.sender.startedAt = 0
        h.sender.windowStart = 0
        // 30 % loss whatever the rate: a cut, the next report (all of it after the cut) shows
        // the same loss; a second cut, the same again: the receiver's loss cuts no more.
        var now = reportLoss(h, id: 4, reports: 5, every: 20 * ms, from: ms) { _ in 0.3 }
        now = reportLoss(h, id: 4, reports: 5, every: 100 * ms, from: now) { _ in 0.3 }
        XCTAssertEqual(h.sender.counters.lossBackoffs, 2)
        XCTAssertEqual(h.sender.counters.pathLossReceivers, 1)
        XCTAssertTrue(h.sender.receivers[4]!.lossIsPath)
        let cut = Double(h.sender.currentRate.bytesPerSecond)
        now = reportLoss(h, id: 4, reports: 50, every: 100 * ms, from: now) { _ in 0.3 }
        XCTAssertEqual(h.sender.counters.lossBackoffs, 2)
        let climbed = h.sender.currentRate
        XCTAssertTrue(climbed.isUnpaced || Double(climbed.bytesPerSecond) > 1.2 * cut, "the rate climbs back")
        // Loss below the overload share never cuts.
        _ = reportLoss(h, id: 5, reports: 50, every: 20 * ms, from: now) { _ in 0.15 }
        XCTAssertEqual(h.sender.counters.lossBackoffs, 2)
        // A receiver's first report spans its own start: a joiner that missed most of what was
        // sent before it was ready cuts nothing.
        h.status(StatusBody(receiverID: 6, state: .receiving, blocksComplete: 0, received: 500, lost: 9_000), at: now)
        XCTAssertEqual(h.sender.counters.lossBackoffs, 2)
    }

    func testForgedCompleteDoesNotEndTheSessionUnderAReceiver() throws {
        let h = try Harness()
        h.sender.mailbox.post(.expectReceiver(21))
        h.sender.applyCommands(now: 0)
        try h.finishPass(at: ms)
        h.status(StatusBody(receiverID: 21, state: .receiving, blocksComplete: 3, received: 40, lost: 0), at: 2 * ms)
        // Someone else claims 21 is done, with counters no honest report could pass...
        h.status(StatusBody(receiverID: 21, state: .complete, blocksComplete: 14, received: .max, lost: 0), at: 3 * ms)
        XCTAssertFalse(h.sender.shouldFinish(now: 100 * ms), "a finish is confirmed before the session ends")
        // ...and 21's own next report says otherwise.
        h.status(StatusBody(receiverID: 21, state: .receiving, blocksComplete: 4, received: 60, lost: 0), at: 200 * ms)
        XCTAssertEqual(h.sender.receivers[21]?.state, .receiving)
        XCTAssertEqual(h.sender.counters.verdictsContradicted, 1)
        XCTAssertFalse(h.sender.shouldFinish(now: 2_000 * ms))
        // Its real completion ends the session once nobody contradicts it.
        h.status(
            StatusBody(receiverID: 21, state: .complete, blocksComplete: 14, received: 90, lost: 0), at: 2_100 * ms)
        XCTAssertFalse(h.sender.shouldFinish(now: 2_200 * ms))
        XCTAssertTrue(h.sender.shouldFinish(now: 2_500 * ms))
    }

    func testCompleteBeforeThePassAndUnknownIdsInAClosedSessionAreRefused() throws {
        let h = try Harness { $0.closedMembership = true }
        h.sender.mailbox.post(.expectReceiver(1))
        h.sender.applyCommands(now: 0)
        h.status(StatusBody(receiverID: 1, state: .complete, blocksComplete: 14, received: 1, lost: 0), at: ms)
        XCTAssertEqual(h.sender.counters.drops[.implausible], 1, "nobody has every block before the pass sent them")
        h.nak(2, [NakEntry(block: 0, needed: 1)], at: ms)
        h.status(StatusBody(receiverID: 3, state: .receiving, blocksComplete: 0, received: 1, lost: 0), at: ms)
        XCTAssertEqual(h.sender.counters.drops[.unknownReceiver], 2)
        XCTAssertNil(h.sender.receivers[2])
        h.nak(1, [NakEntry(block: 0, needed: 13)], at: ms)
        XCTAssertEqual(h.sender.counters.drops[.implausible], 2, "a need beyond the block's k")
        h.nak(1, [NakEntry(block: 0, needed: 2)], at: ms)
        XCTAssertEqual(h.sender.counters.naksReceived, 1)
    }

    func testCompleteWhileTheLastBlocksParityIsStillToComeIsBelieved() throws {
        let h = try Harness { $0.proactiveParity = 0.5 }
        h.sender.mailbox.post(.expectReceiver(8))
        h.sender.applyCommands(now: 0)
        // Send until the last block's sources are out and its parity is not.
        while !h.sender.lastSourcesSent { _ = try h.sender.fillAndSend(maxDatagrams: 1, now: ms) }
        XCTAssertFalse(h.sender.passDone)
        h.status(StatusBody(receiverID: 8, state: .complete, blocksComplete: 14, received: 140, lost: 0), at: 2 * ms)
        XCTAssertEqual(h.sender.receivers[8]?.state, .complete, "every source was sent: it can be complete")
        XCTAssertEqual(h.sender.counters.drops[.implausible], 0)
    }
}
