import Foundation
import ImageService
import LabSupport
import LabTestSupport
import NodeConfig
import NodeRegistry
import Platform
import XCTest

/// The files configure generates, checked by the real programs that will read them.
final class GeneratedFilesTests: XCTestCase {
    private var fixture: ConfigFixture?

    override func tearDown() { fixture = nil }

    private func plan(family: OSFamily, timeDaemon: TimeDaemon = .chrony) throws -> (ConfigFixture, FilePlan, String) {
        let f = try ConfigFixture()
        fixture = f
        try f.realisticGroup(sshKey: try f.sshKey())
        let node = try f.registry.addNode(
            name: "beo-07", macs: ["52:54:00:00:00:07"], ip: "198.18.0.17/24", image: nil, group: "compute")
        let options = try f.registry.options(for: node)
        let plan = try NodeRenderer.plan(options, facts: NodeFacts(osFamily: family, timeDaemon: timeDaemon), trees: [])
        let out = f.dir + "/node"
        _ = try plan.write(below: out)
        return (f, plan, out)
    }

    func testIfupdownParsesTheInterfacesFile() throws {
        let ifquery = try InstalledTool.path("ifquery", "ifupdown")
        let (_, _, out) = try plan(family: .debian)
        let file = out + "/etc/network/interfaces.d/qluman"
        let listed = try Lab.run(ifquery, ["-i", file, "-a", "--list"]).split(separator: "\n").map(String.init)
        XCTAssertEqual(Set(listed), ["lo", "eth0", "eth1", "eth2", "bond0", "eth3.100", "ib0"])
        let bond = try Lab.run(ifquery, ["-i", file, "bond0"])
        XCTAssertTrue(bond.contains("address: 10.3.0.17"), bond)
        XCTAssertTrue(bond.contains("bond-slaves: eth1 eth2"), bond)
        XCTAssertTrue(bond.contains("mtu: 9000"), bond)
        let ib = try Lab.run(ifquery, ["-i", file, "ib0"])
        XCTAssertTrue(ib.contains("address: 10.1.0.17"), ib)
        XCTAssertTrue(try Lab.run(ifquery, ["-i", file, "eth0"]).contains("address: 198.18.0.17"))
        XCTAssertTrue(try Lab.run(ifquery, ["-i", file, "eth3.100"]).contains("vlan-raw-device: eth3"))
    }

    func testSystemdAcceptsTheMountUnits() throws {
        let analyze = try InstalledTool.path("systemd-analyze", "systemd")
        let (_, plan, out) = try plan(family: .debian)
        let units = plan.entries.map(\.path).filter { $0.hasSuffix(".mount") || $0.hasSuffix(".automount") }
            .filter { !$0.contains(".wants/") }
        XCTAssertEqual(
            Set(units.map { ($0 as NSString).lastPathComponent }),
            ["home.mount", "home.automount", "opt-site\\x2dapps.mount"])
        // verify checks each unit's name against its Where= and the syntax of every section.
        try Lab.run(
            "/bin/sh",
            [
                "-c",
                "cd '\(out)/etc/systemd/system' && '\(analyze)' verify "
                    + units.map { "'./\(($0 as NSString).lastPathComponent)'" }.joined(separator: " "),
            ])
        // Enabled: the automount (not its mount) and the plain mount are wanted by remote-fs.target.
        let wants = out + "/etc/systemd/system/remote-fs.target.wants"
        XCTAssertEqual(
            try FileManager.default.destinationOfSymbolicLink(atPath: wants + "/home.automount"),
            "/etc/systemd/system/home.automount")
        XCTAssertEqual(
            try FileManager.default.destinationOfSymbolicLink(atPath: wants + "/opt-site\\x2dapps.mount"),
            "/etc/systemd/system/opt-site\\x2dapps.mount")
        XCTAssertFalse(FileManager.default.fileExists(atPath: wants + "/home.mount"))
    }

    func testSSHReadsAuthorizedKeysWrittenPrivately() throws {
        try Requirements.root("checks owners of the written files")
        let keygen = try InstalledTool.path("ssh-keygen", "openssh-client")
        let (_, _, out) = try plan(family: .debian)
        let listing = try Lab.run(keygen, ["-l", "-f", out + "/root/.ssh/authorized_keys"])
        XCTAssertTrue(listing.contains("admin@head (ED25519)"), listing)
        XCTAssertEqual(try Lab.run("/usr/bin/stat", ["-c", "%a %u %g", out + "/root/.ssh"]), "700 0 0\n")
        XCTAssertEqual(
            try Lab.run("/usr/bin/stat", ["-c", "%a %u %g", out + "/root/.ssh/authorized_keys"]), "600 0 0\n")
    }

