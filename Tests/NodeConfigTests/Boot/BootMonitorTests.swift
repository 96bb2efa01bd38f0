import Foundation
import Logging
import NodeConfig
import NodeRegistry
import Platform
import XCTest

@testable import QlumanServer

/// The boot monitor on its own: dnsmasq's real log lines, execd's reports and ql-mcastd's
/// members become one boot per node, in stage order, stored and read back.
final class BootMonitorTests: XCTestCase {
    /// Lines as dnsmasq 2.90 writes them with `log-dhcp` (taken from a 200-node wave).
    static let pxeLines = """
        Dec  4 20:30:28 dnsmasq-dhcp[32740]: 518808168 available DHCP subnet: 198.18.0.0/255.255.255.0
        Dec  4 20:30:28 dnsmasq-dhcp[32740]: 518808168 vendor class: PXEClient:Arch:00000:UNDI:002001
        Dec  4 20:30:28 dnsmasq-dhcp[32740]: 518808168 DHCPDISCOVER(eth0) de:ee:02:18:31:71 
        Dec  4 20:30:28 dnsmasq-dhcp[32740]: 518808168 tags: known, eth0
        Dec  4 20:30:28 dnsmasq-dhcp[32740]: 518808168 DHCPOFFER(eth0) 198.18.0.17 de:ee:02:18:31:71 
        Dec  4 20:30:28 dnsmasq-dhcp[32740]: 518808168 sent size:  5 option: 12 hostname vn007
        Dec  4 20:30:28 dnsmasq-dhcp[32740]: 518808168 vendor class: PXEClient:Arch:00000:UNDI:002001
        Dec  4 20:30:28 dnsmasq-dhcp[32740]: 518808168 DHCPREQUEST(eth0) 198.18.0.17 de:ee:02:18:31:71 
        Dec  4 20:30:28 dnsmasq-dhcp[32740]: 518808168 DHCPACK(eth0) 198.18.0.17 de:ee:02:18:31:71 vn007
        Dec  4 20:30:29 dnsmasq-tftp[32740]: sent /srv/head/var/lib/tftpboot/pxelinux.0 to 198.18.0.17
        Dec  4 20:30:29 dnsmasq-tftp[32740]: file /srv/head/var/lib/tftpboot/pxelinux.cfg/C6120011 not found for 198.18.0.17
        Dec  4 20:30:29 dnsmasq-tftp[32740]: sent /srv/head/var/lib/tftpboot/pxelinux.cfg/default to 198.18.0.17
        Dec  4 20:30:30 dnsmasq-tftp[32740]: sent /srv/head/var/lib/tftpboot/qlustar/images/wave.vmlinuz to 198.18.0.17
        Dec  4 20:30:31 dnsmasq-tftp[32740]: sent /srv/head/var/lib/tftpboot/qlustar/images/wave.initrd to 198.18.0.17
        Dec  4 20:30:33 dnsmasq-dhcp[32740]: 77 available DHCP subnet: 198.18.0.0/255.255.255.0
        Dec  4 20:30:33 dnsmasq-dhcp[32740]: 77 DHCPDISCOVER(eth0) de:ee:02:18:31:71
        Dec  4 20:30:33 dnsmasq-dhcp[32740]: 77 DHCPACK(eth0) 198.18.0.17 de:ee:02:18:31:71 vn007
        """

    func testDnsmasqLinesAreReadAndEverythingElseIsNil() {
        let parsed = Self.pxeLines.split(separator: "\n").map(DnsmasqLogLine.parse)
        XCTAssertEqual(parsed[1], .vendorClass(xid: "518808168", "PXEClient:Arch:00000:UNDI:002001"))
        XCTAssertEqual(parsed[2], .dhcp(xid: "518808168", kind: "DISCOVER", mac: "de:ee:02:18:31:71", ip: nil))
        XCTAssertEqual(parsed[8], .dhcp(xid: "518808168", kind: "ACK", mac: "de:ee:02:18:31:71", ip: "198.18.0.17"))
        XCTAssertEqual(parsed[9], .tftpSent(file: "/srv/head/var/lib/tftpboot/pxelinux.0", ip: "198.18.0.17"))
        XCTAssertEqual(
            parsed[10], .tftpNotFound(file: "/srv/head/var/lib/tftpboot/pxelinux.cfg/C6120011", ip: "198.18.0.17"))
        XCTAssertNil(parsed[0])
        XCTAssertNil(parsed[3])
        XCTAssertNil(parsed[5])
        XCTAssertEqual(
            DnsmasqLogLine.parse("dnsmasq-tftp[1]: failed sending /t/vmlinuz to 10.0.0.5"),
            .tftpFailed(file: "/t/vmlinuz", ip: "10.0.0.5"))
        // Hostile or broken lines: nothing, never a trap.
        for junk in [
            "", "dnsmasq-dhcp[", "dnsmasq-dhcp[1]: ", "dnsmasq-dhcp[1]: 12 DHCPACK(",
            "dnsmasq-dhcp[1]: DHCPACK(eth0) zz",
            "dnsmasq-tftp[1]: sent a to b", "dnsmasq-tftp[1]: sent /x to 1.2.3.4.5",
            String(repeating: "[", count: 5_000),
            "dnsmasq-dhcp[1]: 99999999999999999999999 DHCPDISCOVER(eth0) 52:54:00:00:00:0g",
        ] {
            XCTAssertNil(DnsmasqLogLine.parse(Substring(junk)), junk)
        }
        XCTAssertEqual(DnsmasqLogLine.shortName("/a/tftpboot/pxelinux.cfg/default"), "pxelinux.cfg/default")
        XCTAssertEqual(DnsmasqLogLine.shortName("/a/tftpboot/qlustar/images/x.initrd"), "x.initrd")
    }

