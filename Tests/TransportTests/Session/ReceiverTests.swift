import Platform
import XCTest

@testable import Transport

final class ReceiverTests: XCTestCase {
    let ms: UInt64 = 1_000_000

    func testRebuildsObjectFromShuffledSymbolsWithLossWritingEachByteOnce() throws {
        let f = try SessionFixture(size: 200_000 + 123, parityPerBlock: 6)
        let (r, dest) = try f.receiver()
        r.feed(f.announce(), at: 1)
        var rng = SplitMix64(seed: 3)
        // Drop up to 6 symbols per block (what its parity can cover), then shuffle everything.
        var datagrams: [[UInt8]] = []
        let perBlock = f.layout.sourceSymbols + f.parityPerBlock
        let all = f.pass()
        var offset = 0
        for b in 0..<f.layout.blockCount {
            let count = f.layout.sourceSymbols(inBlock: b) + f.parityPerBlock
            let lost = Set((0..<count).shuffled(using: &rng).prefix(Int(rng.next() % 7)))
            for i in 0..<count where !lost.contains(i) { datagrams.append(all[offset + i]) }
            offset += count
        }
        _ = perBlock
        datagrams.shuffle(using: &rng)
        for d in datagrams { r.feed(d, at: 2) }
        try r.tick(now: 3)
        XCTAssertEqual(r.state, .complete(f.digest))
        XCTAssertEqual(dest.bytes(f.object.count), f.object)
        XCTAssertEqual(r.counters.copiesPerByte(objectSize: UInt64(f.object.count)), 1.0)
        XCTAssertGreaterThan(r.counters.blocksDecoded, 0)
        XCTAssertEqual(r.counters.accepted + r.counters.drops.total, r.counters.datagramsReceived)
    }

    /// The receiver's half of a placed receive (`Receiver+Placement.swift`): it predicts the
    /// pass's next places, never a filled one; a payload found at its place is taken without a
    /// copy; and the short last symbol's padding is zeroed even when a misprediction left
    /// garbage there (decoding the last block reads it).
    func testPlacedPayloadsAreTakenWhereTheyLieAndOnlyFreePlacesArePredicted() throws {
        let f = try SessionFixture(size: 5 * 16 * 512 + 3 * 512 + 100, parityPerBlock: 2)
        let channel = PlacingChannel()
        let (r, dest) = try f.receiver(channel: channel)
        XCTAssertNil(r.predictPlaces(channel), "nothing to predict before the ANNOUNCE")
        r.feed(f.announce(), at: 1)
        let l = f.layout
        let base = dest.buffer.baseAddress!
        guard let n = r.predictPlaces(channel) else { return XCTFail("no places predicted") }
        XCTAssertEqual((0..<n).map { r.places[$0] }, (0..<n).map { base + $0 * l.symbolSize })
        let last = l.blockCount - 1
        let kLast = l.sourceSymbols(inBlock: last)
        // Garbage where the short last symbol goes, as a wrong guess would leave it.
        (base + l.offset(ofBlock: last) + (kLast - 1) * l.symbolSize)
            .initializeMemory(as: UInt8.self, repeating: 0xFF, count: l.symbolSize)
        for d in f.pass() {
            d.withUnsafeBytes { raw in
                let header = UnsafeRawBufferPointer(rebasing: raw[0..<PacketHeader.size])
                let rest = UnsafeRawBufferPointer(rebasing: raw[PacketHeader.size...])
                guard case .success(let h) = PacketHeader.decode(raw) else { return XCTFail("fixture datagram") }
                // Symbol 0 of the last block is lost: its decoding reads the last symbol's padding.
                if h.type == .data, Int(h.block) == last, h.symbol == 0 { return }
                guard h.type == .data, let place = r.placeOf(header) else {
                    return r.handle(header: header, rest: rest, now: 2)
                }
                // What the socket does for a right guess: the kernel wrote the payload there.
                place.copyMemory(from: rest.baseAddress!, byteCount: rest.count)
                r.handle(header: header, rest: UnsafeRawBufferPointer(start: place, count: rest.count), now: 2)
            }
        }
        try r.tick(now: 3)
        XCTAssertEqual(r.state, .complete(f.digest))
        XCTAssertEqual(dest.bytes(f.object.count), f.object)
        XCTAssertEqual(r.counters.payloadBytesCopied, 0)
        XCTAssertEqual(r.counters.payloadBytesInPlace + r.counters.payloadBytesRebuilt, UInt64(f.object.count))
        XCTAssertEqual(r.counters.copiesPerByte(objectSize: UInt64(f.object.count)), 1.0)
        XCTAssertEqual(r.passParity, 2, "the pass's parity per block was learnt")
        XCTAssertNil(r.predictPlaces(channel), "no place is predicted once every block is complete")
    }

