import XCTest

@testable import Transport

final class PrometheusTextTests: XCTestCase {
    func snapshot(_ id: UInt32, sent: UInt64) -> SenderProgress {
        var counters = SenderCounters()
        counters.datagramsSent = sent
        return SenderProgress(
            sessionID: id, name: "img\"\(id)", objectSize: 1, digest: .zero, blocks: 4, passBlocks: 2,
            pendingRepairBlocks: 0,
            rate: .unpaced, proactiveParity: 0, elapsedSeconds: 1, counters: counters, receivers: [])
    }

    func testSeveralSessionsShareOneHeaderPerMetricFamily() {
        let text = PrometheusText.render([snapshot(1, sent: 10), snapshot(2, sent: 20)])
        XCTAssertEqual(
            text.components(separatedBy: "# TYPE qlmcast_sender_datagrams_sent_total counter\n").count - 1, 1)
        XCTAssertTrue(
            text.contains("qlmcast_sender_datagrams_sent_total{session=\"1\",object=\"img\\\"1\"} 10\n"), text)
        XCTAssertTrue(
            text.contains("qlmcast_sender_datagrams_sent_total{session=\"2\",object=\"img\\\"2\"} 20\n"), text)
        // Every family's samples follow its header, before the next family starts.
        var seen = Set<String>()
        var current = ""
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                current = String(line.split(separator: " ")[2])
                XCTAssertTrue(seen.insert(current).inserted, "family \(current) declared twice")
            } else if !line.hasPrefix("#") {
                XCTAssertTrue(line.hasPrefix(current + "{"), "\(line) is not in family \(current)")
            }
        }
    }
}