    func makeMonitor() throws -> (BootMonitor, Registry, String) {
        let dir = NSTemporaryDirectory() + "boot-monitor-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        let registry = try Registry(path: dir + "/qluman.db")
        _ = try registry.addNode(name: "vn007", macs: ["de:ee:02:18:31:71"], ip: "198.18.0.17", image: nil, group: nil)
        _ = try registry.addNode(name: "vn008", macs: ["de:ee:02:18:31:72"], ip: "198.18.0.18", image: nil, group: nil)
        let log = Logger(label: "test")
        return (BootMonitor(registry: registry, log: log), registry, dir)
    }

    /// Feeds the PXE lines, one second apart from `start`.
    func feed(_ monitor: BootMonitor, start: Double, _ reader: inout DnsmasqBootEvents) {
        for (i, line) in Self.pxeLines.split(separator: "\n").enumerated() {
            if let parsed = DnsmasqLogLine.parse(line) {
                reader.take(parsed, at: start + Double(i) * 0.5, into: monitor)
            }
        }
    }

    func testABootGoesThroughEveryStageInOrderAndASilentNodeIsListed() throws {
        let (monitor, registry, _) = try makeMonitor()
        var reader = DnsmasqBootEvents()
        let t0 = BootMonitor.now() - 100
        feed(monitor, start: t0, &reader)
        var status = monitor.status(BootStatusRequest(nodes: nil, stuckSeconds: 60), connected: [])
        var line = try XCTUnwrap(status.nodes.first { $0.node == "vn007" })
        XCTAssertEqual(line.state, "booting")
        XCTAssertEqual(line.stage, .initrd, "the initrd's own DHCP (no PXE vendor class) came last")
        XCTAssertTrue(line.stuck, "in initrd for about 92 s, over 60")
        XCTAssertEqual(line.retries, 0)
        XCTAssertEqual(status.nodes.first { $0.node == "vn008" }?.state, "silent", "registered, no sign of it")
        XCTAssertEqual(status.counts["silent"], 1)

        monitor.record("vn007", BootEvent(at: t0 + 20, stage: .image, what: "requested wave: session 9")) {
            $0.image = "wave"
            $0.session = "9"
        }
        monitor.update("vn007") { $0.progress = 0.5 }
        line = try XCTUnwrap(
            monitor.status(BootStatusRequest(nodes: ["vn007"], stuckSeconds: 600), connected: []).nodes.first)
        XCTAssertEqual(line.progress, 0.5)
        XCTAssertEqual(line.session, "9")
        XCTAssertFalse(line.stuck)
        for (i, (stage, what)) in [
            (BootStage.verified, "image verified"), (.configure, "init.qlustar: configuring"),
            (.initd, "configured: 12 entries"), (.system, "init.d done: 3 scripts"), (.up, "execd connected"),
        ].enumerated() {
            monitor.record("vn007", BootEvent(at: t0 + 30 + Double(i), stage: stage, what: what))
        }
        status = monitor.status(BootStatusRequest(nodes: ["vn007"], stuckSeconds: 60), connected: [])
        line = status.nodes[0]
        XCTAssertEqual(line.state, "up")
        XCTAssertEqual(line.stage, .up)
        // Every stage was reached, each no earlier than the one before.
        let times = BootStage.allCases.map { line.stages[$0.rawValue] }
        XCTAssertFalse(times.contains(nil), "\(line.stages)")
        XCTAssertEqual(times.map { $0! }, times.map { $0! }.sorted())

        // Stored, and read back by a monitor that starts later (qlumand restarted).
        monitor.store()
        let again = BootMonitor(registry: registry, log: Logger(label: "test"))
        XCTAssertEqual(
            again.status(BootStatusRequest(nodes: ["vn007"], stuckSeconds: 60), connected: []).nodes[0].state, "up")
        XCTAssertEqual(try registry.boots(of: "vn007").count, 1)
    }

