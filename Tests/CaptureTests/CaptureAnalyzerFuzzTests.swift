import Transport
import XCTest

@testable import Capture

/// The analyzer reads whatever was on the wire or in a file: frames cut anywhere, datagrams
/// forged with any session id, timestamps that go backwards, jump by years or are not numbers.
/// None of it may trap or grow the analysis without bound.
final class CaptureAnalyzerFuzzTests: XCTestCase {
    /// An Ethernet + IPv4 + UDP frame around `payload`.
    private func frame(_ payload: [UInt8]) -> [UInt8] {
        var f = [UInt8](repeating: 0, count: 14)
        f[12] = 0x08
        let total = 20 + 8 + payload.count
        f += [
            0x45, 0, UInt8(total >> 8 & 0xFF), UInt8(total & 0xFF), 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 11, 239, 255,
            1, 1,
        ]
        let udp = 8 + payload.count
        f += [0x75, 0x30, 0x75, 0x30, UInt8(udp >> 8 & 0xFF), UInt8(udp & 0xFF), 0, 0]
        return f + payload
    }

    private func datagram(_ type: PacketType, session: UInt32, body: [UInt8], block: UInt32 = 0) -> [UInt8] {
        let h = PacketHeader(
            type: type, sessionID: session, objectID: 1, block: block, payloadLength: UInt16(body.count))
        var out = [UInt8](repeating: 0, count: PacketHeader.size)
        out.withUnsafeMutableBytes { h.encode(to: $0.baseAddress!) }
        return out + body
    }

    func testFiftyThousandHostileFramesAndTimestampsNeitherTrapNorGrowWithoutBound() {
        var rng = SplitMix64(seed: 0xCA97)
        let analyzer = CaptureAnalyzer()
        let stamps: [Double] = [0, -1e9, 1e300, -.infinity, .infinity, .nan, 1e18, 5, 21_599.9, 21_600, 3]
        var nakBody: [UInt8] = []
        do {
            var buf = [UInt8](repeating: 0, count: 2_048)
            let entries = (0..<300).map { NakEntry(block: UInt32($0 * 7_919), needed: 3) }
            let n = buf.withUnsafeMutableBytes {
                NakBody(receiverID: 1, echoTimestamp: 0, entries: entries).encode(
                    to: $0.baseAddress!, capacity: $0.count)
            }
            nakBody = Array(buf[0..<n])
        }
        let total = 50_000
        for i in 0..<total {
            let session = rng.next() % 3 == 0 ? UInt32(truncatingIfNeeded: rng.next()) : 7
            var payload: [UInt8]
            switch rng.next() % 4 {
            case 0:
                payload = datagram(.data, session: session, body: [UInt8](repeating: 1, count: Int(rng.next() % 1_400)))
            case 1: payload = datagram(.nak, session: session, body: nakBody)
            case 2:
                // Two datagrams behind one UDP header (GSO), the second's length a lie.
                payload =
                    datagram(.parity, session: session, body: [1, 2, 3]) + datagram(.data, session: session, body: [9])
                payload[PacketHeader.size + 3 + 22] = 0xFF
            default: payload = (0..<Int(rng.next() % 200)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            }
            var bytes = frame(payload)
            // Cut anywhere.
            if rng.next() % 5 == 0 { bytes = Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count + 1)))) }
            let seconds = rng.next() % 4 == 0 ? stamps[Int(rng.next() % UInt64(stamps.count))] : Double(i) / 1_000
            bytes.withUnsafeBytes { raw in
                analyzer.add(
                    PcapSource.Packet(seconds: seconds, wireLength: raw.count, bytes: raw), linkType: Frame.ethernet)
            }
        }
        let a = analyzer.result
        XCTAssertEqual(a.packets, total)
        XCTAssertGreaterThan(a.malformed["timestamp-backwards"] ?? 0, 0)
        XCTAssertGreaterThan(a.malformed["timestamp-jump"] ?? 0, 0)
        XCTAssertGreaterThan(a.malformed["bad-timestamp"] ?? 0, 0)
        XCTAssertLessThanOrEqual(a.sessions.count, CaptureAnalyzer.maxSessions)
        XCTAssertGreaterThan(a.malformed["too-many-sessions"] ?? 0, 0, "forged session ids hit the bound")
        for s in a.sessions {
            XCTAssertLessThanOrEqual(s.rateOverTime.count, CaptureAnalyzer.maxSeconds)
            XCTAssertLessThanOrEqual(s.distinctNakedBlocks, CaptureAnalyzer.maxNakedBlocks)
        }
        XCTAssertGreaterThan(a.sessions.first { $0.sessionID == 7 }?.data ?? 0, 0)
    }
}
