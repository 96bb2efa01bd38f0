import Foundation
import ImageService
import LabSupport
import LabTestSupport
import Logging
import NodeRegistry
import Platform
import XCTest

@testable import Provisioning

/// `qluman provision` output, checked with the real tools: `gethostip -x` for Hostids,
/// `dnsmasq --test` for the configuration.
final class ProvisionerTests: XCTestCase {
    var dir = ""
    var root: Root { Root(dir) }

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "provision-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try RegistryBackend.prepare(root: dir)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func provisioner() -> Provisioner { Provisioner(root: root, log: Logger(root: root, name: "qluman", echo: false)) }

    func testHostidIsWhatGethostipPrints() throws {
        var addresses = ["192.168.52.11", "10.0.0.1", "172.16.254.3", "198.18.0.10", "1.2.3.4", "255.255.255.254"]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<40 {
            addresses.append((0..<4).map { _ in String(Int.random(in: 0...255, using: &rng)) }.joined(separator: "."))
        }
        let expected = try Lab.run("/usr/bin/gethostip", ["-x"] + addresses).split(separator: "\n").map(String.init)
        XCTAssertEqual(addresses.map(Provisioner.hostid), expected)
    }

    func testProvisionWritesTheTreeDefaultAndHostidLinksAndDnsmasqAcceptsIt() throws {
        let r = try Registry(root: root)
        try r.addGroup("compute")
        try r.putBootConfig(
            BootConfig(
                name: "compute", kernel: "qlustar/images/compute.vmlinuz", initrd: "qlustar/images/compute.initrd",
                append: "ql.server=192.168.52.1 ql.image=compute"))
        try r.putBootConfig(
            BootConfig(
                name: "debug", kernel: "qlustar/images/compute.vmlinuz", initrd: "qlustar/images/compute.initrd",
                append: "ql.server=192.168.52.1 ql.image=compute early-shell debug"))
        _ = try r.addNode(
            name: "beo-01", macs: ["52:54:00:00:00:01"], ip: "192.168.52.11", image: "compute", group: "compute")
        _ = try r.addNode(
            name: "beo-02", macs: ["52:54:00:00:00:02", "52:54:00:00:01:02"], ip: "192.168.52.12", image: "compute",
            group: nil)
        _ = try r.addNode(name: "beo-03", macs: ["52:54:00:00:00:03"], ip: "10.9.0.3/16", image: nil, group: "compute")
        try r.setGroupBootConfig("compute", "compute")
        _ = try r.setNode("beo-03", bootConfig: .some("debug"))
        let p = provisioner()
        let report = try p.provision(r)
        XCTAssertEqual(report.hostidLinks, ["C0A8340B": "configs/compute", "0A090003": "configs/debug"])
        XCTAssertEqual(report.networks, ["10.9.0.0/16", "192.168.52.0/24"])
        let fm = FileManager.default
        XCTAssertEqual(
            try fm.destinationOfSymbolicLink(atPath: p.tftpRoot + "/pxelinux.0"), "/usr/lib/PXELINUX/pxelinux.0")
        // UEFI firmware's loader in efi64/ (its directory is the prefix of what it asks for): its
        // module, its pxelinux.cfg tree and the qlustar link beside it; every file exists.
        XCTAssertEqual(
            try fm.destinationOfSymbolicLink(atPath: p.tftpRoot + "/efi64/syslinux.efi"),
            "/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi")
        XCTAssertEqual(
            try fm.destinationOfSymbolicLink(atPath: p.tftpRoot + "/efi64/ldlinux.e64"),
            "/usr/lib/syslinux/modules/efi64/ldlinux.e64")
        XCTAssertEqual(
            try fm.destinationOfSymbolicLink(atPath: p.tftpRoot + "/efi64/pxelinux.cfg"),
            dir + "/etc/qlustar/pxelinux.cfg.uefi")
        XCTAssertEqual(
            try fm.destinationOfSymbolicLink(atPath: p.tftpRoot + "/efi64/qlustar"), dir + "/var/lib/qlustar")
        // The same Hostid rule for both firmwares, and (no UEFI overrides here) the same content.
        for file in ["C0A8340B", "0A090003"] {
            XCTAssertEqual(
                try String(contentsOfFile: p.tftpRoot + "/efi64/pxelinux.cfg/" + file, encoding: .utf8)
                    .replacingOccurrences(of: " (UEFI)", with: ""),
                try String(contentsOfFile: p.tftpRoot + "/pxelinux.cfg/" + file, encoding: .utf8), file)
        }
        for loader in ["pxelinux.0", "ldlinux.c32", "efi64/syslinux.efi", "efi64/ldlinux.e64"] {
            XCTAssertTrue(fm.fileExists(atPath: p.tftpRoot + "/" + loader), "\(loader): its package is not installed")
        }
        XCTAssertEqual(
            try fm.destinationOfSymbolicLink(atPath: p.tftpRoot + "/pxelinux.cfg"), dir + "/etc/qlustar/pxelinux.cfg")
        XCTAssertEqual(try fm.destinationOfSymbolicLink(atPath: p.tftpRoot + "/qlustar"), dir + "/var/lib/qlustar")
        // What pxelinux reads through the TFTP root for beo-01 (its group's), beo-02 (default).
        XCTAssertTrue(
            try String(contentsOfFile: p.tftpRoot + "/pxelinux.cfg/C0A8340B", encoding: .utf8).contains(
                "APPEND console=ttyS0,115200 ql.server=192.168.52.1 ql.image=compute\n"))
        XCTAssertTrue(
            try String(contentsOfFile: p.tftpRoot + "/pxelinux.cfg/0A090003", encoding: .utf8).contains(
                "early-shell debug"))
        XCTAssertFalse(fm.fileExists(atPath: p.pxelinuxConfig + "/C0A8340C"))
        XCTAssertTrue(
            try String(contentsOfFile: p.pxelinuxConfig + "/default", encoding: .utf8).contains("LOCALBOOT 0"))
        XCTAssertEqual(
            try String(contentsOfFile: p.dhcpHosts, encoding: .utf8),
            "# generated by qluman provision: registered nodes only\n52:54:00:00:00:01,192.168.52.11,beo-01\n"
                + "52:54:00:00:00:02,52:54:00:00:01:02,192.168.52.12,beo-02\n52:54:00:00:00:03,10.9.0.3,beo-03\n")
        let conf = try String(contentsOfFile: p.dnsmasqConfig, encoding: .utf8)
        XCTAssertTrue(conf.contains("dhcp-ignore=tag:!known\n"), conf)
        // Option 93: x86-64 UEFI (7, 9) gets syslinux.efi, everything else pxelinux.0.
        XCTAssertTrue(
            conf.contains(
                "dhcp-match=set:efi-x86_64,option:client-arch,7\ndhcp-match=set:efi-x86_64,option:client-arch,9\n"
                    + "dhcp-boot=tag:efi-x86_64,efi64/syslinux.efi\ndhcp-boot=tag:!efi-x86_64,pxelinux.0\n"), conf)
        XCTAssertTrue(conf.contains("dhcp-leasefile=\(dir)/var/lib/qlustar/dnsmasq.leases\n"), conf)
        XCTAssertTrue(conf.contains("dhcp-range=192.168.52.0,static,255.255.255.0,12h\n"), conf)
        XCTAssertTrue(conf.contains("dhcp-range=10.9.0.0,static,255.255.0.0,12h\n"), conf)
        XCTAssertTrue(conf.contains("tftp-max=50\ndhcp-lease-max=1000\n"), "dnsmasq's defaults for 3 nodes: \(conf)")
        XCTAssertTrue(conf.contains("\ntftp-single-port\n"), "a repeated request restarts its transfer: \(conf)")
        let check = try Lab.run("/usr/sbin/dnsmasq", ["--test", "--conf-file=" + p.dnsmasqConfig])
        XCTAssertTrue(check.contains("syntax check OK"), check)

        // beo-01 back to default, a default defined: its link goes, default boots the image.
        _ = try r.setNode("beo-01", group: .some(nil))
        try r.putBootConfig(
            BootConfig(
                name: "default", kernel: "qlustar/images/compute.vmlinuz", initrd: "qlustar/images/compute.initrd",
                append: "ql.server=192.168.52.1 ql.image=compute"))
        let second = try p.provision(r)
        XCTAssertEqual(second.removedLinks, ["C0A8340B"])
        XCTAssertFalse(fm.fileExists(atPath: p.pxelinuxConfig + "/C0A8340B"))
        XCTAssertTrue(
            try String(contentsOfFile: p.pxelinuxConfig + "/default", encoding: .utf8).contains(
                "KERNEL qlustar/images/compute.vmlinuz"))
        XCTAssertFalse(try fm.contentsOfDirectory(atPath: p.pxelinuxConfig).contains { $0.contains(".tmp.") })
    }