    func testAFilledPlaceIsNeverPredictedAndNeverNamedAsAPlace() throws {
        let f = try SessionFixture(size: 4 * 16 * 512, parityPerBlock: 0)
        let channel = PlacingChannel()
        let (r, dest) = try f.receiver(channel: channel)
        r.feed(f.announce(), at: 1)
        r.feed(f.data(block: 0, symbol: 1), at: 2)
        r.feed(f.data(block: 0, symbol: 3), at: 2)
        let base = dest.buffer.baseAddress!
        guard let n = r.predictPlaces(channel) else { return XCTFail("no places predicted") }
        // After (0, 3) the pass continues at (0, 4); symbols 1 and 3 are taken.
        XCTAssertEqual(r.places[0], base + 4 * 512)
        let predicted = Set((0..<n).compactMap { r.places[$0] })
        XCTAssertFalse(predicted.contains(base + 1 * 512) || predicted.contains(base + 3 * 512))
        f.data(block: 0, symbol: 1).withUnsafeBytes { raw in
            XCTAssertNil(r.placeOf(UnsafeRawBufferPointer(rebasing: raw[0..<PacketHeader.size])), "already taken")
        }
        f.data(block: 0, symbol: 2).withUnsafeBytes { raw in
            XCTAssertEqual(r.placeOf(UnsafeRawBufferPointer(rebasing: raw[0..<PacketHeader.size])), base + 2 * 512)
        }
        var foreign = f.data(block: 0, symbol: 2)
        foreign[11] ^= 1  // another session's symbol has no place here
        foreign.withUnsafeBytes { raw in
            XCTAssertNil(r.placeOf(UnsafeRawBufferPointer(rebasing: raw[0..<PacketHeader.size])))
        }
        let (plain, _) = try f.receiver(channel: channel) { $0.placePayloads = false }
        plain.feed(f.announce(), at: 1)
        XCTAssertNil(plain.predictPlaces(channel), "placement switched off")
    }

    func testDigestMismatchFailsTheTransfer() throws {
        let f = try SessionFixture(size: 10_000)
        let (r, _) = try f.receiver()
        r.feed(f.announce(digest: SHA256Digest(hex: String(repeating: "0", count: 64))!), at: 1)
        for d in f.pass() { r.feed(d, at: 2) }
        try r.tick(now: 3)
        guard case .failed(let e) = r.state else { return XCTFail("accepted a copy with the wrong digest") }
        XCTAssertEqual(e.code, .integrity)
        XCTAssert(e.message.contains("SHA-256 mismatch"))
    }

    func testSymbolsBeforeAnnounceAndFromOtherSessionsAreDroppedAndCounted() throws {
        let f = try SessionFixture(size: 10_000)
        let (r, _) = try f.receiver { $0.sessionID = f.sessionID }
        r.feed(f.data(block: 0, symbol: 0), at: 1)
        XCTAssertEqual(r.counters.drops[.beforeAnnounce], 1)
        var foreign = f.data(block: 0, symbol: 0)
        foreign[11] ^= 1  // session id
        r.feed(foreign, at: 1)
        XCTAssertEqual(r.counters.drops[.foreignSession], 1)
    }

