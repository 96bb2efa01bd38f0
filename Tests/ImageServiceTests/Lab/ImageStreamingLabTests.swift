import Foundation
import LabSupport
import LabTestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// ql-mcastd and ql-mcast-client on the test hosts, release binaries, real multicast.
final class ImageStreamingLabTests: XCTestCase {
    var lab: ImageLab?

    override func tearDown() {
        lab?.tearDown()
        lab = nil
    }

    func makeLab(nodes: Int) throws -> ImageLab {
        let l = try ImageLab(nodes: nodes)
        lab = l
        return l
    }

    func assertDelivered(
        _ l: ImageLab, _ node: Int, _ image: String, sha: String, path: String? = nil, file: StaticString = #filePath,
        line: UInt = #line
    ) throws {
        let status = l.wait(node)
        XCTAssertEqual(status, 0, "node \(node): \(l.harness.log("client\(node).log"))", file: file, line: line)
        XCTAssertEqual(try Lab.sha256(l.output(node, image)), sha, "node \(node)", file: file, line: line)
        XCTAssertFalse(
            FileManager.default.fileExists(atPath: l.output(node, image) + ".partial"), file: file, line: line)
        if let path {
            XCTAssertEqual(try l.report(node)["path"] as? String, path, "node \(node)", file: file, line: line)
        }
    }

    func testEightNodesAskingTogetherShareOneSessionAndAllGetExactCopies() throws {
        let l = try makeLab(nodes: 8)
        let sha = try l.addImage("compute", size: 48 << 20)
        try l.startDaemon()
        for i in 1...8 { try l.startClient(i, "compute") }
        for i in 1...8 { try assertDelivered(l, i, "compute", sha: sha, path: "multicast") }
        let sessions = try l.sessions()
        XCTAssertEqual(sessions.count, 1)
        XCTAssertEqual((sessions[0]["members"] as! [Any]).count, 8)
        XCTAssertEqual(try l.counters()["sessionsStarted"] as? Int, 1)
        XCTAssertEqual(try l.counters()["fetches"] as? Int, 0)
    }

    func testNodesThatSayHowManyAreComingStartTheSessionOnceAllAskedNotAtTheWindowsEnd() throws {
        let l = try makeLab(nodes: 3)
        let sha = try l.addImage("compute", size: 16 << 20)
        // A minute's window: every node done well within it proves the session did not wait it out.
        try l.startDaemon(["--window", "60"])
        let started = Date()
        for i in 1...3 { try l.startClient(i, "compute", ["--expect", "3"], timeout: 50) }
        for i in 1...3 { try assertDelivered(l, i, "compute", sha: sha, path: "multicast") }
        XCTAssertLessThan(Date().timeIntervalSince(started), 40, "the session waited for its window")
        XCTAssertLessThan(try l.report(3)["windowWaitSeconds"] as? Double ?? 99, 1)
        let session = try l.sessions()[0]
        XCTAssertEqual(session["expected"] as? Int, 3)
        XCTAssertEqual(session["startReason"] as? String, "all 3 expected members asked")
        XCTAssertEqual(try l.counters()["sessionsStartedEarly"] as? Int, 1)
        XCTAssertTrue(l.harness.log("daemon.log").contains("all 3 expected members asked; starting in 200 ms"))
    }

    func testTwoImagesAtOnceGetTwoSessionsOnDistinctGroups() throws {
        let l = try makeLab(nodes: 4)
        let a = try l.addImage("compute", size: 24 << 20)
        let b = try l.addImage("storage", size: 16 << 20)
        try l.startDaemon()
        for i in 1...4 { try l.startClient(i, i <= 2 ? "compute" : "storage") }
        for i in 1...4 {
            try assertDelivered(l, i, i <= 2 ? "compute" : "storage", sha: i <= 2 ? a : b, path: "multicast")
        }
        let sessions = try l.sessions()
        XCTAssertEqual(sessions.count, 2)
        XCTAssertEqual(Set(sessions.map { $0["group"] as! String }).count, 2)
        XCTAssertEqual(Set(sessions.map { $0["image"] as! String }), ["compute", "storage"])
    }