    /// A node registered with another image than its boot configuration's boots that
    /// configuration for its own image: ql.image, kernel and initrd follow the node.
    func testANodesImageMakesAVariantOfItsBootConfiguration() throws {
        let r = try Registry(root: root)
        try r.putBootConfig(
            BootConfig(
                name: "default", kernel: "qlustar/images/compute.vmlinuz", initrd: "qlustar/images/compute.initrd",
                append: "ql.server=192.168.52.1 ql.image=compute debug"))
        try r.addNodes([
            NodeSpec(name: "beo-01", macs: ["52:54:00:00:00:01"], ip: "192.168.52.11", image: "compute"),
            NodeSpec(name: "beo-02", macs: ["52:54:00:00:00:02"], ip: "192.168.52.12", image: "compute-2"),
            NodeSpec(name: "beo-03", macs: ["52:54:00:00:00:03"], ip: "192.168.52.13"),
        ])
        let p = provisioner()
        XCTAssertEqual(try p.provision(r).hostidLinks, ["C0A8340C": "configs/default@compute-2"])
        let variant = try String(contentsOfFile: p.tftpRoot + "/pxelinux.cfg/C0A8340C", encoding: .utf8)
        XCTAssertTrue(variant.contains("KERNEL qlustar/images/compute-2.vmlinuz\n"), variant)
        XCTAssertTrue(variant.contains("INITRD qlustar/images/compute-2.initrd\n"), variant)
        XCTAssertTrue(variant.contains("APPEND console=ttyS0,115200 ql.server=192.168.52.1 ql.image=compute-2 debug\n"))
        XCTAssertEqual(
            Provisioner.variant(
                BootConfig(name: "x", kernel: "k/vmlinuz", initrd: "k/initrd", append: "quiet"), image: "a"),
            BootConfig(name: "x@a", kernel: "k/vmlinuz", initrd: "k/initrd", append: "quiet ql.image=a"))
        // Back to the configuration's image: link and variant go.
        _ = try r.setNodes(["beo-02"], image: .some("compute"))
        XCTAssertEqual(try p.provision(r).removedLinks, ["C0A8340C"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: p.pxelinuxConfig + "/configs/default@compute-2"))
    }