    func testNaksShortBlockAfterBackoffAskingForTheNumberMissing() throws {
        let f = try SessionFixture(size: 16 * 512 * 3, parityPerBlock: 0)
        let channel = RecordingChannel()
        let (r, _) = try f.receiver(channel: channel) { $0.nakBackoffNanos = 5 * ms }
        r.feed(f.announce(), at: 0)
        for j in 0..<16 where j != 3 && j != 9 { r.feed(f.data(block: 0, symbol: j), at: ms) }
        r.feed(f.data(block: 1, symbol: 0), at: 2 * ms)  // block 0 has ended
        try r.tick(now: 2 * ms)
        XCTAssertTrue(channel.naks.isEmpty, "no NAK before the back-off")
        try r.tick(now: 8 * ms)
        XCTAssertEqual(channel.naks.last?.entries, [NakEntry(block: 0, needed: 2)])
    }

    func testOverheardNakSuppressesOwnNak() throws {
        let f = try SessionFixture(size: 16 * 512 * 3, parityPerBlock: 0)
        let channel = RecordingChannel()
        let (r, _) = try f.receiver(channel: channel) { $0.nakBackoffNanos = 5 * ms }
        r.feed(f.announce(), at: 0)
        for j in 1..<16 { r.feed(f.data(block: 0, symbol: j), at: ms) }
        r.feed(f.data(block: 1, symbol: 0), at: 2 * ms)
        r.feed(f.nak(receiver: 999, entries: [NakEntry(block: 0, needed: 4)]), at: 3 * ms)
        try r.tick(now: 8 * ms)
        XCTAssertTrue(channel.naks.isEmpty, "another receiver already asked for more than we need")
        XCTAssertEqual(r.counters.nakSuppressedByNak, 1)
        // Repair arrives (a fresh parity symbol): the block completes without our NAK.
        r.feed(f.parity(block: 0, index: 16, flags: .repair), at: 9 * ms)
        XCTAssertEqual(r.completedBlocks, 1)
    }

    /// Three blocks of 16, no proactive parity; NAK back-off 1 ms, repair wait 50 ms; announced.
    func announcedRepairReceiver() throws -> (SessionFixture, RecordingChannel, Receiver) {
        let f = try SessionFixture(size: 16 * 512 * 3, parityPerBlock: 0)
        let channel = RecordingChannel()
        let (r, _) = try f.receiver(channel: channel) {
            $0.nakBackoffNanos = ms
            $0.repairWaitNanos = 50 * ms
        }
        r.feed(f.announce(), at: 0)
        return (f, channel, r)
    }

    func testARepairRunThatLeavesTheBlockShortBringsTheNextRoundForwardOncePerNak() throws {
        let (f, channel, r) = try announcedRepairReceiver()
        for j in 0..<16 where ![3, 9, 12, 14].contains(j) { r.feed(f.data(block: 0, symbol: j), at: ms) }
        r.feed(f.data(block: 1, symbol: 0), at: 2 * ms)
        try r.tick(now: 4 * ms)
        XCTAssertEqual(channel.naks.map(\.entries), [[NakEntry(block: 0, needed: 4)]])
        // Four repair symbols were sent; two arrive and the next datagram is the pass again:
        // the run is over and the block still short, so it asks again now, not after 50 ms.
        r.feed(f.parity(block: 0, index: 16, flags: .repair), at: 10 * ms)
        r.feed(f.parity(block: 0, index: 17, flags: .repair), at: 10 * ms)
        try r.tick(now: 10 * ms + ms / 2)
        XCTAssertEqual(channel.naks.count, 1, "the run may go on")
        r.feed(f.data(block: 1, symbol: 1), at: 11 * ms)
        try r.tick(now: 13 * ms)
        XCTAssertEqual(channel.naks.last?.entries, [NakEntry(block: 0, needed: 2)])
        XCTAssertEqual(r.counters.repairRoundsBroughtForward, 1)
        // More pass datagrams before the answer bring nothing forward: no run has ended.
        for j in 2..<6 { r.feed(f.data(block: 1, symbol: j), at: 14 * ms) }
        try r.tick(now: 20 * ms)
        XCTAssertEqual(channel.naks.count, 2)
        // The answer's run ends in silence (the last thing the sender had to send), one short
        // again: a few milliseconds of quiet end it too.
        r.feed(f.parity(block: 0, index: 20, flags: .repair), at: 30 * ms)
        try r.tick(now: 32 * ms)
        XCTAssertEqual(channel.naks.count, 2)
        try r.tick(now: 36 * ms)
        try r.tick(now: 38 * ms)
        XCTAssertEqual(channel.naks.last?.entries, [NakEntry(block: 0, needed: 1)])
        XCTAssertEqual(r.counters.repairRoundsBroughtForward, 2)
        XCTAssertEqual(r.counters.maxRepairRounds, 1, "rounds brought forward do not count towards the bound")
        r.feed(f.parity(block: 0, index: 23, flags: .repair), at: 40 * ms)
        XCTAssertEqual(r.completedBlocks, 1)
    }