    func testARepeatedRequestIsARetryAndTheFirmwareDhcpAfterUpStartsANewBoot() throws {
        let (monitor, registry, _) = try makeMonitor()
        var reader = DnsmasqBootEvents()
        let t0 = BootMonitor.now() - 50
        feed(monitor, start: t0, &reader)
        // pxelinux.0 sent again: the client retried.
        reader.take(
            .tftpSent(file: "/srv/head/var/lib/tftpboot/pxelinux.0", ip: "198.18.0.17"), at: t0 + 20, into: monitor)
        XCTAssertEqual(
            monitor.status(BootStatusRequest(nodes: ["vn007"], stuckSeconds: 60), connected: []).nodes[0].retries, 1)
        monitor.record("vn007", BootEvent(at: t0 + 21, stage: .up, what: "execd connected"))
        monitor.store()
        // The next boots: each firmware DISCOVER after up is a new boot; the registry keeps 5.
        for k in 1...6 {
            feed(monitor, start: t0 + 25 + Double(k), &reader)
            monitor.record("vn007", BootEvent(at: t0 + 25.5 + Double(k), stage: .up, what: "execd connected"))
            monitor.store()
        }
        XCTAssertEqual(monitor.counters.bootsStarted, 7)
        XCTAssertEqual(try registry.boots(of: "vn007").count, Registry.keptBoots)
        XCTAssertEqual(try registry.currentBoots()["vn007"]?.outcome, .up)
    }

    func testAFailureCarriesItsReasonAndAFallbackThatWorksGoesOn() throws {
        let (monitor, _, _) = try makeMonitor()
        let t0 = BootMonitor.now() - 10
        monitor.record("vn008", BootEvent(at: t0, stage: .dhcp, what: "DHCPDISCOVER (PXE)"), startsBoot: true)
        monitor.record("vn008", BootEvent(at: t0 + 1, stage: .tftp, what: "TFTP: x.initrd not found", failed: true))
        var line = monitor.status(BootStatusRequest(nodes: ["vn008"], stuckSeconds: 60), connected: []).nodes[0]
        XCTAssertEqual(line.state, "failed")
        XCTAssertEqual(line.lastError, "TFTP: x.initrd not found")
        monitor.record("vn008", BootEvent(at: t0 + 2, stage: .image, what: "requested wave: session 1"))
        line = monitor.status(BootStatusRequest(nodes: ["vn008"], stuckSeconds: 60), connected: []).nodes[0]
        XCTAssertEqual(line.state, "booting", "it went on past the failure")
        XCTAssertEqual(line.lastError, "TFTP: x.initrd not found", "the reason stays visible")
        // An event of a MAC or address nobody has is counted, not kept.
        var reader = DnsmasqBootEvents()
        reader.take(.tftpSent(file: "/t/pxelinux.0", ip: "198.18.9.9"), at: t0, into: monitor)
        XCTAssertGreaterThan(monitor.counters.unknownNode, 0)
    }

    func testTheLogIsFollowedAcrossRotationAndTruncationAndOverlongLinesAreSkipped() throws {
        let dir = NSTemporaryDirectory() + "follow-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/dnsmasq.log"
        var follower = LogFollower(path: path)
        XCTAssertTrue(follower.poll().lines.isEmpty, "no file yet")
        try "old line\n".write(toFile: path, atomically: false, encoding: .utf8)
        XCTAssertTrue(follower.poll().lines.isEmpty, "what was there before is not read")
        let h = try XCTUnwrap(FileHandle(forWritingAtPath: path))
        h.seekToEndOfFile()
        h.write(Data("one\ntw".utf8))
        XCTAssertEqual(follower.poll().lines, ["one"])
        h.write(Data("o\n".utf8) + Data(String(repeating: "x", count: 10_000).utf8) + Data("\nthree\n".utf8))
        let got = follower.poll()
        XCTAssertEqual(got.lines, ["two", "three"])
        XCTAssertEqual(got.tooLong, 1)
        try h.close()
        // logrotate: moved away, a new file in its place, read from its start.
        try FileManager.default.moveItem(atPath: path, toPath: path + ".1")
        try "four\n".write(toFile: path, atomically: false, encoding: .utf8)
        XCTAssertEqual(follower.poll().lines, ["four"])
        // Truncated in place (copytruncate; seen as the file shorter than what was read): from
        // the start again.
        try "5\n".write(toFile: path, atomically: false, encoding: .utf8)
        XCTAssertEqual(follower.poll().lines, ["5"])
        follower.close()
    }
}