    func testLateClientJoinsTheRunningSessionAndFinishes() throws {
        let l = try makeLab(nodes: 3)
        let sha = try l.addImage("compute", size: 64 << 20)
        // 200 Mbit/s: the session runs ~2.7 s, long enough to join it late.
        try l.startDaemon(["--rate", "200m", "--window", "1"])
        try l.startClient(1, "compute")
        try l.startClient(2, "compute")
        usleep(2_000_000)
        try l.startClient(3, "compute")
        for i in 1...3 { try assertDelivered(l, i, "compute", sha: sha, path: "multicast") }
        XCTAssertEqual(try l.report(3)["lateJoin"] as? Bool, true)
        XCTAssertEqual(try l.counters()["lateJoins"] as? Int, 1)
        XCTAssertEqual(try l.counters()["sessionsStarted"] as? Int, 1)
        // The pass went round the image again for it: nothing by unicast, (almost) nothing NAKed.
        XCTAssertEqual(try l.report(3)["unicastBytes"] as? Int, 0)
        let progress = try XCTUnwrap(try l.sessions()[0]["progress"] as? [String: Any])
        let sent = try XCTUnwrap(progress["counters"] as? [String: Any])
        XCTAssertEqual(sent["passes"] as? Int, 2, "\(sent)")
        XCTAssertEqual(sent["passExtensions"] as? Int, 1)
        XCTAssertGreaterThan(sent["carouselBlocks"] as? Int ?? 0, 0)
        XCTAssertLessThan(
            sent["repairSymbols"] as? Int ?? .max, (sent["dataSymbols"] as? Int ?? 0) / 20,
            "what it missed came by the carousel, not as repair")
    }

    func testNodeMulticastNeverReachesCompletesByFallbackOthersByMulticast() throws {
        let l = try makeLab(nodes: 3)
        let sha = try l.addImage("compute", size: 32 << 20)
        try l.startDaemon()
        try l.startClient(1, "compute")
        try l.startClient(2, "compute", ["--simulate-loss", "1", "--multicast-timeout", "2"])
        try l.startClient(3, "compute")
        try assertDelivered(l, 1, "compute", sha: sha, path: "multicast")
        try assertDelivered(l, 2, "compute", sha: sha, path: "unicast")
        try assertDelivered(l, 3, "compute", sha: sha, path: "multicast")
        XCTAssertEqual(try l.report(2)["unicastBytes"] as? Int, 32 << 20)
        XCTAssertTrue((try l.report(2)["fallbackReason"] as? String ?? "").contains("no session announced"))
    }

    func testMulticastLostMidwayFetchesOnlyTheMissingRanges() throws {
        let l = try makeLab(nodes: 2)
        let sha = try l.addImage("compute", size: 48 << 20)
        try l.startDaemon(["--rate", "160m", "--window", "0.5"])
        try l.startClient(1, "compute")
        try l.startClient(2, "compute")
        // After about a third of the image, node 2 stops receiving multicast (a switch port
        // that drops the group): it must fetch only what it is missing.
        usleep(1_500_000)
        try l.harness.lab.lab(["no-multicast", "2"])
        try assertDelivered(l, 1, "compute", sha: sha, path: "multicast")
        try assertDelivered(l, 2, "compute", sha: sha, path: "multicast+unicast")
        let r = try l.report(2)
        let viaMulticast = r["multicastBytes"] as! Int
        let viaUnicast = r["unicastBytes"] as! Int
        XCTAssertEqual(viaMulticast + viaUnicast, 48 << 20)
        XCTAssertGreaterThan(viaMulticast, 4 << 20)
        XCTAssertGreaterThan(viaUnicast, 4 << 20)
    }

