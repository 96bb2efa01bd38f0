import Foundation
import ImageService
import LabSupport
import LabTestSupport
import NodeConfig
import Platform
import XCTest

/// qluman-execd in daemon mode on the test hosts: remote commands from qluman through qlumand,
/// reconfiguration, monitoring — and nothing accepted from anyone else.
final class DaemonModeLabTests: XCTestCase {
    var lab: ConfigureLab?

    override func tearDown() {
        lab?.tearDown()
        lab = nil
    }

    private func startAgent(_ l: ConfigureLab, _ i: Int, _ extra: [String] = []) throws {
        _ = try l.harness.start(
            on: i,
            [
                l.execd.path, "--daemon", "--root", l.nodeRoot(i), "--server", l.harness.address(0),
                "--report-interval", "2",
            ] + extra,
            timeout: 300, log: "agent\(i).out")
    }

    /// `qluman ARGS --root head` with its output and exit status (it exits with the command's).
    private func qluman(_ l: ConfigureLab, _ arguments: [String], output: String) throws -> Int32 {
        let p = Process()
        p.executableURL = l.qluman
        // --root before "--": after it, everything belongs to the remote command.
        p.arguments = [arguments[0], "--root", l.head.prefix] + arguments.dropFirst()
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        return l.harness.wait(p, seconds: 60)
    }

    private func waitUntilConnected(_ l: ConfigureLab, _ node: String) throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let out = l.harness.path("nodes.json")
            if try qluman(l, ["nodes", "--json"], output: out) == 0,
                let list = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out)))
                    as? [[String: Any]],
                let entry = list.first(where: { $0["node"] as? String == node }), entry["connected"] as? Bool == true
            {
                return entry
            }
            usleep(200_000)
        }
        throw LabError("\(node)'s agent did not connect: \(l.harness.log("agent1.out"))")
    }

    func testRemoteCommandsStreamOutputReturnStatusAndReconfigure() throws {
        let l = try ConfigureLab(nodes: 1)
        lab = l
        try l.register(1, "beo-01", group: nil)
        try l.startDaemon()
        try startAgent(l, 1)
        // Monitoring: the report carries real figures from the node.
        let entry = try waitUntilConnected(l, "beo-01")
        let report = try XCTUnwrap(entry["report"] as? [String: Any])
        XCTAssertGreaterThan(report["memoryTotal"] as? Int ?? 0, 1 << 30)
        XCTAssertGreaterThan(report["uptimeSeconds"] as? Double ?? 0, 0)
        XCTAssertGreaterThan(report["diskTotal"] as? Int ?? 0, 0)

        // Output and status come back; stderr is interleaved; no shell unless asked for.
        let out = l.harness.path("exec.out")
        XCTAssertEqual(
            try qluman(
                l, ["exec", "beo-01", "--", "sh", "-c", "hostname -I; echo to-stderr >&2; exit 3"], output: out), 3)
        let text = try String(contentsOfFile: out, encoding: .utf8)
        XCTAssertTrue(text.hasPrefix(l.harness.address(1)), "ran on the node: \(text)")
        XCTAssertTrue(text.contains("to-stderr\n"), text)
        XCTAssertTrue(text.contains("qluman: beo-01: exit 3"), text)

        // Streaming: the first line arrives while the command still runs.
        let stream = l.harness.path("stream.out")
        let p = Process()
        p.executableURL = l.qluman
        p.arguments = ["exec", "beo-01", "--root", l.head.prefix, "--", "sh", "-c", "echo first; sleep 4; echo second"]
        FileManager.default.createFile(atPath: stream, contents: nil)
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stream))
        try p.run()
        var early = ""
        let deadline = Date().addingTimeInterval(3)
        while Date() < deadline, !early.contains("first") {
            usleep(100_000)
            early = (try? String(contentsOfFile: stream, encoding: .utf8)) ?? ""
        }
        XCTAssertEqual(early, "first\n", "output streamed before the command ended")
        XCTAssertEqual(l.harness.wait(p, seconds: 20), 0)
        XCTAssertEqual(try String(contentsOfFile: stream, encoding: .utf8), "first\nsecond\n")

        // A time limit kills the command.
        XCTAssertEqual(try qluman(l, ["exec", "beo-01", "--timeout", "1", "--", "sleep", "30"], output: out), 125)
        XCTAssertTrue(try String(contentsOfFile: out, encoding: .utf8).contains("timed out after 1 s"))

        // Reconfigure on request: a config changed on the head reaches the running node.
        _ = try l.registry.putConfig(.misc, name: "site", json: Array(#"{"mailRelay":"relay1"}"#.utf8))
        try l.registry.assign(.misc, "site", to: .node("beo-01"))
        XCTAssertEqual(try qluman(l, ["reconfigure", "beo-01"], output: out), 0, l.harness.log("exec.out"))
        XCTAssertTrue(
            try String(contentsOfFile: l.nodeRoot(1) + "/etc/qlustar/options.d/misc", encoding: .utf8).contains(
                "QLUMAN_MAIL_RELAY='relay1'"))

        // Unknown nodes and nodes without an agent are clear errors.
        XCTAssertNotEqual(try qluman(l, ["exec", "nobody", "--", "true"], output: out), 0)
        XCTAssertTrue(try String(contentsOfFile: out, encoding: .utf8).contains("no node 'nobody' is registered"))
    }

    func testCommandsComeOnlyFromTheAuthenticatedQlumand() throws {
        let l = try ConfigureLab(nodes: 2)
        lab = l
        try l.register(1, "beo-01", group: nil)
        try l.register(2, "beo-02", group: nil)
        try l.startDaemon()
        // beo-02's agent trusts another cluster's CA: it never connects, so it never runs anything.
        let other = l.harness.path("other-ssl")
        try Lab.run(
            LabHarness.repositoryRoot.appendingPathComponent("scripts/cluster-ca").path,
            [other, "qlumand", l.harness.address(0)])
        try startAgent(l, 1)
        try startAgent(l, 2, ["--ca", other + "/ca.crt"])
        _ = try waitUntilConnected(l, "beo-01")
        let out = l.harness.path("exec.out")
        XCTAssertNotEqual(try qluman(l, ["exec", "beo-02", "--", "touch", "/tmp/never"], output: out), 0)
        XCTAssertTrue(
            try String(contentsOfFile: out, encoding: .utf8).contains("beo-02's qluman-execd is not connected"))
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, !l.harness.log("agent2.out").contains("TLS") { usleep(100_000) }
        XCTAssertTrue(l.harness.log("agent2.out").contains("TLS"), l.harness.log("agent2.out"))
        // The agents listen on no port: nothing on a node accepts connections.
        for i in 1...2 {
            XCTAssertEqual(
                try l.harness.lab.exec(on: i, ["ss", "-Hltnu"]).trimmingCharacters(in: .whitespacesAndNewlines), "")
        }
        // The administration socket is root's alone.
        let socket = l.head.path(QlumanDefaults.adminSocket)
        XCTAssertEqual(try Lab.run("/usr/bin/stat", ["-c", "%a %F", socket]), "600 socket\n")
    }
}
