import Foundation
import LabSupport
import LabTestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// Two head nodes on one PostgreSQL registry, nodes that know both (`ql.server=A,B`), and a head
/// lost in the middle of a boot wave (issue #19).
final class TwoHeadFailoverLabTests: XCTestCase {
    var lab: TwoHeadLab?

    override func tearDown() {
        lab?.tearDown()
        lab = nil
    }

    func testAHeadKilledHalfwayThroughTheImageCostsTheNodesOnlyTheSwitch() throws {
        let (l, sha) = try twoHeads()
        // One registry: the nodes head 0 registered are head 1's too.
        XCTAssertEqual(try l.qlumanCLI(on: 1, ["node", "list"]), try l.qlumanCLI(on: 0, ["node", "list"]))
        let (h0, h1) = (l.imageServer(0), l.imageServer(1))

        // The wave without a failure: everything from head 0.
        let plain = try boot(l, run: 1, sha: sha)
        for i in 1...3 {
            let report = try l.harness.json("report\(i)-1.json")
            XCTAssertEqual(report["bytesByServer"] as? [String: Int], [h0: 128 << 20], "node \(i)")
            XCTAssertEqual((report["serverSwitches"] as? [Any])?.count, 0)
            try FileManager.default.removeItem(atPath: l.output(i))
        }

        // The same wave, head 0 killed (SIGKILL: ql-mcastd and qlumand) when half the pass is out.
        let (failed, killedAt) = try boot(l, run: 2, sha: sha, killingHead0At: 0.5)
        for i in 1...3 {
            let report = try l.harness.json("report\(i)-2.json")
            let bytes = try XCTUnwrap(report["bytesByServer"] as? [String: Int], "node \(i)")
            XCTAssertGreaterThanOrEqual(bytes[h0] ?? 0, 32 << 20, "node \(i): \(bytes)")
            XCTAssertEqual(bytes[h1], 128 << 20, "node \(i): a new session at head 1, \(bytes)")
            XCTAssertEqual(report["path"] as? String, "multicast")
            try assertSwitched(l, node: i, run: 2, log: "from \(h0), \(128 << 20) from \(h1) (switched heads once)")
        }
        let failover = failed.done.timeIntervalSince(killedAt)
        print(
            String(
                format: "two heads, 3 nodes, 128 MiB at 200m: boot %.1f s without a failure; %.1f s with head 0 killed"
                    + " %.1f s in; kill -> every node done %.1f s", plain.seconds, failed.seconds,
                killedAt.timeIntervalSince(failed.started), failover))
    }

    func testAHeadKilledNearTheEndLeavesTheNodesOnlyTheRestToFetchFromTheOther() throws {
        let (l, sha) = try twoHeads()
        let (h0, h1) = (l.imageServer(0), l.imageServer(1))
        // Killed when 90 % of the pass is out: what is left (< 1/4) comes by unicast from head 1,
        // the SHA-256 of the prefix received carried over.
        let (failed, killedAt) = try boot(l, run: 1, sha: sha, killingHead0At: 0.9)
        for i in 1...3 {
            let report = try l.harness.json("report\(i)-1.json")
            let bytes = try XCTUnwrap(report["bytesByServer"] as? [String: Int], "node \(i)")
            let unicast = try XCTUnwrap(report["unicastBytes"] as? Int)
            XCTAssertEqual(report["path"] as? String, "multicast+unicast", "node \(i)")
            XCTAssertEqual(bytes[h1], unicast, "node \(i): \(bytes)")
            XCTAssertEqual((bytes[h0] ?? 0) + unicast, 128 << 20, "node \(i): nothing fetched twice, \(bytes)")
            XCTAssertLessThan(unicast, 32 << 20, "node \(i)")
            try assertSwitched(l, node: i, run: 1, log: "from \(h0), \(unicast) from \(h1) (switched heads once)")
        }
        print(
            String(
                format: "two heads, 3 nodes, 128 MiB at 200m, head 0 killed at 90 %%: boot %.1f s; kill -> done %.1f s",
                failed.seconds, failed.done.timeIntervalSince(killedAt)))
    }

