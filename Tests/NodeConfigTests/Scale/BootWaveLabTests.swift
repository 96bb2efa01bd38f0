import Foundation
import LabSupport
import LabTestSupport
import XCTest

/// The short form of `ql-bench boot` (docs/SCALE.md): a wave of virtual nodes (scripts/vnode) —
/// DHCP from the head node's dnsmasq, TFTP of pxelinux's files, the initrd's real /init as PID 1,
/// ql-mcast-client, switch_root, init.qlustar, qluman-execd, init.d, the image's init — against a
/// head node whose link is shaped to 1 Gbit/s, all driven by scripts/boot-wave.
final class BootWaveLabTests: XCTestCase {
    var work: String?

    override func tearDown() {
        if let work { try? FileManager.default.removeItem(atPath: work) }
        work = nil
    }

    func testTenVirtualNodesBootInOneMulticastSessionEveryStageInOrder() throws {
        try Requirements.root("virtual nodes need root (namespaces, mounts, tc)")
        let dir = "/dev/shm/qlt-wave-\(getpid())"
        work = dir
        let bin = try LabHarness.releaseBinary("ql-mcast-client").deletingLastPathComponent().path
        let machine = try Lab.run("/bin/hostname", [])
        let script = LabHarness.repositoryRoot.appendingPathComponent("scripts/boot-wave").path
        let output: String
        do {
            output = try Lab.run(
                "/usr/bin/timeout",
                [
                    "900", script, "--nodes", "10", "--work", dir, "--image-mib", "16", "--window", "60", "--faults",
                    "--screenshot", dir + "/boot-page.png",
                ],
                environment: ["QL_MCAST_BIN": bin, "QL_BOOT_PREFIX": "qlw"])
        } catch {
            let consoles = (try? Lab.run("/bin/sh", ["-c", "tail -n 5 \(dir)/nodes/*/console \(dir)/*.out"])) ?? ""
            XCTFail("boot-wave failed: \(error)\n\(consoles)")
            return
        }
        let summary = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/summary.json")))
                as? [String: Any])
        // vn009 asks for an image that is not there, vn010 gets no DHCP offer (--faults): the
        // other eight all finish, in one session.
        XCTAssertEqual(summary["complete"] as? Int, 8, output)
        XCTAssertEqual(summary["sessions"] as? Int, 1, "the whole wave in one multicast session: \(output)")
        // No retries: each node asked DHCP twice (firmware, /init) and made five TFTP transfers
        // (pxelinux.0, ldlinux.c32, its config, kernel, initrd); vn010 asked in vain, again.
        XCTAssertGreaterThanOrEqual(summary["dhcpDiscovers"] as? Int ?? 0, 9 * 2 + 2, output)
        XCTAssertLessThanOrEqual(summary["dhcpDiscovers"] as? Int ?? 99, 9 * 2 + 5, output)
        XCTAssertEqual(summary["tftpTransfers"] as? Int, 9 * 5, output)
        XCTAssertLessThanOrEqual(summary["headBytesRatio"] as? Double ?? 9, 1.15, "head bytes over the minimum")
        let failures = try XCTUnwrap(summary["failures"] as? [String: String])
        XCTAssertEqual(Set(failures.keys), ["vn009", "vn010"], "\(failures)")
        let nodes = try XCTUnwrap(summary["perNode"] as? [[String: Any]]).filter {
            !["vn009", "vn010"].contains($0["name"] as? String ?? "")
        }
        XCTAssertEqual(nodes.count, 8)
        let stages = [
            "power-on", "dhcp", "tftp-config", "tftp-done", "kernel", "init", "verified", "init.qlustar", "configured",
            "initd-done", "finished",
        ]
        for node in nodes {
            let times = try XCTUnwrap(node["stages"] as? [String: Double])
            XCTAssertEqual(Set(times.keys), Set(stages), "\(node["name"] ?? "?"): \(times)")
            XCTAssertEqual(node["inOrder"] as? Bool, true, "\(node["name"] ?? "?"): \(times)")
        }
        try checkBootMonitor(dir)
        try checkBootPage(dir)
        let console = try String(contentsOfFile: dir + "/nodes/vn007/console", encoding: .utf8)
        XCTAssertTrue(console.contains("vnode: init.d ran on vn007"), "configured, then its init.d: \(console)")
        XCTAssertEqual(try Lab.run("/bin/hostname", []), machine, "a virtual node's host name stays its own")
        XCTAssertEqual(
            try Lab.run("/bin/sh", ["-c", "ip netns list | grep -c '^qlw-' || true"]), "0\n", "no namespace left")
    }

    /// What qlumand's boot monitor saw (`qluman boot status --json --stuck 5`, taken by
    /// boot-wave at the end): the eight good nodes up, through every stage in order, in the wave's
    /// one session; the node without DHCP stuck in dhcp; the one whose image does not exist failed
    /// with ql-mcastd's reason.
    func checkBootMonitor(_ dir: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/boot-status.json"))
        let errors = (try? String(contentsOfFile: dir + "/boot-status.err", encoding: .utf8)) ?? ""
        let status = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any], errors)
        XCTAssertEqual(
            status["counts"] as? [String: Int], ["up": 8, "failed": 1, "dhcp": 1, "stuck": 1],
            "\(status["counts"] ?? "-")")
        let all = try XCTUnwrap(status["nodes"] as? [[String: Any]])
        XCTAssertEqual(all.count, 10)
        // The node that never got an offer: stuck in DHCP, its repeated DISCOVERs counted.
        let noDHCP = try XCTUnwrap(all.first { $0["node"] as? String == "vn010" })
        XCTAssertEqual(noDHCP["state"] as? String, "booting", "\(noDHCP)")
        XCTAssertEqual(noDHCP["stage"] as? String, "dhcp", "\(noDHCP)")
        XCTAssertEqual(noDHCP["stuck"] as? Bool, true, "\(noDHCP)")
        XCTAssertGreaterThanOrEqual(noDHCP["retries"] as? Int ?? 0, 1, "\(noDHCP)")
        // The node whose image request failed: failed in the image stage, with ql-mcastd's reason.
        let badImage = try XCTUnwrap(all.first { $0["node"] as? String == "vn009" })
        XCTAssertEqual(badImage["state"] as? String, "failed", "\(badImage)")
        XCTAssertEqual(badImage["stage"] as? String, "image", "\(badImage)")
        // The client's own last word (its exit status, its log's last lines) after ql-mcastd's refusal.
        let reason = badImage["lastError"] as? String ?? ""
        XCTAssertTrue(reason.hasPrefix("ql-mcast-client failed (exit status 2): "), reason)
        XCTAssertTrue(reason.contains("no image 'missing'"), reason)
        XCTAssertTrue(reason.contains("\n"), "with the client's last log lines: \(reason)")
        XCTAssertEqual(
            Set((badImage["stages"] as? [String: Double] ?? [:]).keys), ["dhcp", "tftp", "initrd", "image"])
        let lines = all.filter { !["vn009", "vn010"].contains($0["node"] as? String ?? "") }
        XCTAssertEqual(lines.count, 8)
        let order = ["dhcp", "tftp", "initrd", "image", "verified", "configure", "initd", "system", "up"]
        var sessions = Set<String>()
        for line in lines {
            let name = line["node"] as? String ?? "?"
            XCTAssertEqual(line["state"] as? String, "up", "\(name): \(line)")
            XCTAssertNil(line["lastError"], "\(name): \(line)")
            XCTAssertEqual(line["retries"] as? Int, 0, "\(name): \(line)")
            let stages = try XCTUnwrap(line["stages"] as? [String: Double], name)
            XCTAssertEqual(Set(stages.keys), Set(order), "\(name): every stage seen: \(stages)")
            let times = order.compactMap { stages[$0] }
            XCTAssertEqual(times, times.sorted(), "\(name): stages in order: \(stages)")
            XCTAssertLessThan(times.last ?? 999, 600, "\(name): booted within the wave: \(stages)")
            if let s = line["session"] as? String { sessions.insert(s) }
        }
        XCTAssertEqual(sessions.count, 1, "one session for the wave: \(sessions)")
    }

    /// The boot page as headless Chromium showed it at the end of the wave (boot-wave
    /// --screenshot): a tile for every node, in the state and stage the monitor has.
    func checkBootPage(_ dir: String) throws {
        let status = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/boot-status.json")))
                as? [String: Any])
        let text = try String(contentsOfFile: dir + "/boot-page.json", encoding: .utf8)
        let page = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data((text.split(separator: "\n").first ?? "").utf8))
                as? [String: Any], text)
        let tiles = try XCTUnwrap(page["tiles"] as? [String: [String: Any]])
        for line in try XCTUnwrap(status["nodes"] as? [[String: Any]]) {
            let name = line["node"] as? String ?? "?"
            let tile = try XCTUnwrap(tiles[name], "\(name) has a tile")
            XCTAssertEqual(tile["state"] as? String, line["state"] as? String, name)
            XCTAssertEqual(tile["stage"] as? String, line["stage"] as? String ?? "", name)
        }
        XCTAssertEqual(tiles.count, 10)
        XCTAssertGreaterThan(
            (try? FileManager.default.attributesOfItem(atPath: dir + "/boot-page.png")[.size] as? Int) ?? 0, 10_000)
        // Kept past the test (its work directory goes): the test artifact.
        let artifacts = LabHarness.repositoryRoot.appendingPathComponent(".build/test-artifacts").path
        try FileManager.default.createDirectory(atPath: artifacts, withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: artifacts + "/boot-wave-page.png")
        try FileManager.default.copyItem(atPath: dir + "/boot-page.png", toPath: artifacts + "/boot-wave-page.png")
    }
}
