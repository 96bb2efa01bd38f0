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
            [
                "python3", script, "multicast", "--group", group, "--interface", l.harness.address(hostile),
                "--seconds", "12",
            ],
            timeout: 30, log: "hostile.log")
        for i in 1...3 { try assertDelivered(l, i, sha: sha) }
        let attacked = Date().timeIntervalSince(t0)
        print(
            "hostile-host: 3 nodes, 64 MiB: \(String(format: "%.1f", quiet)) s quiet, \(String(format: "%.1f", attacked)) s under attack"
        )
        XCTAssertLessThan(
            attacked, quiet + 20, "the attack cost the nodes a little time at most (\(quiet) s → \(attacked) s)")
        XCTAssertEqual(l.harness.wait(attacker, seconds: 30), 0, l.harness.log("hostile.log"))
        let attack = try summary(l, "hostile.log")
        let sent = attack["sent"] as? [String: Int] ?? [:]
        for kind in ["status", "verdicts", "naks", "fin"] {
            XCTAssertGreaterThan(sent[kind] ?? 0, 0, "attack '\(kind)' was made: \(attack)")
        }
        XCTAssertFalse((attack["receiversOverheard"] as? [Any] ?? []).isEmpty, "it learned the real receivers' ids")
        // The daemon lives, and its counters show the refusals.
        let session = try XCTUnwrap(try l.sessions().last)
        let counters = try XCTUnwrap(
            (session["progress"] as? [String: Any])?["counters"] as? [String: Any], "\(session)")
        let drops = counters["drops"] as? [String: Int] ?? [:]
        print(
            "hostile-host: sent \(sent); sender drops \(drops.filter { $0.value > 0 }); over budget \(counters["nakEntriesOverBudget"] ?? 0), pressure discounted \(counters["pressureDiscounted"] ?? 0), verdicts contradicted \(counters["verdictsContradicted"] ?? 0)"
        )
        XCTAssertGreaterThan(drops["unknown-receiver"] ?? 0, 0, "invented ids refused: \(counters)")
        XCTAssertGreaterThan(drops["implausible"] ?? 0, 0, "needs beyond k refused: \(counters)")
        XCTAssertGreaterThan(
            (counters["nakEntriesOverBudget"] as? Int ?? 0) + (counters["pressureDiscounted"] as? Int ?? 0), 0,
            "\(counters)")
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
                [
                    "python3", script, "control", "--server", port, "--attack", kind, "--seconds", "13",
                    "--connections", "\(connections)",
                ],
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
        XCTAssertGreaterThan(
            floodResult["closedByServer"] as? Int ?? 0, 0, "connections beyond the per-host bound: \(floodResult)")
        XCTAssertEqual(slow["stillOpen"] as? Int, 0, "every trickling connection was cut: \(slow)")
        let c = try l.counters()
        XCTAssertGreaterThan(c["controlRefusedPerHost"] as? Int ?? 0, 0, "\(c)")
        XCTAssertGreaterThanOrEqual(c["controlIncompleteFrames"] as? Int ?? 0, 4, "\(c)")
        // Afterwards the daemon serves as before.
        try l.startClient(1, "compute")
        try assertDelivered(l, 1, sha: sha)
    }

    /// A host that only listens to the group: from a session in the clear it rebuilds the image
    /// (what `--encrypt no` exposes); from an encrypted session (the default with TLS) nothing.
    func testPassiveListenerRebuildsAPlainSessionAndNothingOfAnEncryptedOne() throws {
        let l = try ImageLab(nodes: 2)
        lab = l
        let hostile = 2
        let sha = try l.addImage("compute", size: 16 << 20)
        let image = l.images + "/compute.img"
        func listenDuringOneBoot(_ log: String, client: [String]) throws -> [String: Any] {
            try l.startClient(1, "compute", client)
            let group = try waitForRunningGroupOrWindow(l)
            let listener = try l.harness.start(
                on: hostile,
                [
                    "python3", script, "listen", "--group", group, "--interface", l.harness.address(hostile),
                    "--seconds", "6",
                    "--compare", image,
                ],
                timeout: 30, log: log)
            try assertDelivered(l, 1, sha: sha)
            XCTAssertEqual(l.harness.wait(listener, seconds: 30), 0, l.harness.log(log))
            return try summary(l, log)
        }
        try l.startDaemon(["--window", "1.5", "--rate", "500m"])
        let plain = try listenDuringOneBoot("listen-plain.log", client: [])
        print("passive listener, plain session: \(plain)")
        let symbols = (16 << 20) / 1_440
        XCTAssertGreaterThan(
            plain["symbolsMatchingImage"] as? Int ?? 0, symbols * 9 / 10, "the listener works: \(plain)")

        l.daemonProcess!.terminate()
        XCTAssertEqual(l.harness.wait(l.daemonProcess!, seconds: 20), 0, l.harness.log("daemon.log"))
        let ca = l.harness.path("ssl")
        try Lab.run(
            LabHarness.repositoryRoot.appendingPathComponent("scripts/cluster-ca").path, [ca, "ql-mcastd", l.server])
        try l.startDaemon(
            [
                "--tls-certificate", ca + "/ql-mcastd.crt", "--tls-key", ca + "/ql-mcastd.key", "--window", "1.5",
                "--rate", "500m",
            ],
            statusArguments: ["--ca", ca + "/ca.crt"])
        let sealed = try listenDuringOneBoot("listen-sealed.log", client: ["--ca", ca + "/ca.crt"])
        print("passive listener, encrypted session: \(sealed)")
        XCTAssertGreaterThan(sealed["data"] as? Int ?? 0, symbols * 9 / 10, "it heard the whole stream: \(sealed)")
        XCTAssertEqual(sealed["sealed"] as? Int, sealed["data"] as? Int, "every symbol sealed: \(sealed)")
        XCTAssertEqual(sealed["symbolsMatchingImage"] as? Int, 0, "no image byte recovered: \(sealed)")
        XCTAssertTrue(
            l.harness.log("daemon.log").contains("sessions encrypted (AES-128-GCM)"), l.harness.log("daemon.log"))
        // The session key was in node 1's ticket only: not in status (open to anyone), not in a log.
        let status = try l.harness.lab.exec(
            on: 0, [l.daemon.path, "status", "--server", l.server, "--json", "--timeout", "3", "--ca", ca + "/ca.crt"])
        XCTAssertFalse(status.contains("\"key\""), status)
        XCTAssertFalse(l.harness.log("daemon.log").lowercased().contains("key "), l.harness.log("daemon.log"))
    }

    /// With the registry, ql-mcastd serves registered nodes only, recognised by the neighbour
    /// table: a host that is no node, a host cloning a node's MAC from its own address, a node
    /// whose address speaks with another MAC, and a node without its token all get nothing.
    func testRegistryServesRegisteredNodesOnlyWhateverStrangersClaim() throws {
        let l = try ImageLab(nodes: 4)
        lab = l
        let sha = try l.addImage("compute", size: 4 << 20)
        let qluman = try LabHarness.releaseBinary("qluman").path
        func mac(_ i: Int) throws -> String {
            try l.harness.lab.exec(on: i, ["cat", "/sys/class/net/eth0/address"]).trimmingCharacters(
                in: .whitespacesAndNewlines)
        }
        let token = l.harness.path("n1.token")
        try "s3cret-enrollment-token-n1".write(toFile: token, atomically: true, encoding: .utf8)
        let n1MAC = try mac(1)
        // Node 1 with its MAC and a token; node 2 registered with a MAC its port does not have.
        _ = try Lab.run(qluman, ["node", "add", "n1", "--root", l.head, "--mac", n1MAC, "--ip", l.harness.address(1)])
        _ = try Lab.run(qluman, ["node", "set", "n1", "--root", l.head, "--token-file", token])
        _ = try Lab.run(
            qluman, ["node", "add", "n2", "--root", l.head, "--mac", "52:54:00:aa:bb:cc", "--ip", l.harness.address(2)])
        // Host 4 takes node 1's MAC, speaking from its own address (given back before node 1 boots:
        // two ports with one MAC confuse the lab's bridge as they would a switch).
        let h4MAC = try mac(4)
        _ = try l.harness.lab.exec(on: 4, ["ip", "link", "set", "eth0", "address", n1MAC])
        try l.startDaemon(["--window", "0.5"])
        XCTAssertTrue(
            l.harness.log("daemon.log").contains("serving registered nodes only"), l.harness.log("daemon.log"))

        for (i, extra) in [(1, []), (2, []), (3, []), (4, ["--token-file", token])] as [(Int, [String])] {
            try l.startClient(i, "compute", extra + ["--server-timeout", "5"])
            XCTAssertEqual(l.wait(i, seconds: 30), 2, "node \(i) refused: \(l.harness.log("client\(i).log"))")
            XCTAssertFalse(FileManager.default.fileExists(atPath: l.output(i, "compute")), "node \(i) got nothing")
            XCTAssertTrue(
                l.harness.log("client\(i).log").contains("not-registered")
                    || l.harness.log("client\(i).log").contains("does not know this node"),
                l.harness.log("client\(i).log"))
        }
        _ = try l.harness.lab.exec(on: 4, ["ip", "link", "set", "eth0", "address", h4MAC])
        let c = try l.counters()
        XCTAssertEqual(c["refusedToken"] as? Int, 1, "node 1 without its token: \(c)")
        XCTAssertEqual(c["refusedMACMismatch"] as? Int, 1, "node 2's address from another MAC: \(c)")
        XCTAssertEqual(c["refusedNotRegistered"] as? Int, 2, "host 3, and host 4 with node 1's MAC: \(c)")
        // The raw control port tells a stranger nothing either: no list, no ticket (no key), no bytes.
        let asker = try l.harness.start(
            on: 3, ["python3", script, "control", "--server", "\(l.server):7799", "--attack", "ask"], timeout: 20,
            log: "ask.log")
        XCTAssertEqual(l.harness.wait(asker, seconds: 20), 0, l.harness.log("ask.log"))
        let answers = try XCTUnwrap(try summary(l, "ask.log")["answers"] as? [String: [String: Any]])
        for op in ["list-images", "request-image", "fetch"] {
            let text = answers[op]?["answer"] as? String ?? ""
            XCTAssertTrue(text.contains("not-registered"), "\(op): \(text)")
            XCTAssertFalse(
                text.contains("\"key\"") || text.contains("sha256\":\"\(sha)"), "\(op) gave nothing away: \(text)")
        }
        // Node 1 with its token boots.
        try l.startClient(1, "compute", ["--token-file", token])
        try assertDelivered(l, 1, sha: sha)
        // One log line per refused address, however often it asked; no token in the log.
        let log = l.harness.log("daemon.log")
        XCTAssertEqual(log.components(separatedBy: "refused \(l.harness.address(3)) ").count - 1, 1, log)
        XCTAssertFalse(log.contains("s3cret"), "no token in the log")
    }

    private func assertDelivered(
        _ l: ImageLab, _ node: Int, sha: String, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        XCTAssertEqual(
            l.wait(node, seconds: 60), 0, "node \(node): \(l.harness.log("client\(node).log"))", file: file, line: line)
        XCTAssertEqual(try Lab.sha256(l.output(node, "compute")), sha, "node \(node)", file: file, line: line)
        XCTAssertEqual(
            try l.report(node)["path"] as? String, "multicast", "node \(node) needed no fallback", file: file,
            line: line)
    }
}
