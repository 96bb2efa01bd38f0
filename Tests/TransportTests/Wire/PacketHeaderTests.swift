import Platform
import XCTest

@testable import Transport

final class PacketHeaderTests: XCTestCase {
    let sample = PacketHeader(
        type: .parity, flags: [.repair], sessionID: 0xDEAD_BEEF, objectID: 7, block: 123_456, symbol: 70,
        payloadLength: 1400, sequence: 99, timestamp: 0x0102_0304)

    func datagram(_ h: PacketHeader, payload: Int? = nil) -> [UInt8] {
        var bytes = [UInt8](repeating: 0xAB, count: h.datagramLength)
        bytes.withUnsafeMutableBytes { h.encode(to: $0.baseAddress!) }
        if let payload { bytes = Array(bytes.prefix(PacketHeader.size + payload)) }
        return bytes
    }

    func decode(_ bytes: [UInt8]) -> Result<PacketHeader, DropReason> {
        bytes.withUnsafeBytes { PacketHeader.decode($0) }
    }

    func testRoundTripsEveryTypeAndFlag() {
        for type in PacketType.allCases {
            for flags: PacketFlags in [
                [], [.repair], [.authenticated], [.final], [.sealed], [.repair, .final, .sealed],
            ] {
                var h = sample
                h.type = type
                h.flags = flags
                XCTAssertEqual(try decode(datagram(h)).get(), h)
            }
        }
        // One tag, of one kind: HMAC and GCM together is no datagram a sender builds.
        var h = sample
        h.flags = [.authenticated, .sealed]
        XCTAssertEqual(decode(datagram(h)), .failure(.badFlags))
    }

    func testEncodesNetworkByteOrder() {
        let bytes = datagram(sample)
        XCTAssertEqual(Array(bytes[0..<4]), Array("QLMC".utf8))
        XCTAssertEqual(bytes[4], 1)
        XCTAssertEqual(bytes[5], PacketType.parity.rawValue)
        XCTAssertEqual(Array(bytes[8..<12]), [0xDE, 0xAD, 0xBE, 0xEF])
        XCTAssertEqual(Array(bytes[22..<24]), [0x05, 0x78])  // 1400
    }

    func testRejectsEveryKindOfMalformedHeader() {
        let good = datagram(sample)
        func mutated(_ f: (inout [UInt8]) -> Void) -> [UInt8] {
            var b = good
            f(&b)
            return b
        }
        let cases: [(String, [UInt8], DropReason)] = [
            ("empty", [], .tooShort),
            ("31 bytes", Array(good.prefix(31)), .tooShort),
            ("magic", mutated { $0[0] = 0x00 }, .badMagic),
            ("version 0", mutated { $0[4] = 0 }, .badVersion),
            ("version 2", mutated { $0[4] = 2 }, .badVersion),
            ("type 0", mutated { $0[5] = 0 }, .badType),
            ("type 7", mutated { $0[5] = 7 }, .badType),
            ("type 255", mutated { $0[5] = 255 }, .badType),
            ("unknown flag", mutated { $0[6] = 0x80 }, .badFlags),
            ("payload longer than datagram", Array(good.dropLast()), .badLength),
            ("datagram longer than payload", good + [0], .badLength),
            (
                "payload over jumbo",
                mutated {
                    $0[22] = 0xFF
                    $0[23] = 0xFF
                }, .badLength
            ),
            ("auth flag without tag", mutated { $0[7] |= 0x02 }, .badLength),
        ]
        for (name, bytes, reason) in cases {
            switch decode(bytes) {
            case .success: XCTFail("\(name): accepted")
            case .failure(let r): XCTAssertEqual(r, reason, name)
            }
        }
    }

    func testControlBodiesRoundTripAndRejectGarbage() throws {
        let layout = try ObjectLayout(objectSize: 1_000_003, symbolSize: 1400, sourceSymbols: 64)
        let digest = SHA256Digest(hex: String(repeating: "ab", count: 32))!
        let ann = AnnounceBody(layout: layout, proactiveParity: 4, digest: digest, name: "compute-node.img")
        var buf = [UInt8](repeating: 0, count: 2048)
        let n = buf.withUnsafeMutableBytes { ann.encode(to: $0.baseAddress!, capacity: $0.count) }
        XCTAssertEqual(
            try buf.withUnsafeBytes { AnnounceBody.decode(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }.get(), ann)
        // Every truncation of an ANNOUNCE body is refused.
        for cut in 0..<n {
            let r = buf.withUnsafeBytes { AnnounceBody.decode(UnsafeRawBufferPointer(rebasing: $0[0..<cut])) }
            XCTAssertEqual(r, .failure(.malformedBody), "cut at \(cut)")
        }

        let nak = NakBody(
            receiverID: 5, echoTimestamp: 6, entries: [.init(block: 1, needed: 3), .init(block: 9, needed: 255)])
        let nn = buf.withUnsafeMutableBytes { nak.encode(to: $0.baseAddress!, capacity: $0.count) }
        XCTAssertEqual(
            try buf.withUnsafeBytes { NakBody.decode(UnsafeRawBufferPointer(rebasing: $0[0..<nn])) }.get(), nak)
        var zeroNeed = nak
        zeroNeed.entries[1].needed = 0
        let zn = buf.withUnsafeMutableBytes { zeroNeed.encode(to: $0.baseAddress!, capacity: $0.count) }
        XCTAssertEqual(
            buf.withUnsafeBytes { NakBody.decode(UnsafeRawBufferPointer(rebasing: $0[0..<zn])) },
            .failure(.malformedBody))

        let st = StatusBody(receiverID: 1, state: .complete, blocksComplete: 10, received: 1000, lost: 3)
        let sn = buf.withUnsafeMutableBytes { st.encode(to: $0.baseAddress!, capacity: $0.count) }
        XCTAssertEqual(sn, StatusBody.size)
        XCTAssertEqual(
            try buf.withUnsafeBytes { StatusBody.decode(UnsafeRawBufferPointer(rebasing: $0[0..<sn])) }.get(), st)
        buf[4] = 9  // unknown state
        XCTAssertEqual(
            buf.withUnsafeBytes { StatusBody.decode(UnsafeRawBufferPointer(rebasing: $0[0..<sn])) },
            .failure(.malformedBody))
    }

    func testLayoutCountsBlocksAndShortTail() throws {
        let l = try ObjectLayout(objectSize: 1400 * 64 * 3 + 1401, symbolSize: 1400, sourceSymbols: 64)
        XCTAssertEqual(l.blockCount, 4)
        XCTAssertEqual(l.sourceSymbols(inBlock: 3), 2)
        XCTAssertEqual(l.payloadLength(block: 3, symbol: 1), 1)
        XCTAssertEqual(l.payloadLength(block: 3, symbol: 2), 0)
        XCTAssertThrowsError(try ObjectLayout(objectSize: 1, symbolSize: 10, sourceSymbols: 4))
        XCTAssertThrowsError(try ObjectLayout(objectSize: 1, symbolSize: 1400, sourceSymbols: 255))
    }
}