    /// The administrator may give UEFI nodes another kernel, initrd or parameters: only the UEFI
    /// tree changes, with the same Hostid links; an image variant swaps the UEFI paths too.
    func testABootConfigurationMayDifferPerFirmware() throws {
        let r = try Registry(root: root)
        try r.putBootConfig(
            BootConfig(
                name: "default", kernel: "qlustar/images/compute.vmlinuz", initrd: "qlustar/images/compute.initrd",
                append: "ql.image=compute", uefiKernel: "qlustar/images/compute-efi.vmlinuz",
                uefiAppend: "ql.image=compute efi=noruntime"))
        XCTAssertEqual(try r.bootConfigs().first?.uefiAppend, "ql.image=compute efi=noruntime")
        try r.addNodes([
            NodeSpec(name: "a", macs: ["52:54:00:00:00:0a"], ip: "192.168.52.21"),
            NodeSpec(name: "b", macs: ["52:54:00:00:00:0b"], ip: "192.168.52.22", image: "other"),
        ])
        let p = provisioner()
        XCTAssertEqual(try p.provision(r).hostidLinks, ["C0A83416": "configs/default@other"])
        let bios = try String(contentsOfFile: p.tftpRoot + "/pxelinux.cfg/default", encoding: .utf8)
        let uefi = try String(contentsOfFile: p.tftpRoot + "/efi64/pxelinux.cfg/default", encoding: .utf8)
        XCTAssertTrue(bios.contains("KERNEL qlustar/images/compute.vmlinuz\n") && bios.contains("ql.image=compute\n"))
        XCTAssertTrue(uefi.contains("KERNEL qlustar/images/compute-efi.vmlinuz\n"), uefi)
        XCTAssertTrue(uefi.contains("INITRD qlustar/images/compute.initrd\n"), uefi)
        XCTAssertTrue(uefi.contains("APPEND console=ttyS0,115200 ql.image=compute efi=noruntime\n"), uefi)
        let variant = try String(contentsOfFile: p.tftpRoot + "/efi64/pxelinux.cfg/C0A83416", encoding: .utf8)
        XCTAssertTrue(variant.contains("KERNEL qlustar/images/compute-efi.vmlinuz\n"), "not the image's own kernel")
        XCTAssertTrue(variant.contains("INITRD qlustar/images/other.initrd\n"), variant)
        XCTAssertTrue(variant.contains("ql.image=other efi=noruntime\n"), variant)
    }