    func testRedHatNodesGetIfcfgFilesAShellReads() throws {
        let (_, plan, out) = try plan(family: .redhat)
        XCTAssertFalse(plan.entries.contains { $0.path.hasPrefix("/etc/network/") })
        let dir = out + "/etc/sysconfig/network-scripts"
        let read = { (name: String, keys: String) throws -> String in
            try Lab.run("/bin/bash", ["-c", "set -eu; . '\(dir)/ifcfg-\(name)'; echo \(keys)"])
        }
        XCTAssertEqual(
            try read("eth0", "$DEVICE $BOOTPROTO $IPADDR $PREFIX $GATEWAY $DNS1 $DOMAIN"),
            "eth0 none 198.18.0.17 24 198.18.0.1 198.18.0.1 cluster.local\n")
        XCTAssertEqual(
            try read("bond0", "$TYPE $IPADDR/$PREFIX $MTU \"$BONDING_OPTS\""),
            "Bond 10.3.0.17/16 9000 mode=802.3ad miimon=100\n")
        XCTAssertEqual(try read("eth1", "$MASTER $SLAVE"), "bond0 yes\n")
        XCTAssertEqual(try read("eth3.100", "$VLAN $PHYSDEV $IPADDR"), "yes eth3 10.4.0.17\n")
        XCTAssertEqual(try read("ib0", "$TYPE $CONNECTED_MODE $MTU"), "InfiniBand yes 65520\n")
    }

    func testOptionFilesAreShellAndIPMIFollowsTheHostNumber() throws {
        let (_, plan, out) = try plan(family: .debian)
        let options = out + "/etc/qlustar/options.d"
        let values = try Lab.run(
            "/bin/bash",
            [
                "-c",
                "set -eu; for f in node ipmi opensm chroot misc; do . '\(options)/'$f; done; echo $QLUMAN_NODE $QLUMAN_IPMI_ADDRESS $QLUMAN_IPMI_NETMASK $QLUMAN_OPENSM $QLUMAN_OPENSM_PRIORITY $QLUMAN_CHROOT $QLUMAN_MAIL_RELAY $QLUMAN_SSH_SLURM_ONLY",
            ])
        XCTAssertEqual(values, "beo-07 10.2.0.17 255.255.0.0 yes 10 devel head yes\n")
        let disks = try String(contentsOfFile: options + "/disk-config", encoding: .utf8)
        XCTAssertTrue(
            disks.hasSuffix(
                "# DEVICE ACTION FSTYPE MOUNTPOINT OPTIONS\n/dev/sdb format xfs /scratch -\n/dev/sdc keep swap - -\n"),
            disks)
        XCTAssertEqual(try DiskConfig.parse(disks).disks.map(\.device), ["/dev/sdb", "/dev/sdc"])
        XCTAssertEqual(try String(contentsOfFile: out + "/etc/hostname", encoding: .utf8), "beo-07\n")
        XCTAssertEqual(
            try FileManager.default.destinationOfSymbolicLink(
                atPath: out + "/etc/systemd/system/multi-user.target.wants/opensm.service"),
            "/lib/systemd/system/opensm.service")
        XCTAssertEqual(
            plan.actions.map { $0.arguments.joined(separator: " ") },
            [
                "lan set 1 ipsrc static", "lan set 1 ipaddr 10.2.0.17", "lan set 1 netmask 255.255.0.0",
                "lan set 1 defgw ipaddr 10.2.0.1",
            ])
    }

    func testChronyParsesTheTimeConfigurationAndTimesyncdGetsItsOwn() throws {
        let chronyd = try InstalledTool.path("chronyd", "chrony")
        let (_, _, out) = try plan(family: .debian, timeDaemon: .chrony)
        let file = out + "/etc/chrony/conf.d/qluman.conf"
        let parsed = try Lab.run(chronyd, ["-p", "-f", file])
        XCTAssertTrue(parsed.contains("server 198.18.0.10 iburst"), parsed)
        XCTAssertTrue(parsed.contains("makestep 1 3"), parsed)
        let (_, timesyncd, other) = try plan(family: .debian, timeDaemon: .timesyncd)
        XCTAssertFalse(timesyncd.entries.contains { $0.path.hasPrefix("/etc/chrony") })
        XCTAssertTrue(
            try String(contentsOfFile: other + "/etc/systemd/timesyncd.conf.d/qluman.conf", encoding: .utf8).hasSuffix(
                "[Time]\nNTP=198.18.0.10\n"))
        let (_, none, _) = try plan(family: .debian, timeDaemon: .none)
        XCTAssertFalse(none.entries.contains { $0.origin.hasPrefix("time") })
    }

    func testAHostNumberThatDoesNotFitANetworkIsAClearError() throws {
        let f = try ConfigFixture()
        try f.config(.ipmi, "small", #"{"network":"10.2.0.0/28"}"#)
        let node = try f.registry.addNode(
            name: "beo-99", macs: ["52:54:00:00:00:99"], ip: "198.18.0.99/24", image: nil, group: nil)
        try f.registry.assign(.ipmi, "small", to: .node("beo-99"))
        XCTAssertThrowsError(try NodeRenderer.plan(try f.registry.options(for: node), facts: .assumed, trees: [])) {
            error in
            XCTAssertEqual(
                (error as! QlustarError).message,
                "node beo-99: host number 99 of its boot address does not fit network 10.2.0.0/28")
        }
    }
}
