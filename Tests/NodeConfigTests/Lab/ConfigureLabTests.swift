import Foundation
import ImageService
import LabSupport
import LabTestSupport
import NodeConfig
import Platform
import XCTest

/// qlumand and qluman-execd on the test hosts: release binaries, real TLS, identity by address.
final class ConfigureLabTests: XCTestCase {
    var lab: ConfigureLab?
    var fixture: ConfigFixture?

    override func tearDown() {
        lab?.tearDown()
        lab = nil
        fixture = nil
    }

    /// Every entry below `dir`, as relative paths.
    private func entries(_ dir: String) throws -> [String] {
        try Lab.run("/bin/sh", ["-c", "cd '\(dir)' && find . -mindepth 1 | sort"]).split(separator: "\n").map {
            String($0.dropFirst())
        }
    }

    /// `paths` below `dir`: type, mode, owner, group, link target.
    private func stat(_ dir: String, _ paths: [String]) throws -> String {
        try Lab.run(
            "/bin/sh",
            ["-c", "cd '\(dir)' && stat -c '%n %F %a %u %g %N' " + paths.map { "'.\($0)'" }.joined(separator: " ")])
    }

    func testNodeGetsExactlyWhatPreviewShowsAndRunsItsInitDScripts() throws {
        let l = try ConfigureLab(nodes: 2)
        lab = l
        let f = try ConfigFixture()
        fixture = f
        // The fixture's realistic group, in the lab head's registry.
        let key = try f.sshKey()
        try l.registry.addGroup("compute")
        for (cls, name) in try ConfigFixture.storeRealisticConfigs(in: l.registry, sshKey: key) {
            try l.registry.assign(cls, name, to: .group("compute"))
        }
        try l.register(1, "beo-01", group: "compute")
        try l.register(2, "beo-02", group: "compute")
        // A Root FS Customization with owners, modes, links, an empty dir and an init.d script.
        _ = try f.rootFSTree("site", head: l.head)
        _ = try l.registry.putConfig(.rootFS, name: "site", json: Array("{}".utf8))
        try l.registry.assign(.rootFS, "site", to: .node("beo-01"))
        try l.startNTP()
        try l.startDaemon()

        XCTAssertEqual(try l.execd(1, ["--configure", "--run-initd"]), 0, l.harness.log("execd1.out"))
        XCTAssertEqual(try l.execd(2, ["--configure"]), 0, l.harness.log("execd2.out"))

        // The preview, written by qluman on the head, equals what execd wrote, byte for byte.
        let preview = l.harness.path("preview1")
        _ = try l.qlumanCLI(["preview", "beo-01", "--dir", preview])
        let written = try entries(preview)
        XCTAssertTrue(written.contains("/etc/network/interfaces.d/qluman"))
        XCTAssertTrue(written.contains("/lib/qlustar/init.d/10-first"))
        XCTAssertTrue(written.contains("/etc/site/key"))
        // The preview directory has no image: its /lib is a directory, the node's a link to usr/lib.
        let files = written.filter { !$0.hasPrefix("/lib") }
        XCTAssertEqual(try stat(l.nodeRoot(1), files), try stat(preview, files))
        XCTAssertTrue(try stat(l.nodeRoot(1), ["/etc/site/key"]).hasSuffix("640 0 42 './etc/site/key'\n"))
        for path in files where FileSystem.isRegularFile(preview + path) {
            XCTAssertEqual(
                try FileSystem.readFile(l.nodeRoot(1) + path, limit: 1 << 20),
                try FileSystem.readFile(preview + path, limit: 1 << 20), path)
        }
        // The image's /lib -> usr/lib link was followed inside the node root.
        XCTAssertEqual(
            try String(contentsOfFile: l.nodeRoot(1) + "/usr/lib/qlustar/init.d/10-first", encoding: .utf8),
            "#!/bin/sh\necho hello from 10-first\n")
        XCTAssertEqual(
            try String(contentsOfFile: l.nodeRoot(1) + "/var/log/qlustar/init.d/10-first.log", encoding: .utf8),
            "hello from 10-first\n")
        // Each node got its own configuration only.
        XCTAssertEqual(try String(contentsOfFile: l.nodeRoot(2) + "/etc/hostname", encoding: .utf8), "beo-02\n")
        XCTAssertTrue(
            try String(contentsOfFile: l.nodeRoot(2) + "/etc/network/interfaces.d/qluman", encoding: .utf8).contains(
                "address 198.18.0.12/24"))
        XCTAssertFalse(
            FileManager.default.fileExists(atPath: l.nodeRoot(2) + "/usr/lib/qlustar/init.d/10-first"),
            "beo-02 has no root-fs")
        XCTAssertEqual(try l.registry.lastFacts("beo-01"), NodeFacts(osFamily: .debian, timeDaemon: .none))
        // Before anything else, the clock was checked against the head node's NTP server.
        let execdLog = try String(contentsOfFile: l.nodeRoot(1) + "/var/log/qlustar/qluman-execd.log", encoding: .utf8)
        XCTAssertTrue(execdLog.contains("time: offset "), execdLog)
        XCTAssertTrue(execdLog.contains(" s from 198.18.0.10 (stratum 8, delay "), execdLog)
        let s = try l.status()
        XCTAssertEqual(s["configured"] as? Int, 2)
        XCTAssertEqual(s["rootFSArchivesBuilt"] as? Int, 1)
    }

