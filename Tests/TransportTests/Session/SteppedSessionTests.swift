import XCTest

@testable import Transport

/// A real `Sender` and a real `Receiver` in one process, joined by an in-memory wire and stepped
/// on a clock of the test's own (`Sender.turn(now:)`, `Receiver.tick(now:)`): the whole protocol —
/// pass, NAKs, repair, STATUS, FIN, the end — deterministic and without sockets or sleeps.
final class SteppedSessionTests: XCTestCase {
    /// Datagrams in flight each way.
    final class Wire {
        var toReceiver: [[UInt8]] = []
        var toSender: [[UInt8]] = []
    }

    /// The sender's side: batches are cut into datagrams exactly as the socket's iovecs lay them out.
    final class SenderEnd: DatagramChannel {
        let wire: Wire
        init(_ wire: Wire) { self.wire = wire }
        func send(_ batch: OutgoingBatch) throws(TransportError) {
            for i in 0..<batch.count {
                let slot = batch.slots + i * OutgoingBatch.slotSize
                var d = Array(UnsafeRawBufferPointer(start: slot, count: PacketHeader.size))
                if batch.payloadLengths[i] > 0 {
                    d += UnsafeRawBufferPointer(start: batch.payloads[i], count: batch.payloadLengths[i])
                }
                if batch.tagged[i] {
                    d += UnsafeRawBufferPointer(start: slot + PacketHeader.size, count: PacketHeader.tagSize)
                }
                wire.toReceiver.append(d)
            }
        }
        func sendOne(_ bytes: UnsafeRawBufferPointer) throws(TransportError) { wire.toReceiver.append(Array(bytes)) }
        func receive(_ handler: (UnsafeRawBufferPointer) -> Void) throws(TransportError) -> Int {
            let waiting = wire.toSender
            wire.toSender = []
            for d in waiting { d.withUnsafeBytes(handler) }
            return waiting.count
        }
        func waitReadable(timeoutNanos: UInt64) throws(TransportError) -> Bool { !wire.toSender.isEmpty }
        var overruns: UInt64 { 0 }
        var receiveQueuePercent: Int { 0 }
    }

    /// The receiver's side: what it sends goes to the sender.
    final class ReceiverEnd: DatagramChannel {
        let wire: Wire
        init(_ wire: Wire) { self.wire = wire }
        func send(_ batch: OutgoingBatch) throws(TransportError) {}
        func sendOne(_ bytes: UnsafeRawBufferPointer) throws(TransportError) { wire.toSender.append(Array(bytes)) }
        func receive(_ handler: (UnsafeRawBufferPointer) -> Void) throws(TransportError) -> Int { 0 }
        func waitReadable(timeoutNanos: UInt64) throws(TransportError) -> Bool { false }
        var overruns: UInt64 { 0 }
        var receiveQueuePercent: Int { 0 }
    }

    struct Outcome {
        var report: SenderReport
        var seconds: Double
        var delivered: Bool
        var receiver: ReceiverCounters
    }

    /// The fixture's object in a buffer of its own (as a file mapping would be), and a sender
    /// configuration for its layout (256-byte symbols, k = 12).
    static func sending(_ f: SessionFixture) -> (UnsafeMutableRawBufferPointer, SenderConfiguration) {
        let object = UnsafeMutableRawBufferPointer.allocate(byteCount: f.object.count, alignment: 64)
        f.object.withUnsafeBytes { object.copyMemory(from: $0) }
        var c = SenderConfiguration(sessionID: f.sessionID)
        c.objectID = f.objectID
        c.symbolSize = 256
        c.sourceSymbols = 12
        return (object, c)
    }