    func testARepairRunThatBroughtLessThanHalfIsOverloadAndBringsNothingForward() throws {
        let (f, channel, r) = try announcedRepairReceiver()
        for j in 0..<16 where ![3, 9, 12, 14].contains(j) { r.feed(f.data(block: 0, symbol: j), at: ms) }
        r.feed(f.data(block: 1, symbol: 0), at: 2 * ms)
        try r.tick(now: 4 * ms)
        // One of the four arrives: a receiver losing most of its repair waits out the repair
        // time as before instead of asking at once for more of what it cannot take.
        r.feed(f.parity(block: 0, index: 16, flags: .repair), at: 10 * ms)
        r.feed(f.data(block: 1, symbol: 1), at: 11 * ms)
        try r.tick(now: 20 * ms)
        XCTAssertEqual(channel.naks.count, 1)
        XCTAssertEqual(r.counters.repairRoundsBroughtForward, 0)
        // Its round then finds that repair came (the rule of old: no NAK), and the next asks.
        try r.tick(now: 60 * ms)
        XCTAssertEqual(channel.naks.count, 1)
        try r.tick(now: 120 * ms)
        XCTAssertEqual(channel.naks.last?.entries, [NakEntry(block: 0, needed: 3)])
    }

    func testTheNakScheduleGivesBlocksInDueOrderWhateverOrderTheyCameIn() {
        var schedule = NakSchedule()
        var rng = SplitMix64(seed: 11)
        var expected: [(due: UInt64, block: Int)] = []
        for b in 0..<2_000 {
            let due = rng.next() % 1_000
            schedule.append(b, due: due)
            expected.append((due, b))
        }
        let first = expected.map(\.due).min()!
        if first > 0 { XCTAssertNil(schedule.next(dueBy: first - 1), "nothing is due before the first") }
        var taken: [(due: UInt64, block: Int)] = []
        var now: UInt64 = 0
        while taken.count < expected.count {
            while let e = schedule.next(dueBy: now) {
                XCTAssertLessThanOrEqual(e.due, now)
                taken.append((e.due, e.block))
            }
            now += 7
        }
        XCTAssertEqual(taken.map(\.due), expected.map(\.due).sorted())
        XCTAssertEqual(Set(taken.map(\.block)), Set(0..<2_000))
    }

    func testRepairRunsOfCompleteOrUnaskedBlocksBringNothingForward() throws {
        let (f, channel, r) = try announcedRepairReceiver()
        for j in 0..<16 { r.feed(f.data(block: 0, symbol: j), at: ms) }
        // Another receiver's repair of block 0 (complete here) and of block 1 (not yet ended
        // in our pass): neither is a round of ours.
        r.feed(f.parity(block: 0, index: 16, flags: .repair), at: 2 * ms)
        r.feed(f.parity(block: 1, index: 16, flags: .repair), at: 2 * ms)
        r.feed(f.data(block: 1, symbol: 1), at: 3 * ms)
        try r.tick(now: 20 * ms)
        XCTAssertEqual(r.counters.repairRoundsBroughtForward, 0)
        XCTAssertTrue(channel.naks.isEmpty)
    }

