import Foundation
import LabSupport
import LabTestSupport
import XCTest

/// `qluman power` against real BMCs: OpenIPMI's `ipmi_sim` on test hosts (scripts/bmc-sim), one
/// address where nothing answers, one node with the wrong password.
final class PowerLabTests: XCTestCase {
    private var harness: LabHarness?

    override func tearDown() {
        harness?.tearDown()
        harness = nil
    }

    /// `qluman ARGS` on the head host h0: exit status and what it printed.
    private func qluman(_ h: LabHarness, _ args: [String], root: String) throws -> (Int32, String) {
        let log = "qluman-\(UInt32.random(in: 0...UInt32.max)).out"
        let p = try h.start(
            on: 0, [try LabHarness.releaseBinary("qluman").path, "--root", root] + args, timeout: 60, log: log)
        let status = h.wait(p, seconds: 70)
        return (status, h.log(log))
    }

    func testPowerThroughIPMISimFoldsOutcomesAndBoundsEachBMC() throws {
        try Requirements.require(
            FileManager.default.isExecutableFile(atPath: "/usr/bin/ipmi_sim")
                && FileManager.default.isExecutableFile(atPath: "/usr/bin/ipmitool"),
            "needs ipmi_sim and ipmitool (scripts/setup installs openipmi and ipmitool)")
        let h = try LabHarness(hosts: 4, prefix: "qlp")
        harness = h
        let script = LabHarness.repositoryRoot.appendingPathComponent("scripts/bmc-sim").path
        for i in 1...3 {
            _ = try h.start(
                on: i,
                [script, h.path("bmc\(i)"), h.address(i), "623", "admin", "s3cret"] + (i == 3 ? ["--on"] : []),
                timeout: 120, log: "bmc\(i).out")
        }
        let root = h.path("head")
        let unreachable = h.address(7)  // in the lab's network, no host behind it
        for args in [
            ["node", "add", "beo-[1-3]", "--ip", "198.18.1.1/16", "--mac", "52:54:00:aa:00:01", "--bmc", h.address(1)],
            ["node", "add", "beo-4", "--ip", "198.18.1.4/16", "--mac", "52:54:00:aa:00:04", "--bmc", unreachable],
            ["node", "add", "beo-5", "--ip", "198.18.1.5/16", "--mac", "52:54:00:aa:00:05"],
        ] {
            let (status, out) = try qluman(h, args, root: root)
            XCTAssertEqual(status, 0, out)
        }
        try "s3cret\n".write(toFile: h.path("pw"), atomically: true, encoding: .utf8)
        try "wrong\n".write(toFile: h.path("bad"), atomically: true, encoding: .utf8)
        XCTAssertEqual(
            try qluman(h, ["power", "credentials", "--user", "admin", "--password-file", h.path("pw")], root: root).0, 0
        )
        let (_, listed) = try qluman(
            h, ["power", "credentials", "beo-2", "--user", "admin", "--password-file", h.path("bad")], root: root)
        XCTAssertFalse(listed.contains("s3cret") || listed.contains("wrong"), "passwords are never printed: \(listed)")
        let mode = try FileManager.default.attributesOfItem(atPath: root + "/etc/qlustar/bmc-credentials")[
            .posixPermissions]
        XCTAssertEqual(mode as? Int, 0o600)

        // The BMCs answer once ipmi_sim is up.
        let deadline = Date().addingTimeInterval(20)
        var first = (Int32(-1), "")
        while Date() < deadline {
            first = try qluman(h, ["power", "status", "beo-[1,3]", "--timeout", "2"], root: root)
            if first.0 == 0 { break }
            usleep(300_000)
        }
        XCTAssertEqual(first.1, "off: beo-1  on: beo-3\n")

        let started = Date()
        let (status, out) = try qluman(h, ["power", "status", "beo-[1-5]", "--timeout", "3"], root: root)
        XCTAssertLessThan(Date().timeIntervalSince(started), 8, "the BMCs are asked at once, each for 3 s at most")
        XCTAssertEqual(status, 1, out)
        XCTAssertTrue(
            out.hasPrefix("off: beo-1  on: beo-3  no BMC address: beo-5  timeout: beo-4  wrong credentials: beo-2\n"),
            out)
        XCTAssertTrue(out.contains("  beo-4: no answer within the timeout\n"), out)

        let (onStatus, on) = try qluman(h, ["power", "on", "beo-[1,3]"], root: root)
        XCTAssertEqual(onStatus, 0, on)
        XCTAssertEqual(on, "on: beo-[1,3]\n")
        XCTAssertEqual(h.log("bmc1/power").trimmingCharacters(in: .whitespacesAndNewlines), "1")
        XCTAssertEqual(try qluman(h, ["power", "off", "beo-3"], root: root).1, "off: beo-3\n")
        XCTAssertEqual(h.log("bmc3/power").trimmingCharacters(in: .whitespacesAndNewlines), "0")
        XCTAssertEqual(try qluman(h, ["power", "reset", "beo-1"], root: root).1, "reset: beo-1\n")
        XCTAssertEqual(h.log("bmc1/resets"), "reset\n")
        XCTAssertEqual(try qluman(h, ["power", "cycle", "beo-1"], root: root).1, "cycled: beo-1\n")

        let (_, json) = try qluman(h, ["power", "status", "beo-2", "--json"], root: root)
        let report = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        let node = (report?["nodes"] as? [[String: Any]])?.first
        XCTAssertEqual(node?["outcome"] as? String, "wrong credentials", json)
        XCTAssertEqual(node?["bmc"] as? String, h.address(2))
    }
}
