import Foundation
import LabSupport
import LabTestSupport
import XCTest

/// `qluman exec HOSTLIST` and `qluman reconfigure HOSTLIST` over 50 agents on test hosts: output
/// folded by identical text, statuses folded by outcome, a hanging command killed at its timeout,
/// a node without an agent named — and the whole run bounded by the timeout, not by the node count.
final class FanOutLabTests: XCTestCase {
    var lab: ConfigureLab?

    override func tearDown() {
        lab?.tearDown()
        lab = nil
    }

    func testFiftyAgentsMixedOutputsOneHangingOneAbsent() throws {
        let nodes = 50
        let l = try ConfigureLab(nodes: nodes)
        lab = l
        for i in 1...nodes { try l.register(i, String(format: "beo-%02d", i), group: nil) }
        _ = try l.registry.addNode(
            name: "beo-51", macs: ["52:54:00:ff:00:51"], ip: "198.18.9.51/16", image: nil, group: nil)
        try l.startDaemon()
        for i in 1...nodes {
            _ = try l.harness.start(
                on: i,
                [
                    l.execd.path, "--daemon", "--root", l.nodeRoot(i), "--server", l.harness.address(0),
                    "--report-interval", "2",
                ], timeout: 300, log: "agent\(i).out")
        }
        let deadline = Date().addingTimeInterval(60)
        var connected = 0
        while Date() < deadline {
            let list = try JSONSerialization.jsonObject(with: Data(l.qlumanCLI(["nodes", "--json"]).utf8))
            connected = (list as? [[String: Any]])?.filter { $0["connected"] as? Bool == true }.count ?? 0
            if connected == nodes { break }
            usleep(300_000)
        }
        XCTAssertEqual(connected, nodes, l.harness.log("agent1.out"))

        // Even host numbers print "even", odd ones "odd" and exit 3; beo-50 (198.18.0.60) hangs.
        let script = """
            ip=$(hostname -I); last=${ip##*.}; last=${last%% *}
            [ "$last" = 60 ] && exec sleep 600
            if [ $((last % 2)) = 0 ]; then echo even; else echo odd; exit 3; fi
            """
        let started = Date()
        let p = Process()
        p.executableURL = l.qluman
        p.arguments = [
            "--root", l.head.prefix, "--json", "exec", "beo-[01-51]", "--timeout", "5", "--", "sh", "-c", script,
        ]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        let errors = l.harness.path("exec-errors.out")
        FileManager.default.createFile(atPath: errors, contents: nil)
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errors))
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let elapsed = Date().timeIntervalSince(started)
        XCTAssertEqual(p.terminationStatus, 1, l.harness.log("exec-errors.out"))
        XCTAssertLessThan(elapsed, 25, "bounded by the 5 s timeout, not by 51 nodes one after another")
        let report = try XCTUnwrap(
            try? JSONSerialization.jsonObject(with: data) as? [String: Any], l.harness.log("exec-errors.out"))
        let groups = try XCTUnwrap((report["summary"] as? [String: Any])?["groups"] as? [[String: Any]])
        let folded = Dictionary(
            uniqueKeysWithValues: groups.map { ($0["outcome"] as? String ?? "", $0["nodes"] as? String ?? "") })
        XCTAssertEqual(
            folded,
            [
                "exit 0": "beo-[02,04,06,08,10,12,14,16,18,20,22,24,26,28,30,32,34,36,38,40,42,44,46,48]",
                "exit 3": "beo-[01,03,05,07,09,11,13,15,17,19,21,23,25,27,29,31,33,35,37,39,41,43,45,47,49]",
                "timeout": "beo-50", "not connected": "beo-51",
            ], String(decoding: data, as: UTF8.self))

        // The text form: one block per distinct output, then the folded outcomes.
        let text = try Lab.run(
            "/bin/sh",
            ["-c", "'\(l.qluman.path)' --root '\(l.head.prefix)' exec 'beo-[01-04]' -- sh -c '\(script)' || true"])
        XCTAssertEqual(
            text,
            """
            ----------------
            beo-[01,03] (2)
            ----------------
            odd
            ----------------
            beo-[02,04] (2)
            ----------------
            even
            exit 0: beo-[02,04]  exit 3: beo-[01,03]

            """)

        let reconfigure = try Lab.run(l.qluman.path, ["--root", l.head.prefix, "reconfigure", "beo-[01-10]"])
        XCTAssertTrue(reconfigure.hasSuffix("configured: beo-[01-10]\n"), reconfigure)
    }
}