    func testGivesUpAfterRepairBoundNamingTheBlocks() throws {
        let f = try SessionFixture(size: 16 * 512 * 4, parityPerBlock: 0)
        let channel = RecordingChannel()
        let (r, _) = try f.receiver(channel: channel) {
            $0.maxRepairRounds = 3
            $0.nakBackoffNanos = ms
            $0.repairWaitNanos = 10 * ms
        }
        r.feed(f.announce(), at: 0)
        for b in [1, 3] { for j in 0..<16 { r.feed(f.data(block: b, symbol: j), at: ms) } }
        r.feed(f.fin(), at: ms)
        var now = 2 * ms
        while !r.isFinished && now < 10_000 * ms {
            try r.tick(now: now)
            r.feed(f.fin(), at: now)  // the sender is alive but never repairs
            now += 5 * ms
        }
        guard case .failed(let e) = r.state else { return XCTFail("did not give up") }
        XCTAssertEqual(e.code, .repairExhausted)
        XCTAssert(e.message.contains("blocks 0, 2"), e.message)
        XCTAssertEqual(channel.naks.count, 3)
    }

    func testFinalFinWithMissingBlocksFailsClearly() throws {
        let f = try SessionFixture(size: 16 * 512 * 2)
        let (r, _) = try f.receiver()
        r.feed(f.announce(), at: 0)
        r.feed(f.fin(final: true), at: 1)
        try r.tick(now: 100 * ms)
        XCTAssertEqual(r.state, .receiving, "a final FIN is believed once the sender stays silent after it")
        try r.tick(now: 501 * ms)
        guard case .failed(let e) = r.state else { return XCTFail() }
        XCTAssertEqual(e.code, .repairExhausted)
        XCTAssert(e.message.contains("blocks 0–1"), e.message)
    }

    func testAuthenticatedReceiverRejectsUntaggedAndForgedDatagrams() throws {
        let key = [UInt8](repeating: 7, count: 32)
        let f = try SessionFixture(size: 16 * 512)
        let (r, dest) = try f.receiver { $0.authenticationKey = key }
        let auth = try PacketAuthenticator(key: key)
        let other = try PacketAuthenticator(key: [UInt8](repeating: 8, count: 32))
        var ann = f.announce()
        r.feed(ann, at: 0)
        XCTAssertEqual(r.counters.drops[.authenticationFailed], 1, "untagged announce refused")
        ann = f.datagram(f.header(.announce), body: Array(ann[PacketHeader.size...]), auth: auth)
        r.feed(ann, at: 0)
        XCTAssertEqual(r.state, .receiving)
        // A forged symbol with the right session id and a tag under another key.
        var forged = f.data(block: 0, symbol: 0, auth: other)
        r.feed(forged, at: 1)
        forged = f.data(block: 0, symbol: 0, auth: auth)
        forged[PacketHeader.size] ^= 0xFF  // tampered payload, original tag
        r.feed(forged, at: 1)
        XCTAssertEqual(r.counters.drops[.authenticationFailed], 3)
        for j in 0..<16 { r.feed(f.data(block: 0, symbol: j, auth: auth), at: 2) }
        try r.tick(now: 3)
        XCTAssertEqual(r.state, .complete(f.digest))
        XCTAssertEqual(dest.bytes(f.object.count), f.object)
    }

