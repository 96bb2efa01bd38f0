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
}