    /// Runs one session to its end; `drop(n, datagram)` says whether the wire loses the n-th
    /// datagram to the receiver.
    func session(
        key: [UInt8]? = nil, encrypt: Bool = false, drop: (Int, [UInt8]) -> Bool = { _, _ in false }
    ) throws -> Outcome {
        let f = try SessionFixture(size: 60_000, symbolSize: 256, k: 12, parityPerBlock: 0)
        let wire = Wire()
        let (object, layout) = Self.sending(f)
        var c = layout
        defer { object.deallocate() }
        var now: UInt64 = 5_000_000_000
        c.expectedReceivers = 1
        c.authenticationKey = key
        c.encrypt = encrypt
        let sender = try Sender(
            object: UnsafeRawBufferPointer(object), digest: f.digest, channel: SenderEnd(wire), configuration: c,
            clock: { now })
        let (receiver, dest) = try f.receiver(channel: ReceiverEnd(wire)) {
            $0.authenticationKey = key
            $0.encrypted = encrypt
        }
        let start = now
        try sender.begin(now: now)
        var delivered = 0
        var finished = false
        for _ in 0..<200_000 {
            let turn = try sender.turn(now: now)
            for d in wire.toReceiver {
                delivered += 1
                if !drop(delivered, d) { receiver.feed(d, at: now) }
            }
            wire.toReceiver = []
            let wasFinished = receiver.isFinished
            try receiver.tick(now: now)
            if !wasFinished, receiver.isFinished { try receiver.reportEnd(now: now) }
            switch turn {
            case .finished: finished = true
            case .sent: now += 20_000
            case .wait(let nanos): now += min(nanos, 1_000_000)
            }
            if finished { break }
        }
        XCTAssertTrue(finished, "the session ended within the step bound")
        let report = try sender.finish(now: now)
        return Outcome(
            report: report, seconds: Double(now - start) / 1e9,
            delivered: receiver.state == .complete(f.digest) && dest.bytes(f.object.count) == f.object,
            receiver: receiver.counters)
    }

    func testASteppedSessionDeliversTheExactObjectAndEnds() throws {
        let o = try session()
        XCTAssertTrue(o.delivered)
        XCTAssertNil(o.report.abortReason)
        XCTAssertEqual(o.report.counters.repairSymbols, 0, "nothing was lost")
        XCTAssertEqual(o.report.receivers.values.first?.state, .complete)
        XCTAssertLessThan(
            o.seconds, 5, "ends soon after the receiver reports complete (\(o.seconds) s on the test's clock)")
    }

    func testLossOnTheWireIsRepairedByNaks() throws {
        // Every 9th datagram to the receiver is lost: a ninth of the pass, some repairs too.
        let o = try session { n, _ in n % 9 == 0 }
        XCTAssertTrue(o.delivered)
        XCTAssertGreaterThan(o.receiver.naksSent, 0)
        XCTAssertGreaterThan(o.report.counters.repairSymbols, 0)
        XCTAssertEqual(o.report.receivers.values.first?.state, .complete)
    }

    func testAnEncryptedSessionWithLossDeliversAndNothingClearIsOnTheWire() throws {
        let key = PacketAuthenticator.randomKey()
        let f = try SessionFixture(size: 60_000, symbolSize: 256, k: 12, parityPerBlock: 0)
        var symbolsSeen = 0
        var clearSymbols = 0
        let o = try session(key: key, encrypt: true) { n, d in
            d.withUnsafeBytes { raw in
                guard case .success(let h) = PacketHeader.decode(raw), h.type == .data else { return }
                symbolsSeen += 1
                XCTAssertTrue(h.flags.contains(.sealed))
                let start = f.layout.offset(ofBlock: Int(h.block)) + Int(h.symbol) * 256
                let clear = Array(f.object[start..<(start + Int(h.payloadLength))])
                if Array(raw[PacketHeader.size..<(PacketHeader.size + Int(h.payloadLength))]) == clear {
                    clearSymbols += 1
                }
            }
            return n % 11 == 0
        }
        XCTAssertTrue(o.delivered)
        XCTAssertGreaterThan(o.report.counters.repairSymbols, 0)
        XCTAssertGreaterThan(symbolsSeen, 0)
        XCTAssertEqual(clearSymbols, 0, "no symbol crossed the wire in the clear")
        XCTAssertEqual(o.receiver.drops[.authenticationFailed], 0)
    }

