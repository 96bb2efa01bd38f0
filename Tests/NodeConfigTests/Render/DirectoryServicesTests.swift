import Foundation
import ImageService
import LabSupport
import LabTestSupport
import NodeConfig
import NodeRegistry
import Platform
import XCTest

/// sssd, NIS, nsswitch and pam as configure writes them, checked by sssctl and pamtester; and
/// configure twice changes nothing the second time.
final class DirectoryServicesTests: XCTestCase {
    private var fixture: ConfigFixture?

    override func tearDown() { fixture = nil }

    static let debianNsswitch = """
        # /etc/nsswitch.conf (Debian 12)
        passwd:         files systemd
        group:          files systemd
        shadow:         files
        gshadow:        files

        hosts:          files dns
        networks:       files

        protocols:      db files
        services:       db files
        ethers:         db files
        rpc:            db files

        netgroup:       nis

        """

    private func plan(_ configs: [(ConfigClass, String)]) throws -> (FilePlan, String) {
        let f = try ConfigFixture()
        fixture = f
        let node = try f.registry.addNode(
            name: "beo-01", macs: ["52:54:00:00:00:01"], ip: "10.0.0.1/16", image: nil, group: nil)
        for (i, (cls, json)) in configs.enumerated() { try f.config(cls, "c\(i)", json, to: .node("beo-01")) }
        let plan = try NodeRenderer.plan(try f.registry.options(for: node), facts: .assumed, trees: [])
        let root = f.dir + "/node"
        // What a Debian image with sssd has: pam stacks, nsswitch.conf, the sssd snippet directory.
        try FileManager.default.createDirectory(atPath: root + "/etc/pam.d", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/etc/sssd/conf.d", withIntermediateDirectories: true)
        try Self.debianNsswitch.write(toFile: root + "/etc/nsswitch.conf", atomically: true, encoding: .utf8)
        try "@include common-account\nsession required pam_unix.so\n".write(
            toFile: root + "/etc/pam.d/sshd", atomically: true, encoding: .utf8)
        try "session required pam_unix.so\n".write(
            toFile: root + "/etc/pam.d/common-session", atomically: true, encoding: .utf8)
        return (plan, root)
    }

    private static let sssd =
        #"{"domains":[{"name":"example","provider":"ldap","uris":["ldaps://ldap1.example.com","ldap://ldap2.example.com"],"searchBase":"dc=example,dc=com","accessFilter":"(memberOf=cn=hpc,ou=groups,dc=example,dc=com)","caCertificate":"/etc/ssl/certs/example-ca.pem"},{"name":"corp","provider":"ad","adDomain":"corp.example.com"}],"createHomes":true}"#

    func testSssctlAcceptsTheGeneratedSssdConfWrittenPrivately() throws {
        let sssctl = try InstalledTool.path("sssctl", "sssd-tools")
        let (plan, root) = try plan([(.sssd, Self.sssd)])
        _ = try plan.write(below: root)
        let conf = root + "/etc/sssd/sssd.conf"
        let check = try Lab.run(sssctl, ["config-check", "-c", conf])
        XCTAssertTrue(check.contains("Issues identified by validators: 0"), check)
        XCTAssertEqual(try Lab.run("/usr/bin/stat", ["-c", "%a", conf]), "600\n")
        let text = try String(contentsOfFile: conf, encoding: .utf8)
        XCTAssertTrue(text.contains("ldap_access_filter = (memberOf=cn=hpc,ou=groups,dc=example,dc=com)\n"), text)
        XCTAssertTrue(text.contains("[domain/corp]\nid_provider = ad\n"), text)
    }

    func testNsswitchAndPamAreEditedOnceAndTheRestIsLeftAlone() throws {
        let (plan, root) = try plan([
            (.sssd, Self.sssd), (.nis, #"{"domain":"cluster","servers":["198.18.0.10","198.18.0.9"]}"#),
            (.misc, #"{"sshSlurmOnly":true}"#),
        ])
        _ = try plan.write(below: root)
        let files = [
            "/etc/nsswitch.conf", "/etc/pam.d/sshd", "/etc/pam.d/common-session", "/etc/yp.conf", "/etc/defaultdomain",
        ]
        let first = try files.map { try String(contentsOfFile: root + $0, encoding: .utf8) }
        _ = try plan.write(below: root)
        XCTAssertEqual(
            try files.map { try String(contentsOfFile: root + $0, encoding: .utf8) }, first,
            "configure twice: nothing changes")
        let expected = Self.debianNsswitch
            .replacingOccurrences(of: "passwd:         files systemd", with: "passwd:         files systemd sss nis")
            .replacingOccurrences(of: "group:          files systemd", with: "group:          files systemd sss nis")
            .replacingOccurrences(of: "shadow:         files\n", with: "shadow:         files sss nis\n")
        XCTAssertEqual(first[0], expected)
        XCTAssertEqual(
            first[1],
            "@include common-account\nsession required pam_unix.so\naccount required pam_exec.so quiet /usr/lib/qlustar/pam-slurm-job\n"
        )
        XCTAssertEqual(
            first[2], "session required pam_unix.so\nsession optional pam_mkhomedir.so skel=/etc/skel umask=0077\n")
        XCTAssertTrue(
            first[3].hasSuffix("domain cluster server 198.18.0.10\ndomain cluster server 198.18.0.9\n"), first[3])
        XCTAssertEqual(first[4], "cluster\n")
    }

    func testWithoutNisOrSssdNothingOfThemIsWritten() throws {
        let (plan, _) = try plan([(.misc, #"{"mailRelay":"head"}"#)])
        XCTAssertEqual(plan.edits, [])
        XCTAssertFalse(
            plan.entries.contains { ["/etc/yp.conf", "/etc/defaultdomain", "/etc/sssd/sssd.conf"].contains($0.path) })
    }

    /// The generated account rule in a real pam stack (pamtester): root may log in, a user
    /// without a running slurm job may not.
    func testSlurmAccountRuleAllowsRootAndRefusesOthers() throws {
        try Requirements.root("pamtester needs a service in /etc/pam.d")
        let pamtester = try InstalledTool.path("pamtester", "pamtester")
        let (plan, root) = try plan([(.misc, #"{"sshSlurmOnly":true}"#)])
        _ = try plan.write(below: root)
        let rule = try XCTUnwrap(plan.edits.first { $0.path == "/etc/pam.d/sshd" }).line
        let service = "qluman-test-\(getpid())"
        let servicePath = "/etc/pam.d/" + service
        // The node's rule, its script where this test wrote it.
        try "auth required pam_permit.so\n\(rule.replacingOccurrences(of: " /usr/lib/", with: " \(root)/usr/lib/"))\n"
            .write(toFile: servicePath, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: servicePath) }
        XCTAssertNoThrow(try Lab.run(pamtester, [service, "root", "acct_mgmt"]))
        XCTAssertThrowsError(try Lab.run(pamtester, [service, "nobody", "acct_mgmt"]))
    }
}