    func testANodeAddedOnOneHeadIsServedByTheOtherHeadsDnsmasqWithinSeconds() throws {
        let l = try TwoHeadLab(nodes: 1)
        lab = l
        // A node on the lab's network first: dnsmasq serves the networks it knows when it starts.
        try l.qlumanCLI(on: 0, ["node", "add", "beo-99", "--mac", "52:54:00:09:09:09", "--ip", "198.18.0.99/24"])
        try l.startHead(0, provisionInterval: 1)
        try l.startHead(1, provisionInterval: 1)
        // Only head 1 answers DHCP: what the node gets, it gets from head 1.
        try l.startDnsmasq(1)
        let node = l.host(1)
        XCTAssertNil(try l.harness.dhcpLease(on: node, seconds: 3), "not registered yet")

        // Registered on head 0 (no 'qluman provision' anywhere): head 1's files follow.
        let mac = try l.harness.mac(node)
        let added = Date()
        try l.qlumanCLI(on: 0, ["node", "add", "beo-01", "--mac", mac, "--ip", "198.18.0.113/24"])
        /// When head `h`'s dnsmasq hosts file first named the node (nil: not within 15 s).
        func written(on h: Int) -> Date? {
            let hosts = l.head(h).path("/etc/qlustar/dnsmasq/dhcp-hosts")
            while Date().timeIntervalSince(added) < 15 {
                if ((try? String(contentsOfFile: hosts, encoding: .utf8)) ?? "").contains(mac) { return Date() }
                usleep(50_000)
            }
            return nil
        }
        let delay = try XCTUnwrap(written(on: 1), "head 1 never wrote the node: \(l.harness.log("qlumand1.log"))")
            .timeIntervalSince(added)
        XCTAssertLessThan(delay, 5, "a change on one head reaches the other within seconds")
        XCTAssertEqual(try l.harness.dhcpLease(on: node), "198.18.0.113", l.harness.log("dnsmasq1.log"))
        XCTAssertTrue(l.harness.log("qlumand1.log").contains("registry changed: provisioned 2 nodes, dnsmasq reloaded"))
        // Head 0 follows too (its dnsmasq would serve the same), on its own look.
        XCTAssertNotNil(written(on: 0), "head 0 never wrote the node: \(l.harness.log("qlumand0.log"))")
        print(String(format: "two heads: a node added on head 0 was in head 1's dnsmasq hosts after %.2f s", delay))
    }

