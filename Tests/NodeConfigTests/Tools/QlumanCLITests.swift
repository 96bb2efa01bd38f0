import Foundation
import LabSupport
import LabTestSupport
import XCTest

/// qluman's config, preview and remote commands as an administrator meets them: exact output,
/// one clear line for every mistake.
final class QlumanCLITests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "qluman-cli-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try RegistryBackend.prepare(root: dir)
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

    /// A cluster registered the way an administrator does it: hostlists that count addresses up,
    /// shared options before the subcommand, a table exported, edited and imported again.
    func testHostlistsBulkAddExportImportAndLeadingOptions() throws {
        let plain = { (args: [String]) throws -> (status: Int32, stdout: String, stderr: String) in
            try ReleaseTool.run("qluman", args, environment: ["PATH": "/usr/bin:/bin"])
        }
        XCTAssertEqual(try plain(["--root", dir, "group", "add", "compute"]).status, 0)
        let add = try plain([
            "--root", dir, "node", "add", "beo-[001-100]", "--ip", "10.1.0.1/16", "--mac", "52:54:00:01:00:01",
            "--bmc", "10.2.0.1", "--group", "compute", "--image", "compute",
        ])
        XCTAssertEqual(add.stdout, "registered 100 nodes: beo-[001-100]\n", add.stderr)
        let list = try run("qluman", ["node", "list", "beo-[099-100]", "-o", "name,ip,mac,bmc,state"])
        XCTAssertEqual(
            list.stdout,
            """
            NAME     IP             MAC                BMC         STATE
            beo-099  10.1.0.99/16   52:54:00:01:00:63  10.2.0.99   unknown
            beo-100  10.1.0.100/16  52:54:00:01:00:64  10.2.0.100  unknown

            """)
        XCTAssertTrue(list.stderr.hasPrefix("qluman: qlumand did not answer"), list.stderr)
        let conflict = try run(
            "qluman", ["node", "add", "beo-[100-101]", "--ip", "10.1.0.100/16", "--mac", "52:54:00:09:00:01"])
        XCTAssertEqual(
            conflict.stderr,
            "Error: none of the 2 nodes was registered: 1 problem\n  node beo-100 is already registered\n")
        // Exported, removed, imported: the same table again.
        let csv = try run("qluman", ["node", "export"])
        let yaml = try run("qluman", ["node", "export", "beo-[001-010]", "--format", "yaml"])
        XCTAssertEqual(csv.stdout.split(separator: "\n").count, 101)
        try csv.stdout.write(toFile: dir + "/nodes.csv", atomically: true, encoding: .utf8)
        try yaml.stdout.write(toFile: dir + "/nodes.yml", atomically: true, encoding: .utf8)
        XCTAssertEqual(try run("qluman", ["node", "rm", "beo-[001-100]"]).stdout, "removed beo-[001-100]\n")
        XCTAssertEqual(
            try run("qluman", ["node", "import", dir + "/nodes.yml"]).stdout, "registered 10 nodes: beo-[001-010]\n")
        let again = try run("qluman", ["node", "import", dir + "/nodes.csv"])
        XCTAssertTrue(
            again.stderr.hasPrefix("Error: none of the 100 nodes was registered: 10 problems\n"), again.stderr)
        XCTAssertEqual(try run("qluman", ["node", "rm", "beo-[001-010]"]).status, 0)
        XCTAssertEqual(try run("qluman", ["node", "import", dir + "/nodes.csv"]).status, 0)
        XCTAssertEqual(try run("qluman", ["node", "export"]).stdout, csv.stdout)
        let set = try run("qluman", ["--json", "node", "set", "beo-[001-002]", "--image", "new"])
        XCTAssertEqual(set.status, 0, set.stderr)
        XCTAssertTrue(set.stdout.contains("\"image\" : \"new\""), set.stdout)
        let wrong = try run("qluman", ["node", "set", "beo-[001-002]", "--ip", "10.1.0.7"])
        XCTAssertTrue(
            wrong.stderr.hasPrefix(
                "Error: --ip, --add-mac, --remove-mac, --bmc and the token belong to one node, not 2"), wrong.stderr)
        let bad = try run("qluman", ["node", "add", "beo-[1-", "--ip", "10.0.0.1", "--mac", "52:54:00:00:00:01"])
        XCTAssertEqual(
            bad.stderr, "Error: hostlist 'beo-[1-': '[' is not closed at character 8\n  beo-[1-\n         ^\n")
    }

    /// The next boot in one step: registry and pxelinux files change together, or not at all.
    func testBootSetChangesTheRegistryAndThePXEFilesTogether() throws {
        let images = dir + "/var/lib/qlustar/images"
        try FileManager.default.createDirectory(atPath: images, withIntermediateDirectories: true)
        for file in ["compute.vmlinuz", "compute.initrd", "compute-2.vmlinuz", "compute-2.initrd"] {
            FileManager.default.createFile(atPath: images + "/" + file, contents: Data("x".utf8))
        }
        for args in [
            [
                "boot-config", "add", "default", "--kernel", "qlustar/images/compute.vmlinuz", "--initrd",
                "qlustar/images/compute.initrd", "--append", "ql.server=10.1.0.254 ql.image=compute",
            ],
            ["node", "add", "beo-[01-04]", "--ip", "10.1.0.1/16", "--mac", "52:54:00:01:00:01", "--image", "compute"],
        ] {
            let r = try run("qluman", args)
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        let set = try run("qluman", ["boot", "set", "beo-[01-02]", "--image", "compute-2"])
        XCTAssertEqual(
            set.stdout,
            "next boot of beo-[01-02]: image compute-2; provisioned 4 nodes (no dnsmasq running to reload)\n",
            set.stderr)
        let config = try String(contentsOfFile: dir + "/var/lib/tftpboot/pxelinux.cfg/0A010001", encoding: .utf8)
        XCTAssertTrue(config.contains("KERNEL qlustar/images/compute-2.vmlinuz\n"), config)
        XCTAssertTrue(config.contains("ql.image=compute-2\n"), config)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/var/lib/tftpboot/pxelinux.cfg/0A010003"))
        // An image that is not published: refused, and the registry stays as it was.
        let missing = try run("qluman", ["boot", "set", "beo-[03-04]", "--image", "compute-3"])
        XCTAssertEqual(
            missing.stderr,
            "Error: qlustar/images/compute-3.initrd is not published below the TFTP root (beo-[03-04] would boot it): "
                + "build or publish the image first (qlustar-image build IMAGE)\n")
        XCTAssertTrue(try run("qluman", ["node", "show", "beo-03"]).stdout.contains("image compute "))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/var/lib/tftpboot/pxelinux.cfg/0A010003"))
        let back = try run("qluman", ["--json", "boot", "set", "beo-[01-02]", "--image", "compute"])
        XCTAssertTrue(
            back.stdout.contains("\"links\" : {\n\n  }") || back.stdout.contains("\"links\" : {}"), back.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/var/lib/tftpboot/pxelinux.cfg/0A010001"))
    }
}
