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
                ["900", script, "--nodes", "10", "--work", dir, "--image-mib", "16", "--window", "60"],
                environment: ["QL_MCAST_BIN": bin, "QL_BOOT_PREFIX": "qlw"])
        } catch {
            let consoles = (try? Lab.run("/bin/sh", ["-c", "tail -n 5 \(dir)/nodes/*/console \(dir)/*.out"])) ?? ""
            XCTFail("boot-wave failed: \(error)\n\(consoles)")
            return
        }
        let summary = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/summary.json")))
                as? [String: Any])
        XCTAssertEqual(summary["complete"] as? Int, 10, output)
        XCTAssertEqual(summary["sessions"] as? Int, 1, "the whole wave in one multicast session: \(output)")
        // No retries: each node asked DHCP twice (firmware, /init) and made five TFTP transfers
        // (pxelinux.0, ldlinux.c32, its config, kernel, initrd).
        XCTAssertEqual(summary["dhcpDiscovers"] as? Int, 20, output)
        XCTAssertEqual(summary["tftpTransfers"] as? Int, 50, output)
        XCTAssertLessThanOrEqual(summary["headBytesRatio"] as? Double ?? 9, 1.15, "head bytes over the minimum")
        let nodes = try XCTUnwrap(summary["perNode"] as? [[String: Any]])
        XCTAssertEqual(nodes.count, 10)
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
        let console = try String(contentsOfFile: dir + "/nodes/vn007/console", encoding: .utf8)
        XCTAssertTrue(console.contains("vnode: init.d ran on vn007"), "configured, then its init.d: \(console)")
        XCTAssertEqual(try Lab.run("/bin/hostname", []), machine, "a virtual node's host name stays its own")
        XCTAssertEqual(
            try Lab.run("/bin/sh", ["-c", "ip netns list | grep -c '^qlw-' || true"]), "0\n", "no namespace left")
    }

    /// What qlumand's boot monitor saw (`qluman boot status --json`, taken by boot-wave at the
    /// end): every node up, through every stage in order, in the wave's one session, with
    /// plausible times.
    func checkBootMonitor(_ dir: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/boot-status.json"))
        let errors = (try? String(contentsOfFile: dir + "/boot-status.err", encoding: .utf8)) ?? ""
        let status = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any], errors)
        XCTAssertEqual(status["counts"] as? [String: Int], ["up": 10], "\(status["counts"] ?? "-")")
        let lines = try XCTUnwrap(status["nodes"] as? [[String: Any]])
        XCTAssertEqual(lines.count, 10)
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
}