    func testAnImageIsReplicatedVerifiedAndNoHeadServesAVersionTheOtherLacks() throws {
        let l = try TwoHeadLab(nodes: 1)
        lab = l
        try l.registerNodes()
        try l.startHead(0)
        try l.startHead(1)
        let v1 = try l.publishImage(size: 48 << 20)
        let (h0, h1) = (l.head(0).images, l.head(1).images)
        let files = ["compute.img", "compute.initrd", "compute.vmlinuz", "compute.manifest"]

        // Published on head 0 only: head 0 does not serve it while head 1 lacks it.
        try l.waitUntilPeerSeen(by: 0)
        XCTAssertEqual(try l.fetch(1, from: 0, log: "lacking"), 2)
        XCTAssertTrue(
            l.harness.log("fetch-lacking.out").contains("is not on the other head node 198.18.0.11:7799 yet"),
            l.harness.log("fetch-lacking.out"))

        // Without the heads' secret: refused, nothing written.
        let wrong = l.harness.path("wrong.token")
        try String(repeating: "x", count: 32).write(toFile: wrong, atomically: true, encoding: .utf8)
        chmod(wrong, 0o600)
        XCTAssertEqual(l.replicate(on: 1, token: wrong, log: "wrong"), 1)
        XCTAssertTrue(l.harness.log("replicate-wrong.out").contains("peer-token"), l.harness.log("replicate-wrong.out"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: h1 + "/compute.img"))

        // With it: every file, byte for byte; then both heads serve it.
        XCTAssertEqual(l.replicate(on: 1, ["--json"], log: "first"), 0, l.harness.log("replicate-first.out"))
        for f in files { XCTAssertEqual(try Lab.sha256(h1 + "/" + f), try Lab.sha256(h0 + "/" + f), f) }
        XCTAssertTrue(l.harness.log("replicate-first.out").contains("\"action\" : \"replicated\""))
        try l.waitUntilPeerSeen(by: 0, sha: v1)
        for h in 0...1 {
            XCTAssertEqual(try l.fetch(1, from: h, log: "v1-\(h)"), 0, l.harness.log("fetch-v1-\(h).out"))
            XCTAssertEqual(try Lab.sha256(l.output(1)), v1)
        }
        // Again: nothing to copy.
        XCTAssertEqual(l.replicate(on: 1, log: "again"), 0)
        XCTAssertTrue(
            l.harness.log("replicate-again.out").contains("compute: up to date"), l.harness.log("replicate-again.out"))

        // A new version on head 0: until head 1 has it, head 0 serves the one both have.
        let base = h0 + "/compute"
        try Lab.run("/bin/sh", ["-c", "head -c 2000000 /dev/urandom > \(base).img"])
        try l.writeManifest(on: 0)
        let v2 = try Lab.sha256(base + ".img")
        XCTAssertEqual(try l.fetch(1, from: 0, log: "held"), 0, l.harness.log("fetch-held.out"))
        XCTAssertEqual(try Lab.sha256(l.output(1)), v1, "held back")
        XCTAssertGreaterThanOrEqual((try l.imageStatus(0)["counters"] as? [String: Any])?["heldBack"] as? Int ?? 0, 1)
        XCTAssertEqual(l.replicate(on: 1, log: "v2"), 0, l.harness.log("replicate-v2.out"))
        try l.waitUntilPeerSeen(by: 0, sha: v2)
        XCTAssertEqual(try l.fetch(1, from: 0, log: "v2"), 0, l.harness.log("fetch-v2.out"))
        XCTAssertEqual(try Lab.sha256(l.output(1)), v2)
        let replicated = try Lab.sha256(h1 + "/compute.manifest")

        // A version whose initrd does not match its manifest: refused, and head 1 keeps the
        // version it had, every file of it.
        try Lab.run("/bin/sh", ["-c", "head -c 1000000 /dev/urandom > \(base).img"])
        try l.writeManifest(on: 0)
        try Lab.run("/bin/sh", ["-c", "head -c 1000 /dev/urandom >> \(base).initrd"])
        XCTAssertEqual(l.replicate(on: 1, log: "tampered"), 1)
        XCTAssertTrue(
            l.harness.log("replicate-tampered.out").contains(
                "the initrd of 'compute' from 198.18.0.10:7799 does not match its manifest"),
            l.harness.log("replicate-tampered.out"))
        XCTAssertEqual(try Lab.sha256(h1 + "/compute.img"), v2)
        XCTAssertEqual(try Lab.sha256(h1 + "/compute.manifest"), replicated)
    }

    func testAHeadThatLostItsDatabaseKeepsServingWhatItHas() throws {
        let (l, sha) = try twoHeads()
        let before = try boot(l, run: 1, sha: sha)
        for i in 1...3 { try FileManager.default.removeItem(atPath: l.output(i)) }
        // The database's machine gone: the nodes that booted boot again, image and configuration.
        try l.loseDatabase(machine: true)
        let during = try boot(l, run: 2, sha: sha)
        print(
            String(
                format: "two heads, 3 nodes: boot %.1f s with the database, %.1f s after its machine is gone",
                before.seconds, during.seconds))
        let status = try l.configureStatus(0)
        XCTAssertEqual(status["configuredFromMemory"] as? Int, 3, "\(status)")
        XCTAssertTrue(
            l.harness.log("qlumand0.log").contains("the node registry cannot be read"), l.harness.log("qlumand0.log"))
        // Writes fail, clearly, and leave nothing half done.
        let add = try l.harness.start(
            on: 0,
            [
                l.qluman.path, "--root", l.head(0).prefix, "node", "add", "beo-09", "--mac", "52:54:00:09:00:09",
                "--ip", "198.18.0.19/24",
            ],
            timeout: 60, log: "add.out")
        XCTAssertEqual(l.harness.wait(add, seconds: 70), 1)
        XCTAssertTrue(
            l.harness.log("add.out").contains("cannot reach the node registry postgresql://"), l.harness.log("add.out"))
    }

    /// Three nodes registered, a 128 MiB image on both heads, both heads serving at 200 Mbit/s (a
    /// pass of ~5.4 s: long enough to kill a head at a chosen point).
    private func twoHeads() throws -> (TwoHeadLab, String) {
        let l = try TwoHeadLab(nodes: 3)
        lab = l
        try l.registerNodes()
        try l.startHead(0, rate: "200m")
        try l.startHead(1, rate: "200m")
        // Published on head 0, replicated to head 1 as an administrator would.
        let sha = try l.publishImage(size: 128 << 20)
        XCTAssertEqual(l.replicate(on: 1, log: "setup"), 0, l.harness.log("replicate-setup.out"))
        // Head 0 serves it once it knows head 1 has it too.
        try l.waitUntilPeerSeen(by: 0, sha: sha)
        return (l, sha)
    }