    /// Two members of a daemon's session (closed membership): `early` hears the pass from its
    /// start; `late` joins when the pass is `joinAt` blocks in, announced with `.joinLate`.
    func lateJoinSession(joinAt: Int, maxPasses: Int = 3) throws -> (
        report: SenderReport, early: Receiver, late: Receiver, delivered: (Bool, Bool), blocks: Int, joinedAt: Int
    ) {
        let f = try SessionFixture(size: 60_000, symbolSize: 256, k: 12, parityPerBlock: 0)
        let wire = Wire()
        let (object, layout) = Self.sending(f)
        var c = layout
        defer { object.deallocate() }
        var now: UInt64 = 5_000_000_000
        c.closedMembership = true
        c.maxPasses = maxPasses
        // 1 MB/s: the pass takes 60 ms, longer than a late member waits for its first ANNOUNCE.
        c.rate = Rate(bytesPerSecond: 1_000_000)
        c.adaptiveRate = false
        let sender = try Sender(
            object: UnsafeRawBufferPointer(object), digest: f.digest, channel: SenderEnd(wire), configuration: c,
            clock: { now })
        let (early, earlyDest) = try f.receiver(channel: ReceiverEnd(wire)) { $0.receiverID = 1 }
        let (late, lateDest) = try f.receiver(channel: ReceiverEnd(wire)) { $0.receiverID = 2 }
        sender.mailbox.post(.expectReceiver(1))
        try sender.begin(now: now)
        var joined = false
        var joinedAt = 0
        var finished = false
        for _ in 0..<200_000 {
            if !joined, sender.passPosition >= joinAt {
                joined = true
                joinedAt = sender.passPosition
                sender.mailbox.post(.joinLate(2))
            }
            let turn = try sender.turn(now: now)
            for d in wire.toReceiver {
                early.feed(d, at: now)
                // The late member hears the group only once it joined (ANNOUNCEs repeat).
                if joined { late.feed(d, at: now) }
            }
            wire.toReceiver = []
            for r in [early, late] where !r.isFinished || r === late && !joined {
                try r.tick(now: now)
                if r.isFinished { try r.reportEnd(now: now) }
            }
            switch turn {
            case .finished: finished = true
            case .sent: now += 20_000
            case .wait(let nanos): now += min(nanos, 1_000_000)
            }
            if finished { break }
        }
        XCTAssertTrue(finished, "the session ended within the step bound")
        XCTAssertTrue(joined)
        let report = try sender.finish(now: now)
        func delivered(_ r: Receiver, _ d: SessionFixture.Destination) -> Bool {
            r.state == .complete(f.digest) && d.bytes(f.object.count) == f.object
        }
        return (
            report, early, late, (delivered(early, earlyDest), delivered(late, lateDest)), f.layout.blockCount,
            joinedAt
        )
    }

    func testAMemberThatJoinsLateGetsAnotherTurnOfThePassAndNaksNothing() throws {
        let o = try lateJoinSession(joinAt: 10)
        XCTAssertEqual(o.delivered.0, true)
        XCTAssertEqual(o.delivered.1, true, "the late member got the whole object")
        let c = o.report.counters
        XCTAssertEqual(c.passes, 2, "the pass went round the object once more")
        XCTAssertEqual(c.passExtensions, 1)
        XCTAssertEqual(c.lateJoinsBeyondPasses, 0)
        // From where it joined once round the object, and the join margin (≤ one more turn).
        XCTAssertGreaterThanOrEqual(c.carouselBlocks, UInt64(o.joinedAt))
        XCTAssertLessThanOrEqual(c.carouselBlocks, UInt64(o.joinedAt + o.blocks))
        XCTAssertEqual(o.late.counters.naksSent, 0, "what it missed came round again: nothing to NAK")
        XCTAssertEqual(o.early.counters.naksSent, 0)
        XCTAssertEqual(c.repairSymbols, 0)
        XCTAssertEqual(o.report.receivers[2]?.state, .complete)
    }

    func testALateJoinPastTheTurnBoundIsRepairedOnceThePassEnds() throws {
        // One turn only: the late member NAKs the blocks before its join after the FIN.
        let o = try lateJoinSession(joinAt: 10, maxPasses: 1)
        XCTAssertEqual(o.delivered.1, true)
        let c = o.report.counters
        XCTAssertEqual(c.passes, 1)
        XCTAssertEqual(c.lateJoinsBeyondPasses, 1)
        XCTAssertEqual(c.carouselBlocks, 0)
        XCTAssertGreaterThan(o.late.counters.naksSent, 0)
        XCTAssertGreaterThanOrEqual(c.repairSymbols, 10 * 12, "the ten blocks it missed came as repair")
    }
}