    func testEncryptedReceiverOpensSealedSymbolsAndDropsEverythingElse() throws {
        let master = [UInt8](repeating: 7, count: 32)
        let f = try SessionFixture(size: 16 * 512 + 100)
        let (r, dest) = try f.receiver {
            $0.authenticationKey = master
            $0.encrypted = true
        }
        let control = try PacketAuthenticator(key: PacketSealer.controlKey(master: master))
        let salt = PacketSealer.randomSalt()
        let sealer = try PacketSealer(master: master, salt: salt)
        let stranger = try PacketSealer(master: [UInt8](repeating: 8, count: 32), salt: salt)
        let otherSalt = try PacketSealer(master: master, salt: PacketSealer.randomSalt())
        // Before the ANNOUNCE nothing sealed can be opened.
        r.feed(f.data(block: 0, symbol: 0, sealer: sealer), at: 0)
        XCTAssertEqual(r.counters.drops[.beforeAnnounce], 1)
        // Tagged with the master key itself.
        r.feed(f.announce(salt: salt, auth: try PacketAuthenticator(key: master)), at: 0)
        r.feed(f.announce(auth: control), at: 0)  // no salt: cannot be the encrypted session
        XCTAssertEqual(r.counters.drops[.authenticationFailed], 2)
        r.feed(f.announce(salt: salt, auth: control), at: 0)
        XCTAssertEqual(r.state, .receiving)
        // Symbols in the clear, tagged, sealed by a stranger or under another salt, or tampered with.
        r.feed(f.data(block: 0, symbol: 0), at: 1)
        r.feed(f.data(block: 0, symbol: 0, auth: control), at: 1)
        r.feed(f.data(block: 0, symbol: 0, sealer: stranger), at: 1)
        r.feed(f.data(block: 0, symbol: 0, sealer: otherSalt), at: 1)
        var tampered = f.data(block: 0, symbol: 1, sealer: sealer)
        tampered[PacketHeader.size + 7] ^= 1
        r.feed(tampered, at: 1)
        tampered = f.data(block: 0, symbol: 1, sealer: sealer)
        tampered[20] ^= 1  // the header (symbol index) is covered too
        r.feed(tampered, at: 1)
        XCTAssertEqual(r.counters.drops[.authenticationFailed], 8)
        XCTAssertEqual(r.counters.accepted, 1, "only the ANNOUNCE")
        // The real thing: the wire holds no plaintext, the receiver the exact object.
        let wire = f.data(block: 0, symbol: 2, sealer: sealer)
        XCTAssertNotEqual(Array(wire[PacketHeader.size..<(PacketHeader.size + 512)]), Array(f.object[1_024..<1_536]))
        for b in 0..<f.layout.blockCount {
            for j in 0..<f.layout.sourceSymbols(inBlock: b) {
                r.feed(f.data(block: b, symbol: j, sealer: sealer), at: 2)
            }
        }
        try r.tick(now: 3)
        XCTAssertEqual(r.state, .complete(f.digest))
        XCTAssertEqual(dest.bytes(f.object.count), f.object)
    }

    // MARK: - What a hostile host on the LAN can send

    func testForgedFinalFinIsContradictedByTheSenderStillSending() throws {
        let f = try SessionFixture(size: 16 * 512 * 3, parityPerBlock: 0)
        let (r, dest) = try f.receiver()
        r.feed(f.announce(), at: 0)
        r.feed(f.fin(final: true), at: ms)  // forged: the sender is in mid-pass
        for b in 0..<3 {
            for j in 0..<16 { r.feed(f.data(block: b, symbol: j), at: UInt64(2 + b) * 100 * ms) }
            try r.tick(now: UInt64(2 + b) * 100 * ms)
        }
        try r.tick(now: 2_000 * ms)
        XCTAssertEqual(r.state, .complete(f.digest))
        XCTAssertEqual(r.counters.verdictsContradicted, 1)
        XCTAssertEqual(dest.bytes(f.object.count), f.object)
    }

    func testDroppedVerdictIsBelievedOnlyWhenTheSessionStopsServingUs() throws {
        let f = try SessionFixture(size: 16 * 512 * 4, parityPerBlock: 0)
        let (r, dest) = try f.receiver { $0.receiverID = 42 }
        r.feed(f.announce(), at: 0)
        var st = [UInt8](repeating: 0, count: StatusBody.size)
        let n = st.withUnsafeMutableBytes {
            StatusBody(receiverID: 42, state: .dropped, blocksComplete: 0, received: 0, lost: 0)
                .encode(to: $0.baseAddress!, capacity: $0.count)
        }
        let verdict = f.datagram(f.header(.status), body: Array(st[0..<n]))
        r.feed(verdict, at: ms)  // forged while the pass delivers
        for b in 0..<4 {
            for j in 0..<16 { r.feed(f.data(block: b, symbol: j), at: UInt64(b + 1) * 300 * ms) }
            try r.tick(now: UInt64(b + 1) * 300 * ms)
        }
        try r.tick(now: 1_300 * ms)
        XCTAssertEqual(r.state, .complete(f.digest), "a verdict while symbols keep coming changes nothing")
        XCTAssertEqual(dest.bytes(f.object.count), f.object)

        // A real verdict: nothing arrives for us any more, so it holds and we fall back.
        let (r2, _) = try f.receiver { $0.receiverID = 42 }
        r2.feed(f.announce(), at: 0)
        for j in 0..<16 { r2.feed(f.data(block: 0, symbol: j), at: ms) }
        r2.feed(verdict, at: 2 * ms)
        try r2.tick(now: 300 * ms)
        XCTAssertEqual(r2.state, .receiving)
        for t in stride(from: 300, through: 600, by: 20) { r2.feed(f.fin(), at: UInt64(t) * ms) }
        try r2.tick(now: 600 * ms)
        guard case .failed(let e) = r2.state else { return XCTFail("verdict not taken") }
        XCTAssertEqual(e.code, .dropped)
    }