    /// The client's report and log name the one switch from head 0 to head 1; execd was configured
    /// by head 1.
    private func assertSwitched(_ l: TwoHeadLab, node i: Int, run: Int, log: String) throws {
        let (h0, h1) = (l.imageServer(0), l.imageServer(1))
        let switches = try XCTUnwrap(try l.harness.json("report\(i)-\(run).json")["serverSwitches"] as? [String])
        XCTAssertEqual(switches.count, 1, "\(switches)")
        // Lost during the multicast session, or during the unicast of the rest.
        XCTAssertTrue(switches.first?.hasPrefix("\(h0) -> \(h1): ") == true, "\(switches)")
        XCTAssertTrue(switches.first?.contains("\(h0): Connection refused") == true, "\(switches)")
        let clientLog = try String(
            contentsOfFile: l.nodeRoot(i) + "/var/log/qlustar/ql-mcast-client.log", encoding: .utf8)
        XCTAssertTrue(clientLog.contains("going on at ql-mcastd \(h1)"), clientLog)
        XCTAssertTrue(clientLog.contains(log), clientLog)
        let execLog = try String(contentsOfFile: l.nodeRoot(i) + "/var/log/qlustar/qluman-execd.log", encoding: .utf8)
        XCTAssertTrue(execLog.contains("configured by \(l.harness.address(1))"), execLog)
        XCTAssertTrue(execLog.contains("configured node beo-0\(i) from \(l.harness.address(1))"), execLog)
    }

    /// Boots every node as `boot` does, killing head 0's services (SIGKILL) once its session of
    /// this wave has sent `fraction` of its first pass; returns the boot's times and the kill's.
    private func boot(_ l: TwoHeadLab, run: Int, sha: String, killingHead0At fraction: Double) throws -> (
        (started: Date, done: Date, seconds: Double), Date
    ) {
        let earlier = Set(
            ((try? l.imageStatus(0)["sessions"] as? [[String: Any]]) ?? []).compactMap {
                $0["sessionID"] as? Int
            })
        var killedAt = Date()
        let times = try boot(l, run: run, sha: sha) {
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline {
                let sessions = (try? l.imageStatus(0)["sessions"] as? [[String: Any]]) ?? []
                if let progress = sessions.first(where: { !earlier.contains($0["sessionID"] as? Int ?? -1) })?[
                    "progress"] as? [String: Any], let blocks = progress["blocks"] as? Int, blocks > 0,
                    let sent = progress["passBlocks"] as? Int, Double(sent) >= fraction * Double(blocks)
                {
                    killedAt = Date()
                    try l.killHead(0)
                    return
                }
                usleep(50_000)
            }
            throw LabError("head 0's session never sent \(fraction) of its pass: \(l.harness.log("mcastd0.log"))")
        }
        return (times, killedAt)
    }

    /// Boots every node (fetch, then configure), runs `during` meanwhile, and checks each node's
    /// image and configuration.
    private func boot(_ l: TwoHeadLab, run: Int, sha: String, during: () throws -> Void = {}) throws -> (
        started: Date, done: Date, seconds: Double
    ) {
        let started = Date()
        let boots = try (1...l.nodes).map { try l.startBoot($0, run: run) }
        try during()
        for (n, p) in boots.enumerated() {
            let i = n + 1
            XCTAssertEqual(
                l.harness.wait(p, seconds: 180), 0,
                "node \(i), run \(run): \(l.harness.log("boot\(i)-\(run).log")) \(l.harness.log("mcastd1.log"))")
        }
        let done = Date()
        for i in 1...l.nodes {
            XCTAssertEqual(try Lab.sha256(l.output(i)), sha, "node \(i), run \(run)")
            XCTAssertEqual(
                try String(contentsOfFile: l.nodeRoot(i) + "/etc/hostname", encoding: .utf8),
                String(format: "beo-%02d\n", i), "node \(i), run \(run)")
        }
        return (started, done, done.timeIntervalSince(started))
    }
}