    func testStrangersWrongMACsAndWrongTokensAreRefusedAndTokensNeverLogged() throws {
        let l = try ConfigureLab(nodes: 3)
        lab = l
        try l.register(1, "beo-01", group: nil)
        try l.register(2, "beo-02", group: nil)
        let token = "enroll-\(UUID().uuidString)"
        try l.registry.setToken("beo-02", token: token)
        try l.startDaemon()

        // h3 is not registered; h1's address is registered to a MAC its port does not have (what
        // the kernel's neighbour table shows counts, so h1 cannot talk its way in by reporting
        // the registered MAC); h2 has no token, then a wrong one.
        let h1MAC = try l.mac(1)
        _ = try l.registry.setNode("beo-01", addMACs: ["52:54:00:99:99:99"], removeMACs: [h1MAC])
        XCTAssertEqual(try l.execd(3, ["--configure"]), 2, l.harness.log("execd3.out"))
        XCTAssertEqual(try l.execd(1, ["--configure", "--mac", "52:54:00:99:99:99"]), 2)
        _ = try l.registry.setNode("beo-01", addMACs: [h1MAC], removeMACs: ["52:54:00:99:99:99"])
        XCTAssertEqual(try l.execd(2, ["--configure"]), 2)
        let wrong = l.harness.path("wrong.token")
        try "enroll-wrong-\(UUID().uuidString)\n".write(toFile: wrong, atomically: true, encoding: .utf8)
        XCTAssertEqual(try l.execd(2, ["--configure", "--token-file", wrong]), 2)
        for i in 1...3 {
            XCTAssertFalse(
                FileManager.default.fileExists(atPath: l.nodeRoot(i) + "/etc/hostname"), "nothing written on node \(i)")
        }
        // The token where the node keeps it: accepted.
        try (token + "\n").write(toFile: l.nodeRoot(2) + QlumanDefaults.tokenFile, atomically: true, encoding: .utf8)
        XCTAssertEqual(try l.execd(2, ["--configure"]), 0, l.harness.log("execd2.out"))
        XCTAssertEqual(try l.execd(1, ["--configure"]), 0)

        let execdLog = try String(contentsOfFile: l.nodeRoot(3) + "/var/log/qlustar/qluman-execd.log", encoding: .utf8)
        XCTAssertTrue(
            execdLog.contains("qlumand refused this node: no node is registered with address 198.18.0.13"), execdLog)
        let s = try l.status()
        XCTAssertEqual(s["refused"] as? [String: Int], ["unknown-address": 1, "mac-mismatch": 1, "token": 2])
        XCTAssertEqual(s["configured"] as? Int, 2)
        let logs = [
            l.head.path("/var/log/qlustar/qlumand.log"), l.nodeRoot(2) + "/var/log/qlustar/qluman-execd.log",
            l.harness.path("qlumand.out"),
            l.harness.path("execd2.out"),
        ]
        for path in logs {
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            XCTAssertFalse(text.contains(token) || text.contains("enroll-wrong"), "a token appears in \(path)")
        }
        XCTAssertTrue(
            try String(contentsOfFile: logs[0], encoding: .utf8).contains("presented a wrong enrollment token"))
    }

    func testExecdTrustsOnlyTheClusterCAAndGarbageDoesNotStopQlumand() throws {
        let l = try ConfigureLab(nodes: 1)
        lab = l
        try l.register(1, "beo-01", group: nil)
        try l.startDaemon()
        // A CA of another cluster (and a certificate from it for the same address).
        let other = l.harness.path("other-ssl")
        try Lab.run(
            LabHarness.repositoryRoot.appendingPathComponent("scripts/cluster-ca").path,
            [other, "qlumand", l.harness.address(0)])
        XCTAssertEqual(try l.execd(1, ["--configure", "--ca", other + "/ca.crt"]), 2, l.harness.log("execd1.out"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: l.nodeRoot(1) + "/etc/hostname"))
        // Plain text and random bytes on the TLS port.
        for garbage in ["GET / HTTP/1.0\r\n\r\n", String(repeating: "\u{16}\u{03}\u{01}\u{ff}\u{ff}", count: 100)] {
            _ = try? l.harness.lab.exec(
                on: 1,
                [
                    "sh", "-c",
                    "printf '%s' '\(garbage.replacingOccurrences(of: "'", with: ""))' | timeout 3 bash -c 'cat > /dev/tcp/\(l.harness.address(0))/\(QlumanDefaults.port)'",
                ])
        }
        XCTAssertEqual(try l.execd(1, ["--configure"]), 0, l.harness.log("execd1.out"))
        let s = try l.status()
        XCTAssertGreaterThanOrEqual(s["tlsErrors"] as? Int ?? 0, 2)
        XCTAssertEqual(s["configured"] as? Int, 1)
    }
}
