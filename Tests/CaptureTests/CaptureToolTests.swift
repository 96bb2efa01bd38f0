import Foundation
import LabSupport
import LabTestSupport
import XCTest

/// ql-mcast-capture as an administrator meets it without a lab: argument mistakes, the live
/// view that redraws itself.
final class CaptureToolTests: XCTestCase {
    func testMistakesAreOneLine() throws {
        let both = try ReleaseTool.run("ql-mcast-capture", ["--interface", "lo", "--read", "x.pcap"], environment: [:])
        XCTAssertTrue(both.stderr.hasPrefix("Error: give exactly one of --interface and --read\n"), both.stderr)
        let follow = try ReleaseTool.run("ql-mcast-capture", ["--read", "x.pcap", "--follow"], environment: [:])
        XCTAssertTrue(follow.stderr.hasPrefix("Error: --follow needs --interface\n"), follow.stderr)
        let missing = try ReleaseTool.run("ql-mcast-capture", ["--read", "/nonexistent.pcap"], environment: [:])
        XCTAssertEqual(missing.status, 2)
        XCTAssertEqual(
            missing.stderr,
            "Error: cannot read the capture /nonexistent.pcap: /nonexistent.pcap: No such file or directory\n")
        try Requirements.root("live capture needs root")
        let filter = try ReleaseTool.run(
            "ql-mcast-capture", ["--interface", "lo", "--filter", "udp and nonsense"], environment: [:])
        XCTAssertEqual(filter.status, 1)
        XCTAssertTrue(filter.stderr.hasPrefix("Error: filter 'udp and nonsense': "), filter.stderr)
    }

    func testFollowRedrawsTheSummaryEverySecond() throws {
        try Requirements.root("live capture needs root")
        let r = try ReleaseTool.run(
            "ql-mcast-capture", ["--interface", "lo", "--follow", "--duration", "2.5"], environment: [:])
        XCTAssertEqual(r.status, 0, r.stderr)
        // Each redraw clears the screen and prints the summary; the final summary follows.
        let redraws = r.stdout.components(separatedBy: "\u{1B}[H\u{1B}[2J").count - 1
        XCTAssertGreaterThanOrEqual(redraws, 2, r.stdout)
        XCTAssertEqual(r.stdout.components(separatedBy: "packets ").count - 1, redraws + 1, r.stdout)
    }
}
