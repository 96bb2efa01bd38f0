import Platform
import XCTest

@testable import Transport

final class IntegrityTests: XCTestCase {
    func testSHA256MatchesKnownVectors() {
        XCTAssertEqual(
            Array("abc".utf8).withUnsafeBytes { SHA256.hash($0) }.hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(
            [UInt8]().withUnsafeBytes { SHA256.hash($0) }.hex,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        // Incremental in odd pieces equals one shot.
        let data = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let h = SHA256()
        var i = 0
        while i < data.count {
            let n = min(777, data.count - i)
            data[i..<(i + n)].withUnsafeBytes { h.update($0) }
            i += n
        }
        XCTAssertEqual(h.finalize(), data.withUnsafeBytes { SHA256.hash($0) })
    }

    func testHMACTagIsRFC4231Truncated() throws {
        // RFC 4231 test case 2 uses a 4-byte key; ours needs ≥ 16, so use test case 3's shape:
        // key = 20 × 0xaa, data = 50 × 0xdd.
        let auth = try PacketAuthenticator(key: [UInt8](repeating: 0xAA, count: 20))
        let data = [UInt8](repeating: 0xDD, count: 50)
        var tag = [UInt8](repeating: 0, count: 16)
        data.withUnsafeBytes { d in tag.withUnsafeMutableBytes { auth.tag(d, into: $0.baseAddress!) } }
        XCTAssertEqual(
            tag.map { String(format: "%02x", $0) }.joined(), String("773ea91e36800e46854db8ebd09181a7".prefix(32)))
        XCTAssertThrowsError(try PacketAuthenticator(key: [1, 2, 3]))
    }

    func testDigestHexRoundTripAndRejectsGarbage() {
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        XCTAssertEqual(SHA256Digest(hex: hex)?.hex, hex)
        XCTAssertNil(SHA256Digest(hex: "xyz"))
        XCTAssertNil(SHA256Digest(hex: String(repeating: "g", count: 64)))
    }

    func testSessionKeysRoundTripThroughHexAndBadHexIsRefused() throws {
        let key = PacketAuthenticator.randomKey()
        XCTAssertEqual(try PacketAuthenticator.key(hex: PacketAuthenticator.hex(key)), key)
        XCTAssertEqual(PacketAuthenticator.hex([0x00, 0xAB, 0x0F]), "00ab0f")
        for bad in ["", "abc", String(repeating: "zz", count: 16), String(repeating: "0", count: 130)] {
            XCTAssertThrowsError(try PacketAuthenticator.key(hex: bad), bad)
        }
        XCTAssertEqual(SenderConfiguration.defaultSymbolSize(authenticated: false), 1_440)
        XCTAssertEqual(SenderConfiguration.defaultSymbolSize(authenticated: true), 1_424)
    }

    func testSealerRoundTripsAndRefusesToRepeatANonce() throws {
        let master = PacketAuthenticator.randomKey()
        let salt = PacketSealer.randomSalt()
        let seal = try PacketSealer(master: master, salt: salt)
        let open = try PacketSealer(master: master, salt: salt)
        var datagram = [UInt8](repeating: 0, count: PacketHeader.size + 300 + PacketHeader.tagSize)
        let payload = (0..<300).map { UInt8(truncatingIfNeeded: $0 * 7) }
        func sealed(sequence: UInt32) -> Bool {
            datagram.withUnsafeMutableBytes { d in
                PacketHeader(
                    type: .data, flags: .sealed, sessionID: 9, objectID: 1, payloadLength: 300, sequence: sequence
                )
                .encode(to: d.baseAddress!)
                return payload.withUnsafeBytes { p in
                    seal.seal(
                        header: d.baseAddress!, payload: p, into: d.baseAddress! + PacketHeader.size,
                        tag: d.baseAddress! + PacketHeader.size + 300)
                }
            }
        }
        XCTAssertTrue(sealed(sequence: UInt32.max - 1))
        XCTAssertNotEqual(Array(datagram[PacketHeader.size..<(PacketHeader.size + 300)]), payload)
        var plain = [UInt8](repeating: 0, count: PacketHeader.maxPayload)
        let n = datagram.withUnsafeBytes { d in plain.withUnsafeMutableBytes { open.open(d, into: $0.baseAddress!) } }
        XCTAssertEqual(n, 300)
        XCTAssertEqual(Array(plain[0..<300]), payload)
        // The sequence may wrap past 2^32 - 1 (it counts from the first sealed), never come round.
        XCTAssertTrue(sealed(sequence: UInt32.max))
        XCTAssertTrue(sealed(sequence: 0))
        XCTAssertTrue(sealed(sequence: 5))
        XCTAssertFalse(sealed(sequence: 5), "the same sequence again would reuse a nonce")
        XCTAssertTrue(seal.exhausted)
        XCTAssertFalse(sealed(sequence: 6), "and once used up the key stays used up")
        // A short or truncated datagram never opens.
        let short = datagram.withUnsafeBytes { d in
            plain.withUnsafeMutableBytes {
                open.open(UnsafeRawBufferPointer(rebasing: d[0..<40]), into: $0.baseAddress!)
            }
        }
        XCTAssertNil(short)
        XCTAssertThrowsError(try PacketSealer(master: master, salt: [1, 2, 3]))
        XCTAssertNotEqual(PacketSealer.controlKey(master: master), master)
    }
}
