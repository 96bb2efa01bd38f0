import Foundation
import ImageService
import ImageTools
import LabSupport
import LabTestSupport
import Logging
import NodeConfig
import NodeRegistry
import Platform
import Provisioning
import XCTest

/// The initrd's /init and the image's /sbin/init.qlustar, run on the test hosts under a node
/// root with the real programs — dnsmasq and busybox udhcpc, ql-mcastd and ql-mcast-client with
/// the union mounted, qlumand and qluman-execd — and stand-ins only for what ends a boot
/// (switch_root, the image's init) and for udev, which would touch this machine's devices.
final class BootScriptsLabTests: XCTestCase {
    var harness: LabHarness?

    override func tearDown() {
        harness?.tearDown()
        harness = nil
    }

    private func mac(_ l: LabHarness, _ host: Int) throws -> String {
        try l.lab.exec(on: host, ["cat", "/sys/class/net/eth0/address"]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Stand-ins that append their name and arguments (and, for switch_root, what the new root
    /// holds) to `$QL_TRACE`.
    private func standIns(_ l: LabHarness, _ names: [String]) throws -> String {
        let dir = l.path("stand-ins")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for name in names {
            var body = "echo \"\(name) $*\" >> \"$QL_TRACE\"\n"
            if name == "switch_root" {
                body +=
                    "ls \"$1/sbin/init.qlustar\" >> \"$QL_TRACE\" && grep \" $1 overlay \" /proc/mounts | cut -d' ' -f2,3 >> \"$QL_TRACE\"\n"
            }
            FileManager.default.createFile(
                atPath: dir + "/" + name, contents: Data("#!/bin/sh\n\(body)exit 0\n".utf8),
                attributes: [.posixPermissions: 0o755])
        }
        return dir
    }

    private func startDHCP(_ l: LabHarness, _ registry: Registry, _ root: Root) throws {
        let provisioner = Provisioner(root: root, log: Logger(root: root, name: "qluman", echo: false))
        _ = try provisioner.provision(registry)
        try FileManager.default.createDirectory(atPath: root.path("/run/qlustar"), withIntermediateDirectories: true)
        _ = try l.start(
            on: 0,
            [
                "dnsmasq", "--keep-in-foreground", "--conf-file=" + provisioner.dnsmasqConfig,
                "--pid-file=" + provisioner.pidFile,
                "--log-facility=" + l.path("dnsmasq.log"),
            ], timeout: 180, log: "dnsmasq.out")
        let ready = Date().addingTimeInterval(10)
        while Date() < ready, !l.log("dnsmasq.log").contains("TFTP root is") { usleep(100_000) }
    }

    /// Runs a boot script on `host` under `root` with `cmdline`; returns its exit status.
    private func boot(
        _ l: LabHarness, _ host: Int, script: String, root: String, cmdline: String, standIns: String, log: String
    ) throws -> Int32 {
        let file = l.path("\(log).script")
        try script.write(toFile: file, atomically: true, encoding: .utf8)
        try cmdline.write(toFile: l.path("\(log).cmdline"), atomically: true, encoding: .utf8)
        let bin = try LabHarness.releaseBinary("ql-mcast-client").deletingLastPathComponent().path
        let p = try l.start(
            on: host,
            [
                "env", "QL_ROOT=" + root, "QL_CMDLINE=" + l.path("\(log).cmdline"),
                "QL_CONSOLE=" + l.path("\(log).console"),
                "QL_TRACE=" + l.path("\(log).trace"), "QL_SHELL=rescue-shell", "QL_INIT=init",
                "PATH=\(standIns):\(bin):/usr/sbin:/usr/bin:/sbin:/bin",
                // A node's host name is its own: the lease script's `hostname` must not rename this machine.
                "unshare", "--uts", "sh", file,
            ],
            timeout: 120, log: log)
        return l.wait(p, seconds: 130)
    }

    func testInitBringsUpTheBootNICFetchesTheImageMountsTheUnionAndSwitches() throws {
        let l = try LabHarness(hosts: 3, prefix: "qli")
        harness = l
        let head = Root(l.path("head"))
        let registry = try Registry(root: head)
        _ = try registry.addNode(
            name: "beo-01", macs: [try mac(l, 1)], ip: "198.18.0.111", image: "compute", group: nil)
        try startDHCP(l, registry, head)
        // The image: a tree with /sbin/init.qlustar, as qlustar-image builds it.
        let tree = l.path("tree")
        try FileManager.default.createDirectory(atPath: tree + "/sbin", withIntermediateDirectories: true)
        FileManager.default.createFile(
            atPath: tree + InitQlustarScript.path, contents: Data(InitQlustarScript.text.utf8),
            attributes: [.posixPermissions: 0o755])
        try FileManager.default.createDirectory(atPath: head.images, withIntermediateDirectories: true)
        try Lab.run("/usr/bin/mksquashfs", [tree, head.images + "/compute.img", "-noappend", "-quiet"])
        _ = try l.start(
            on: 0,
            [
                try LabHarness.releaseBinary("ql-mcastd").path, "--root", head.prefix, "--interface", l.address(0),
                "--window", "30",
            ],
            timeout: 180, log: "ql-mcastd.out")
        let stand = try standIns(l, ["switch_root", "rescue-shell"])
        let bootif = "01-" + (try mac(l, 1)).replacingOccurrences(of: ":", with: "-")
        let machine = try Lab.run("/bin/hostname", [])

        let status = try boot(
            l, 1, script: InitScript.text(try ImageName("compute")), root: l.path("n1"),
            cmdline:
                "BOOT_IMAGE=vmlinuz BOOTIF=\(bootif) ql.server=198.18.0.10 ql.image=compute ql.expect=1 early-shell",
            standIns: stand, log: "init1")
        let log =
            (try? String(contentsOfFile: l.path("n1") + "/var/log/qlustar/init.log", encoding: .utf8)) ?? l.log("init1")
        XCTAssertEqual(status, 0, log)
        XCTAssertTrue(log.contains("init: eth0: 198.18.0.111 by DHCP"), log)
        XCTAssertEqual(try Lab.run("/bin/hostname", []), machine, "the lease named the node, not this machine")
        XCTAssertTrue(log.contains("init: image 'compute' verified; union root in /union"), log)
        // ql.expect=1: the session started once this node asked, not after the 30 s window.
        XCTAssertTrue(l.log("ql-mcastd.out").contains("all 1 expected members asked; starting in 200 ms"))
        // switch_root got the merged union (overlayfs over the mounted image) and init.qlustar.
        let trace = l.log("init1.trace").split(separator: "\n").map(String.init)
        XCTAssertEqual(trace.first, "switch_root \(l.path("n1"))/union/root /sbin/init.qlustar")
        XCTAssertEqual(
            Array(trace.dropFirst()),
            [l.path("n1") + "/union/root/sbin/init.qlustar", l.path("n1") + "/union/root overlay"])
        XCTAssertTrue(
            try String(contentsOfFile: l.path("init1.console"), encoding: .utf8).contains(
                "init: image 'compute' verified"))

        // An unregistered NIC gets no lease: rounds of DHCP with a pause of 1–2 s (doubling, with
        // jitter) between them, the reason on the console, then the rescue shell.
        let stranger = try boot(
            l, 2, script: InitScript.text(try ImageName("compute")), root: l.path("n2"),
            cmdline: "ql.server=198.18.0.10 ql.image=compute ql.dhcp-retries=2", standIns: stand, log: "init2")
        XCTAssertEqual(stranger, 0)
        let console = try String(contentsOfFile: l.path("init2.console"), encoding: .utf8)
        XCTAssertNotNil(
            console.range(
                of: #"init: no DHCP answer on eth0 \(round 1 of 2\); again in [12]\.[0-9]{3} s"#,
                options: .regularExpression),
            console)
        XCTAssertTrue(
            console.contains("init: no DHCP answer on eth0 after 2 rounds (is this node registered?"), console)
        XCTAssertEqual(l.log("init2.trace"), "rescue-shell \n")
    }

    func testInitRetriesAFailingFetchThenStopsAtAShellWithTheReason() throws {
        let l = try LabHarness(hosts: 2, prefix: "qli")
        harness = l
        let stand = try standIns(l, ["switch_root", "rescue-shell"])
        // Static address from ip=, nothing listening on the server's port.
        let status = try boot(
            l, 1, script: InitScript.text(try ImageName("compute")), root: l.path("n1"),
            cmdline:
                "ip=198.18.0.51::198.18.0.1:24 ql.server=198.18.0.10:1 ql.retries=2 ql.server-timeout=1 ql.expect=all",
            standIns: stand, log: "init1")
        XCTAssertEqual(status, 0)
        let console = try String(contentsOfFile: l.path("init1.console"), encoding: .utf8)
        XCTAssertTrue(console.contains("init: eth0: 198.18.0.51 (ip= on the kernel command line)"), console)
        XCTAssertTrue(console.contains("init: ignoring ql.expect=all: not a number of nodes"), console)
        XCTAssertNotNil(
            console.range(
                of: #"init: fetching image 'compute' failed \(exit status 4\); retry 1 of 2 in [12]\.[0-9]{3} s"#,
                options: .regularExpression),
            console)
        XCTAssertTrue(
            console.contains("init: fetching image 'compute' from 198.18.0.10:1 failed 2 times (last exit status 4"),
            console)
        XCTAssertEqual(l.log("init1.trace"), "rescue-shell \n", "no switch_root after a failed fetch")
    }

    func testInitQlustarRunsUdevConfigureInitDThenInitInOrder() throws {
        let l = try LabHarness(hosts: 2, prefix: "qli")
        harness = l
        let head = Root(l.path("head"))
        let registry = try Registry(root: head)
        _ = try registry.addNode(name: "beo-01", macs: [try mac(l, 1)], ip: l.address(1), image: "compute", group: nil)
        _ = try registry.putConfig(
            .disk, name: "scratch",
            json: Array(
                #"{"disks":[{"device":"/dev/qlustar-absent","action":"format","fsType":"ext4","mountpoint":"/scratch"}]}"#
                    .utf8))
        try registry.assign(.disk, "scratch", to: .node("beo-01"))
        // A Root FS Customization with two init.d scripts: they run in order, after configure.
        let tree = head.path("/var/lib/qlustar/root-fs/site/lib/qlustar/init.d")
        try FileManager.default.createDirectory(atPath: tree, withIntermediateDirectories: true)
        for (name, text) in [
            ("20-second", "echo \"init.d 20 $(cat $QL_ROOT/etc/hostname)\" >> $QL_TRACE"),
            ("10-first", "echo 'init.d 10' >> $QL_TRACE"),
        ] {
            FileManager.default.createFile(
                atPath: tree + "/" + name, contents: Data("#!/bin/sh\n\(text)\n".utf8),
                attributes: [.posixPermissions: 0o755])
        }
        _ = try registry.putConfig(.rootFS, name: "site", json: Array("{}".utf8))
        try registry.assign(.rootFS, "site", to: .node("beo-01"))
        let ssl = head.path("/etc/qlustar/ssl")
        try Lab.run(
            LabHarness.repositoryRoot.appendingPathComponent("scripts/cluster-ca").path, [ssl, "qlumand", l.address(0)])
        let ntp = l.path("ntp")
        try FileManager.default.createDirectory(atPath: ntp, withIntermediateDirectories: true)
        try "allow all\nlocal stratum 8\ncmdport 0\npidfile \(ntp)/chronyd.pid\n".write(
            toFile: ntp + "/chrony.conf", atomically: true, encoding: .utf8)
        _ = try l.start(on: 0, ["chronyd", "-d", "-x", "-f", ntp + "/chrony.conf"], timeout: 180, log: "chronyd.out")
        _ = try l.start(
            on: 0,
            [
                try LabHarness.releaseBinary("qlumand").path, "--root", head.prefix, "--listen", l.address(0),
                "--tls-certificate",
                ssl + "/qlumand.crt", "--tls-key", ssl + "/qlumand.key",
            ], timeout: 180, log: "qlumand.out")
        // The node's root as the union presents it: os-release, the CA.
        let root = l.path("n1")
        try FileManager.default.createDirectory(atPath: root + "/etc/qlustar/ssl", withIntermediateDirectories: true)
        try "ID=debian\n".write(toFile: root + "/etc/os-release", atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: ssl + "/ca.crt", toPath: root + "/etc/qlustar/ssl/ca.crt")
        let stand = try standIns(l, ["systemd-udevd", "udevadm", "init", "rescue-shell"])
        let execd = try LabHarness.releaseBinary("qluman-execd").deletingLastPathComponent().path
        try FileManager.default.createSymbolicLink(
            atPath: stand + "/qluman-execd", withDestinationPath: execd + "/qluman-execd")

        let status = try boot(
            l, 1, script: InitQlustarScript.text, root: root,
            // Two heads, the first of which is not there: execd goes on at the second.
            cmdline: "ql.server=198.18.0.99:7799,198.18.0.10:7799 ql.image=compute early-shell",
            standIns: stand, log: "initq")
        let log = (try? String(contentsOfFile: root + "/var/log/qlustar/init.qlustar.log", encoding: .utf8)) ?? ""
        XCTAssertEqual(status, 0, log + l.log("initq"))
        XCTAssertEqual(
            l.log("initq.trace").split(separator: "\n").map(String.init),
            [
                "rescue-shell ", "systemd-udevd --daemon", "udevadm trigger --action=add",
                "udevadm settle --timeout=30", "udevadm control --exit",
                "init.d 10", "init.d 20 beo-01", "init ",
            ], log)
        XCTAssertTrue(log.contains("init.qlustar: early-shell: stopping here"), log)
        XCTAssertTrue(log.contains("init.qlustar: configured by qlumand"), log)
        let execdLog = try String(contentsOfFile: root + "/var/log/qlustar/qluman-execd.log", encoding: .utf8)
        XCTAssertTrue(
            execdLog.contains("disks: /dev/qlustar-absent is not present (or not a block device): skipped"), execdLog)
        // The order of step 5: the clock, the configuration, the disks, then the init.d scripts.
        let order = [
            "time: offset", "configured node beo-01", "disks: ", "init.d: running 10-first",
            "init.d: running 20-second",
        ]
        let positions = order.map { execdLog.range(of: $0)?.lowerBound }
        XCTAssertFalse(positions.contains(nil), execdLog)
        XCTAssertEqual(positions.compactMap { $0 }, positions.compactMap { $0 }.sorted(), execdLog)
        XCTAssertTrue(log.contains("init.qlustar: handing over to init"), log)
        XCTAssertTrue(log.contains("starting (server 198.18.0.99,198.18.0.10"), log)
        XCTAssertTrue(execdLog.contains("configured by 198.18.0.10:7800"), execdLog)
        XCTAssertEqual(try String(contentsOfFile: root + "/etc/hostname", encoding: .utf8), "beo-01\n")
    }
}