    func testTenPercentLossOnEveryNodeAllByteExact() throws {
        let l = try makeLab(nodes: 4)
        let sha = try l.addImage("compute", size: 48 << 20)
        try l.startDaemon()
        for i in 1...4 { try l.startClient(i, "compute", ["--simulate-loss", "0.1@\(i)"]) }
        for i in 1...4 { try assertDelivered(l, i, "compute", sha: sha, path: "multicast") }
        for i in 1...4 {
            let drops = (try l.report(i)["receiver"] as! [String: Any])["drops"] as! [String: Any]
            XCTAssertGreaterThan(drops["injected-loss"] as! Int, 1_000, "node \(i) saw the loss")
        }
    }

    func testServerKilledMidTransferClientFailsClearlyWithinItsTimeout() throws {
        let l = try makeLab(nodes: 1)
        try l.addImage("compute", size: 64 << 20)
        try l.startDaemon(["--rate", "100m", "--window", "0.5"])
        try l.startClient(1, "compute", ["--server-timeout", "8"])
        usleep(1_500_000)
        try l.harness.lab.signal(l.daemonProcess!, SIGKILL)
        let t0 = Date()
        let status = l.wait(1, seconds: 40)
        XCTAssertEqual(status, 4, l.harness.log("client1.log"))
        XCTAssertLessThan(Date().timeIntervalSince(t0), 25)
        XCTAssertTrue(l.harness.log("client1.log").contains("cannot reach ql-mcastd"), l.harness.log("client1.log"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: l.output(1, "compute")))
        XCTAssertFalse(FileManager.default.fileExists(atPath: l.output(1, "compute") + ".partial"))
    }

    func testClientKilledMidTransferTheSessionGoesOnForTheOthers() throws {
        let l = try makeLab(nodes: 3)
        let sha = try l.addImage("compute", size: 48 << 20)
        try l.startDaemon(["--rate", "160m", "--window", "0.5"])
        for i in 1...3 { try l.startClient(i, "compute") }
        usleep(1_200_000)
        l.clients[2]!.terminate()
        try assertDelivered(l, 1, "compute", sha: sha, path: "multicast")
        try assertDelivered(l, 3, "compute", sha: sha, path: "multicast")
        // The session ends once the killed member is known silent.
        let deadline = Date().addingTimeInterval(20)
        var outcome = ""
        while Date() < deadline {
            outcome = (try l.sessions().first?["outcome"] as? String) ?? ""
            if !outcome.isEmpty { break }
            usleep(200_000)
        }
        XCTAssertTrue(outcome.hasPrefix("finished: 2/3 receivers complete"), outcome)
    }

    func testImageReplacedDuringASessionKeepsItsSnapshotNextSessionGetsTheNewOne() throws {
        let l = try makeLab(nodes: 3)
        let old = try l.addImage("compute", size: 48 << 20)
        try l.startDaemon(["--rate", "200m", "--window", "0.5"])
        try l.startClient(1, "compute")
        try l.startClient(2, "compute")
        usleep(1_000_000)
        // Publish a new version the way the image tooling does: write beside, rename over.
        try Lab.run(
            "/bin/sh",
            [
                "-c",
                "head -c \(40 << 20) /dev/urandom > \(l.images)/.compute.new && mv \(l.images)/.compute.new \(l.images)/compute.img",
            ])
        let new = try Lab.sha256(l.images + "/compute.img")
        try assertDelivered(l, 1, "compute", sha: old, path: "multicast")
        try assertDelivered(l, 2, "compute", sha: old, path: "multicast")
        try l.startClient(3, "compute")
        try assertDelivered(l, 3, "compute", sha: new, path: "multicast")
    }