    func testOverheardNakAskingBeyondTheBlockIsDroppedAndNeverSilencesUsTwice() throws {
        let f = try SessionFixture(size: 16 * 512 * 3, parityPerBlock: 0)
        let channel = RecordingChannel()
        let (r, _) = try f.receiver(channel: channel) {
            $0.nakBackoffNanos = 5 * ms
            $0.repairWaitNanos = 20 * ms
        }
        r.feed(f.announce(), at: 0)
        for j in 1..<16 { r.feed(f.data(block: 0, symbol: j), at: ms) }
        r.feed(f.data(block: 1, symbol: 0), at: 2 * ms)
        r.feed(f.nak(receiver: 999, entries: [NakEntry(block: 0, needed: 200)]), at: 3 * ms)
        XCTAssertEqual(r.counters.drops[.implausible], 1, "no block of 16 needs 200 symbols")
        try r.tick(now: 8 * ms)
        XCTAssertEqual(channel.naks.last?.entries, [NakEntry(block: 0, needed: 1)])

        // A plausible NAK that nobody answers suppresses us once, not again.
        var now = 10 * ms
        var ours = channel.naks.count
        for _ in 0..<20 {
            r.feed(f.nak(receiver: 998, entries: [NakEntry(block: 0, needed: 16)]), at: now)
            try r.tick(now: now)
            now += 10 * ms
        }
        XCTAssertGreaterThan(channel.naks.count, ours + 1, "we keep asking ourselves")
        XCTAssertGreaterThan(r.counters.nakSuppressionsRefused, 0)
        ours = channel.naks.count
        XCTAssertGreaterThan(ours, 2)
    }

    func testJumboSymbolsWithThousandsOfBlocksDueAtOnceSplitTheNakIntoDatagramsThatFit() throws {
        // 8,900-byte symbols, one per block: 1,500 blocks all short when a FIN arrives.
        let f = try SessionFixture(size: 8_900 * 1_500, symbolSize: 8_900, k: 1, parityPerBlock: 0)
        let channel = RecordingChannel()
        let (r, _) = try f.receiver(channel: channel) { $0.nakBackoffNanos = 0 }
        r.feed(f.announce(), at: 0)
        r.feed(f.fin(), at: ms)
        try r.tick(now: 2 * ms)
        XCTAssertEqual(r.state, .receiving)
        let naks = channel.naks
        XCTAssertEqual(naks.reduce(0) { $0 + $1.entries.count }, 1_500, "every block asked for")
        XCTAssertGreaterThan(naks.count, 1)
        for d in channel.sent { XCTAssertLessThanOrEqual(d.count, ControlDatagram.capacity) }
    }
}

/// A channel that says it places payloads (so the receiver predicts) and receives nothing.
final class PlacingChannel: DatagramChannel {
    func send(_ batch: OutgoingBatch) throws(TransportError) {}
    func sendOne(_ bytes: UnsafeRawBufferPointer) throws(TransportError) {}
    func receive(_ handler: (UnsafeRawBufferPointer) -> Void) throws(TransportError) -> Int { 0 }
    func waitReadable(timeoutNanos: UInt64) throws(TransportError) -> Bool { false }
    var overruns: UInt64 { 0 }
    var receiveQueuePercent: Int { 0 }
    var placesPayloads: Bool { true }
}