    func testDnsmasqLimitsGrowWithTheNodesThatMayBootAtOnce() throws {
        XCTAssertTrue(Provisioner.limits(nodes: 0) == (50, 1000))
        XCTAssertTrue(Provisioner.limits(nodes: 4) == (50, 1000))
        XCTAssertTrue(Provisioner.limits(nodes: 100) == (1000, 1000))
        XCTAssertTrue(Provisioner.limits(nodes: 2_000) == (20_000, 4_000))
        let conf = provisioner().dnsmasqText(networks: ["10.1.0.0/16"], nodes: 2_000)
        XCTAssertTrue(conf.contains("# Sized for 2000 registered nodes"), conf)
        XCTAssertTrue(conf.contains("tftp-max=20000\ndhcp-lease-max=4000\n"), conf)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let file = dir + "/dnsmasq-2000.conf"
        try conf.write(toFile: file, atomically: true, encoding: .utf8)
        let check = try Lab.run("/usr/sbin/dnsmasq", ["--test", "--conf-file=" + file])
        XCTAssertTrue(check.contains("syntax check OK"), check)
    }

    func testBootConfigValuesThatWouldBreakPxelinuxAreRefused() throws {
        let r = try Registry(root: root)
        XCTAssertThrowsError(
            try r.putBootConfig(BootConfig(name: "x", kernel: "../etc/shadow", initrd: "i", append: "")))
        XCTAssertThrowsError(try r.putBootConfig(BootConfig(name: "x", kernel: "k k", initrd: "i", append: "")))
        XCTAssertThrowsError(
            try r.putBootConfig(BootConfig(name: "x", kernel: "k", initrd: "i", append: "a\nLABEL evil")))
        try r.putBootConfig(BootConfig(name: "x", kernel: "k", initrd: "i", append: ""))
        _ = try r.addNode(name: "n1", macs: ["52:54:00:00:00:01"], ip: "10.0.0.1", image: nil, group: nil)
        _ = try r.setNode("n1", bootConfig: .some("x"))
        XCTAssertThrowsError(try r.removeBootConfig("x")) { error in
            XCTAssertEqual((error as? QlustarError)?.message, "boot configuration x is used by n1")
        }
    }
}
