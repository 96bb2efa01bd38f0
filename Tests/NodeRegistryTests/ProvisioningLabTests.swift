import Foundation
import ImageService
import LabSupport
import LabTestSupport
import Logging
import NodeRegistry
import Platform
import Provisioning
import XCTest

/// The generated configuration served by the real dnsmasq on the head node (h0) of the test
/// hosts: a registered host gets its address by DHCP (dhclient) and its pxelinux configuration
/// by TFTP (tftp-hpa); an unregistered one gets no lease; a node registered while dnsmasq runs
/// is served after `provision` (SIGHUP).
final class ProvisioningLabTests: XCTestCase {
    var lab: LabHarness?

    override func tearDown() {
        lab?.tearDown()
        lab = nil
    }

    func mac(_ lab: LabHarness, _ host: Int) throws -> String { try lab.mac(host) }

    func lease(_ lab: LabHarness, _ host: Int, seconds: Int = 10) throws -> String? {
        try lab.dhcpLease(on: host, seconds: seconds)
    }

    func testRegisteredHostsGetTheirLeaseAndBootFileUnregisteredGetNothing() throws {
        let lab = try LabHarness(hosts: 4, prefix: "qlv")
        self.lab = lab
        let root = Root(lab.path("head"))
        let registry = try Registry(root: root)
        try registry.putBootConfig(
            BootConfig(
                name: "custom", kernel: "qlustar/images/compute.vmlinuz", initrd: "qlustar/images/compute.initrd",
                append: "ql.server=198.18.0.10 ql.image=compute"))
        _ = try registry.addNode(name: "n1", macs: [try mac(lab, 1)], ip: "198.18.0.111", image: "compute", group: nil)
        _ = try registry.setNode("n1", bootConfig: .some("custom"))
        _ = try registry.addNode(name: "n2", macs: [try mac(lab, 2)], ip: "198.18.0.112", image: "compute", group: nil)
        let provisioner = Provisioner(root: root, log: Logger(root: root, name: "qluman", echo: false))
        _ = try provisioner.provision(registry)
        try FileManager.default.createDirectory(atPath: root.path("/run/qlustar"), withIntermediateDirectories: true)
        _ = try lab.start(
            on: 0,
            [
                "dnsmasq", "--keep-in-foreground", "--conf-file=" + provisioner.dnsmasqConfig,
                "--pid-file=" + provisioner.pidFile, "--log-facility=" + lab.path("dnsmasq.log"),
            ],
            timeout: 120, log: "dnsmasq.out")
        let ready = Date().addingTimeInterval(10)
        while Date() < ready, !lab.log("dnsmasq.log").contains("TFTP root is") { usleep(100_000) }
        XCTAssertTrue(lab.log("dnsmasq.log").contains("DHCP, static leases only on 198.18.0.0"), lab.log("dnsmasq.log"))

        XCTAssertEqual(try lease(lab, 1), "198.18.0.111", lab.log("dhclient1.log"))
        XCTAssertEqual(try lease(lab, 2), "198.18.0.112", lab.log("dhclient2.log"))
        XCTAssertNil(try lease(lab, 3, seconds: 4), "an unregistered MAC gets no answer: \(lab.log("dhclient3.log"))")
        XCTAssertTrue(lab.log("dnsmasq.log").contains("ignored"), lab.log("dnsmasq.log"))

        // TFTP: n1 gets its custom configuration by Hostid; for n2, whose Hostid file does not
        // exist, pxelinux falls back to default.
        let n1 = lab.path("n1.cfg")
        try lab.lab.exec(
            on: 1,
            [
                "tftp", "198.18.0.10", "-m", "binary", "-c", "get",
                "pxelinux.cfg/" + Provisioner.hostid("198.18.0.111"), n1,
            ])
        XCTAssertTrue(
            try String(contentsOfFile: n1, encoding: .utf8).contains(
                "APPEND console=ttyS0,115200 ql.server=198.18.0.10 ql.image=compute"))
        let n2 = lab.path("n2.cfg")
        try lab.lab.exec(on: 2, ["tftp", "198.18.0.10", "-m", "binary", "-c", "get", "pxelinux.cfg/default", n2])
        XCTAssertTrue(try String(contentsOfFile: n2, encoding: .utf8).contains("LOCALBOOT 0"))
        let loader = lab.path("pxelinux.0")
        try lab.lab.exec(on: 2, ["tftp", "198.18.0.10", "-m", "binary", "-c", "get", "pxelinux.0", loader])
        XCTAssertEqual(try Lab.sha256(loader), try Lab.sha256("/usr/lib/PXELINUX/pxelinux.0"))

        // Registered while dnsmasq runs: provision signals it, and the host is served.
        _ = try registry.addNode(name: "n3", macs: [try mac(lab, 3)], ip: "198.18.0.113", image: nil, group: nil)
        XCTAssertTrue(try provisioner.provision(registry).reloaded)
        usleep(300_000)
        XCTAssertEqual(try lease(lab, 3), "198.18.0.113", lab.log("dhclient3.log"))
    }
}
