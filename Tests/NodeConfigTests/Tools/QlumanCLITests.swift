import Foundation
import LabSupport
import LabTestSupport
import XCTest

/// qluman's config, preview and remote commands as an administrator meets them: exact output,
/// one clear line for every mistake.
final class QlumanCLITests: XCTestCase {
    private var dir = ""

    override func setUp() {
        dir = NSTemporaryDirectory() + "qluman-cli-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    private func run(_ tool: String, _ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try ReleaseTool.run(tool, args, environment: ["QLUSTAR_ROOT": dir, "PATH": "/usr/bin:/bin"])
    }

    func testConfigMistakesAreOneLine() throws {
        let cases: [([String], String)] = [
            (
                ["config", "add", "nfs", "x", "--body", "{}"],
                "Error: no config class 'nfs'; classes: network, disk, network-fs, opensm, ipmi, chroot, ssh-keys, root-fs, misc, time, sssd, nis\n"
            ),
            (
                [
                    "config", "add", "network", "x", "--body",
                    #"{"interfaces":[{"name":"eth0","address":"boot","mtu":"big"}]}"#,
                ], "Error: network config 'x': interfaces[0].mtu: expected a number\n"
            ),
            (
                ["config", "add", "ipmi", "x", "--body", #"{"network":"10.2.0.1/16"}"#],
                "Error: ipmi config 'x': ipmi.network: 10.2.0.1/16 has host bits set; the network is 10.2.0.0/16\n"
            ),
            (
                ["config", "assign", "disk", "nothing", "--group", "g"],
                "Error: no disk config 'nothing' (qluman config list)\n"
            ),
            (["preview", "beo-99"], "Error: no node 'beo-99' is registered\n"),
            (
                ["exec", "beo-99", "--", "true"],
                "Error: connection: cannot reach the socket \(dir)/run/qlustar/qlumand.sock: No such file or directory\n"
            ),
        ]
        for (args, expected) in cases {
            let r = try run("qluman", args)
            XCTAssertNotEqual(r.status, 0, args.joined(separator: " "))
            XCTAssertEqual(r.stderr, expected, args.joined(separator: " "))
        }
        let usage = try run("qluman", ["config", "assign", "disk", "d", "--group", "g", "--node", "n"])
        XCTAssertTrue(usage.stderr.hasPrefix("Error: give exactly one of --group and --node\n"), usage.stderr)
        let execd = try run("qluman-execd", [])
        XCTAssertTrue(
            execd.stderr.hasPrefix("Error: say what to do: --configure, --init-disks, --run-initd or --daemon\n"),
            execd.stderr)
    }

    func testPreviewPrintsEveryFileWithOwnerModeAndOrigin() throws {
        for args in [
            ["group", "add", "compute"],
            ["node", "add", "beo-01", "--mac", "52:54:00:00:00:01", "--ip", "10.0.0.7/16", "--group", "compute"],
            ["config", "add", "opensm", "sm", "--body", #"{"enabled":true}"#],
            ["config", "assign", "opensm", "sm", "--group", "compute"],
        ] {
            let r = try run("qluman", args)
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        let r = try run("qluman", ["preview", "beo-01"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(
            r.stdout,
            """
            # qluman-execd --configure on beo-01 (debian): 4 entries, 0 commands

            == /etc/hostname  file 644 0:0  (node)
            beo-01

            == /etc/qlustar/options.d/node  file 644 0:0  (node)
            # Written by qluman-execd for node beo-01 from qlumand (node identity).
            # Generated at every boot: changes made here are lost.
            QLUMAN_NODE='beo-01'
            QLUMAN_IP='10.0.0.7'
            QLUMAN_PREFIX='16'
            QLUMAN_MACS='52:54:00:00:00:01'

            == /etc/qlustar/options.d/opensm  file 644 0:0  (opensm sm)
            # Written by qluman-execd for node beo-01 from qlumand (opensm sm).
            # Generated at every boot: changes made here are lost.
            QLUMAN_OPENSM='yes'

            == /etc/systemd/system/multi-user.target.wants/opensm.service -> /lib/systemd/system/opensm.service  link 0:0  (opensm sm)

            """)
    }
}
