import Foundation
import LabSupport
import LabTestSupport
import XCTest

/// A host on the boot LAN that is not a node (`scripts/hostile-host`) attacks a real session of
/// ql-mcastd and its control port while nodes boot. Every node must still get the exact image by
/// multicast, the daemon must live on, and the counters must show what it refused.
final class HostileHostLabTests: XCTestCase {
    var lab: ImageLab?
    override func tearDown() { lab?.tearDown() }

    private var script: String { LabHarness.repositoryRoot.appendingPathComponent("scripts/hostile-host").path }

    /// The attacker's JSON summary (its last line of output).
    private func summary(_ l: ImageLab, _ log: String) throws -> [String: Any] {
        let text = l.harness.log(log)
        guard let line = text.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
            let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        else { throw LabError("no summary from the hostile host: \(text)") }
        return obj
    }

    /// The group of the session in its grouping window, once it exists (bounded wait).
    private func waitForRunningGroupOrWindow(_ l: ImageLab) throws -> String {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let open = try l.sessions().first { ($0["state"] as? String) != "finished" }
            if let group = open?["group"] as? String { return group }
            usleep(50_000)
        }
        throw LabError("no session appeared: \(try l.sessions())")
    }

    func testForgedStatusNaksVerdictsAndFinalFinsCostTheNodesNoFallback() throws {
        let l = try ImageLab(nodes: 4)
        lab = l
        let hostile = 4
        let sha = try l.addImage("compute", size: 64 << 20)
        try l.startDaemon(["--window", "2", "--rate", "300m"])
        // A wave without the attacker first: what the attack costs is the difference.
        var t0 = Date()
        for i in 1...3 { try l.startClient(i, "compute") }
        for i in 1...3 { try assertDelivered(l, i, sha: sha) }
        let quiet = Date().timeIntervalSince(t0)
        t0 = Date()
        for i in 1...3 { try l.startClient(i, "compute") }
        let group = try waitForRunningGroupOrWindow(l)
        // In the window: the attacker is on the group before the first datagram and stays past the end.
        let attacker = try l.harness.start(
            on: hostile,
            ["python3", script, "multicast", "--group", group, "--interface", l.harness.address(hostile), "--seconds", "12"],
            timeout: 30, log: "hostile.log")
        for i in 1...3 { try assertDelivered(l, i, sha: sha) }
        let attacked = Date().timeIntervalSince(t0)
        print("hostile-host: 3 nodes, 64 MiB: \(String(format: "%.1f", quiet)) s quiet, \(String(format: "%.1f", attacked)) s under attack")
        XCTAssertLessThan(attacked, quiet + 20, "the attack cost the nodes a little time at most (\(quiet) s → \(attacked) s)")
        XCTAssertEqual(l.harness.wait(attacker, seconds: 30), 0, l.harness.log("hostile.log"))
        let attack = try summary(l, "hostile.log")
        let sent = attack["sent"] as? [String: Int] ?? [:]
        for kind in ["status", "verdicts", "naks", "fin"] {
            XCTAssertGreaterThan(sent[kind] ?? 0, 0, "attack '\(kind)' was made: \(attack)")
        }
        XCTAssertFalse((attack["receiversOverheard"] as? [Any] ?? []).isEmpty, "it learned the real receivers' ids")
        // The daemon lives, and its counters show the refusals.
        let session = try XCTUnwrap(try l.sessions().last)
        let counters = try XCTUnwrap((session["progress"] as? [String: Any])?["counters"] as? [String: Any], "\(session)")
        let drops = counters["drops"] as? [String: Int] ?? [:]
        print("hostile-host: sent \(sent); sender drops \(drops.filter { $0.value > 0 }); over budget \(counters["nakEntriesOverBudget"] ?? 0), pressure discounted \(counters["pressureDiscounted"] ?? 0), verdicts contradicted \(counters["verdictsContradicted"] ?? 0)")
        XCTAssertGreaterThan(drops["unknown-receiver"] ?? 0, 0, "invented ids refused: \(counters)")
        XCTAssertGreaterThan(drops["implausible"] ?? 0, 0, "needs beyond k refused: \(counters)")
        XCTAssertGreaterThan(
            (counters["nakEntriesOverBudget"] as? Int ?? 0) + (counters["pressureDiscounted"] as? Int ?? 0), 0, "\(counters)")
        try l.startClient(1, "compute")
        try assertDelivered(l, 1, sha: sha)
    }

    func testControlPortFloodSlowlorisAndPipeliningLockNoNodeOut() throws {
        let l = try ImageLab(nodes: 2)
        lab = l
        let hostile = 2
        let sha = try l.addImage("compute", size: 8 << 20)
        try l.startDaemon(["--window", "0.3"])
        let port = "\(l.server):7799"
        func attack(_ kind: String, _ connections: Int) throws -> Process {
            try l.harness.start(
                on: hostile,
                ["python3", script, "control", "--server", port, "--attack", kind, "--seconds", "13", "--connections", "\(connections)"],
                timeout: 30, log: "hostile-\(kind).log")
        }
        let attackers = [try attack("slowloris", 4), try attack("pipeline", 1)]
        usleep(300_000)
        let flood = try attack("flood", 60)
        usleep(1_500_000)
        // A node boots in the middle of it.
        try l.startClient(1, "compute")
        try assertDelivered(l, 1, sha: sha)
        for p in attackers + [flood] { XCTAssertEqual(l.harness.wait(p, seconds: 30), 0) }
        let floodResult = try summary(l, "hostile-flood.log")
        let slow = try summary(l, "hostile-slowloris.log")
        XCTAssertGreaterThan(floodResult["closedByServer"] as? Int ?? 0, 0, "connections beyond the per-host bound: \(floodResult)")
        XCTAssertEqual(slow["stillOpen"] as? Int, 0, "every trickling connection was cut: \(slow)")
        let c = try l.counters()
        XCTAssertGreaterThan(c["controlRefusedPerHost"] as? Int ?? 0, 0, "\(c)")
        XCTAssertGreaterThanOrEqual(c["controlIncompleteFrames"] as? Int ?? 0, 4, "\(c)")
        // Afterwards the daemon serves as before.
        try l.startClient(1, "compute")
        try assertDelivered(l, 1, sha: sha)
    }

    private func assertDelivered(_ l: ImageLab, _ node: Int, sha: String, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(l.wait(node, seconds: 60), 0, "node \(node): \(l.harness.log("client\(node).log"))", file: file, line: line)
        XCTAssertEqual(try Lab.sha256(l.output(node, "compute")), sha, "node \(node)", file: file, line: line)
        XCTAssertEqual(try l.report(node)["path"] as? String, "multicast", "node \(node) needed no fallback", file: file, line: line)
    }
}