    func testImageOverwrittenByCpOrInPlaceNeitherCrashesTheDaemonNorChangesARunningSession() throws {
        let l = try makeLab(nodes: 3)
        let old = try l.addImage("compute", size: 32 << 20)
        try l.startDaemon(["--window", "1.5", "--rate", "100m"])
        for i in 1...2 { try l.startClient(i, "compute") }
        usleep(500_000)
        // An administrator copies another file over the served one (cp truncates, then writes) and
        // someone patches it in place: a daemon mapping the file would die of SIGBUS.
        try Lab.run(
            "/bin/sh",
            [
                "-c",
                "head -c \(8 << 20) /dev/urandom > \(l.harness.path("other.img")) && cp \(l.harness.path("other.img")) \(l.images)/compute.img"
                    + " && head -c 1000 /dev/urandom | dd of=\(l.images)/compute.img bs=1 seek=5000 conv=notrunc status=none",
            ])
        let new = try Lab.sha256(l.images + "/compute.img")
        for i in 1...2 { try assertDelivered(l, i, "compute", sha: old, path: "multicast") }
        // The daemon lives on and serves what the file holds now to the next node.
        try l.startClient(3, "compute")
        try assertDelivered(l, 3, "compute", sha: new, path: "multicast")
    }

    func testUnionRootIsLaidOutFromTheVerifiedImage() throws {
        let l = try makeLab(nodes: 2)
        let sha = try l.addSquashfsImage("compute", motd: "welcome to the cluster\n")
        try l.startDaemon(["--window", "0.5"])
        for i in 1...2 { try l.startClient(i, "compute", ["--union", l.harness.path("n\(i)/root")]) }
        for i in 1...2 {
            try assertDelivered(l, i, "compute", sha: sha)
            let union = l.harness.path("n\(i)/root/union")
            XCTAssertEqual(
                try String(contentsOfFile: union + "/image/etc/motd", encoding: .utf8), "welcome to the cluster\n")
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: union + "/rw"), [])
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: union + "/chroot"), [])
        }
    }

    func testSighupReloadsTheImageListAndSigtermEndsTheDaemonCleanly() throws {
        let l = try makeLab(nodes: 1)
        try l.addImage("compute", size: 64 << 20)
        try l.startDaemon(["--rate", "80m", "--window", "0.3"])
        XCTAssertEqual(try l.status()["images"] as? [String], ["compute"])
        try l.addImage("gpu", size: 1 << 20)
        try l.harness.lab.signal(l.daemonProcess!, SIGHUP)
        usleep(500_000)
        XCTAssertTrue(
            l.harness.log("daemon.log").contains("reloaded the image list: 2 images"), l.harness.log("daemon.log"))
        try l.startClient(1, "compute", ["--server-timeout", "5"])
        usleep(1_500_000)
        try l.harness.lab.signal(l.daemonProcess!, SIGTERM)
        let t0 = Date()
        XCTAssertEqual(l.harness.wait(l.daemonProcess!, seconds: 20), 0, l.harness.log("daemon.log"))
        XCTAssertLessThan(Date().timeIntervalSince(t0), 10)
        let log = l.harness.log("daemon.log")
        XCTAssertTrue(log.contains("aborted (ql-mcastd is shutting down)"), log)
        XCTAssertTrue(log.contains("ql-mcastd stopped"), log)
        XCTAssertNotEqual(l.wait(1, seconds: 40), 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: l.output(1, "compute")))
    }

    func testTLSControlChannelAndAuthenticatedSessionEndToEnd() throws {
        let l = try makeLab(nodes: 2)
        let sha = try l.addImage("compute", size: 16 << 20)
        let ca = l.harness.path("ssl")
        try Lab.run(
            LabHarness.repositoryRoot.appendingPathComponent("scripts/cluster-ca").path, [ca, "ql-mcastd", l.server])
        try l.startDaemon(
            [
                "--tls-certificate", ca + "/ql-mcastd.crt", "--tls-key", ca + "/ql-mcastd.key", "--authenticate", "yes",
                "--window", "0.5",
            ],
            statusArguments: ["--ca", ca + "/ca.crt"])
        for i in 1...2 { try l.startClient(i, "compute", ["--ca", ca + "/ca.crt"]) }
        for i in 1...2 {
            try assertDelivered(l, i, "compute", sha: sha, path: "multicast")
            let drops = (try l.report(i)["receiver"] as! [String: Any])["drops"] as! [String: Any]
            XCTAssertEqual(drops["authentication-failed"] as? Int, 0)
        }
        XCTAssertTrue(l.harness.log("daemon.log").contains("TLS"), l.harness.log("daemon.log"))
    }
}
