import XCTest

@testable import Transport

/// A million random and mutated datagrams through the header decoder, the body decoders and the
/// receiver state machine: nothing crashes, and every datagram is either used or dropped under
/// exactly one counted reason.
final class FuzzTests: XCTestCase {
    func testMillionRandomAndMutatedDatagramsAreAllCountedWithoutCrash() throws {
        let total = 1_000_000
        let f = try SessionFixture(size: 40_000, symbolSize: 256, k: 12, parityPerBlock: 4)
        var seeds = f.pass()
        seeds += [
            f.announce(), f.fin(), f.fin(final: true), f.nak(receiver: 5, entries: [NakEntry(block: 1, needed: 3)]),
        ]
        var buf = [UInt8](repeating: 0, count: 64)
        let sn = buf.withUnsafeMutableBytes {
            StatusBody(receiverID: 9, state: .receiving, blocksComplete: 1, received: 2, lost: 3)
                .encode(to: $0.baseAddress!, capacity: $0.count)
        }
        seeds.append(f.datagram(f.header(.status), body: Array(buf[0..<sn])))

        var rng = SplitMix64(seed: 0xF022)
        var receiver = try f.receiver().0
        var fed: UInt64 = 0
        var renewals: UInt64 = 0
        var counted: UInt64 = 0
        var reasons = [UInt64](repeating: 0, count: DropReason.allCases.count)
        func collect(_ c: ReceiverCounters) { for r in DropReason.allCases { reasons[r.rawValue] += c.drops[r] } }
        var headerRejects = 0
        var datagram = [UInt8](repeating: 0, count: 2_048)
        for i in 0..<total {
            let len: Int
            switch rng.next() % 4 {
            case 0:
                // Pure noise, random length (including empty and oversized).
                len = Int(rng.next() % 1_600)
                for j in 0..<len { datagram[j] = UInt8(truncatingIfNeeded: rng.next()) }
            case 1:
                // Noise behind a valid magic and version, so deeper checks are reached.
                len = Int(rng.next() % 600)
                for j in 0..<len { datagram[j] = UInt8(truncatingIfNeeded: rng.next()) }
                if len >= 5 { datagram.replaceSubrange(0..<5, with: [0x51, 0x4C, 0x4D, 0x43, 1]) }
            default:
                // A real datagram with a few bytes flipped, truncated or extended.
                let seed = seeds[Int(rng.next() % UInt64(seeds.count))]
                len = max(0, min(2_048, seed.count + Int(rng.next() % 9) - 4))
                for j in 0..<len { datagram[j] = j < seed.count ? seed[j] : UInt8(truncatingIfNeeded: rng.next()) }
                for _ in 0..<Int(rng.next() % 4) where len > 0 {
                    datagram[Int(rng.next() % UInt64(len))] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
                }
            }
            datagram.withUnsafeBytes { raw in
                let d = UnsafeRawBufferPointer(rebasing: raw[0..<len])
                if case .failure = PacketHeader.decode(d) { headerRejects += 1 }
                _ = AnnounceBody.decode(d)
                _ = NakBody.decode(d)
                _ = StatusBody.decode(d)
                _ = FinBody.decode(d)
                receiver.handle(d, now: UInt64(i) * 1_000)
            }
            fed += 1
            if i % 10_000 == 0 { try receiver.tick(now: UInt64(i) * 1_000) }
            if receiver.isFinished {
                // A corrupted-but-valid symbol may end a session (digest mismatch): count and renew.
                counted += receiver.counters.accepted + receiver.counters.drops.total
                XCTAssertEqual(
                    receiver.counters.accepted + receiver.counters.drops.total, receiver.counters.datagramsReceived)
                collect(receiver.counters)
                fed = 0
                receiver = try f.receiver().0
                receiver.feed(f.announce(), at: UInt64(i) * 1_000)
                fed += 1
                renewals += 1
            }
        }
        let c = receiver.counters
        XCTAssertEqual(c.datagramsReceived, fed)
        XCTAssertEqual(c.accepted + c.drops.total, c.datagramsReceived, "every datagram used or dropped once")
        XCTAssertGreaterThan(headerRejects, total / 3)
        collect(c)
        XCTAssertEqual(counted + c.datagramsReceived, UInt64(total) + renewals)
        let exercised: [DropReason] = [
            .tooShort, .badMagic, .badVersion, .badType, .badFlags, .badLength, .malformedBody, .foreignSession,
            .foreignObject, .blockOutOfRange, .symbolOutOfRange, .duplicate,
        ]
        for reason in exercised { XCTAssertGreaterThan(reasons[reason.rawValue], 0, "\(reason) exercised") }
    }
}
