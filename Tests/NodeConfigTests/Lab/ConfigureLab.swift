import Foundation
import ImageService
import LabSupport
import LabTestSupport
import NodeConfig
import NodeRegistry
import Platform

/// A head node (h0) running the release qlumand with a cluster CA, and nodes h1… whose
/// qluman-execd configures a node root each (work/nI), on the test hosts.
final class ConfigureLab {
    let harness: LabHarness
    let head: Root
    let registry: Registry
    let ssl: String
    let qlumand: URL
    let execd: URL
    let qluman: URL
    private var daemon: Process?

    init(nodes: Int) throws {
        harness = try LabHarness(hosts: nodes + 1, prefix: "qlc")
        qlumand = try LabHarness.releaseBinary("qlumand")
        execd = try LabHarness.releaseBinary("qluman-execd")
        qluman = try LabHarness.releaseBinary("qluman")
        head = Root(harness.path("head"))
        registry = try Registry(root: head)
        ssl = head.path("/etc/qlustar/ssl")
        try Lab.run(
            LabHarness.repositoryRoot.appendingPathComponent("scripts/cluster-ca").path,
            [ssl, "qlumand", harness.address(0)])
        for i in 1...nodes { try makeNodeRoot(i) }
    }

    func nodeRoot(_ i: Int) -> String { harness.path("n\(i)") }

    private func makeNodeRoot(_ i: Int) throws { try Self.makeNodeRoot(nodeRoot(i), ca: ssl + "/ca.crt") }

    /// A node's root as the image leaves it: os-release, merged /usr, the cluster CA.
    static func makeNodeRoot(_ r: String, ca: String) throws {
        try FileManager.default.createDirectory(atPath: r + "/etc/qlustar/ssl", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: r + "/usr/lib", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: r + "/lib", withDestinationPath: "usr/lib")
        try "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n".write(
            toFile: r + "/etc/os-release", atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: ca, toPath: r + QlumanDefaults.ca)
    }

    /// Host `i`'s MAC on the lab (what execd reports).
    func mac(_ i: Int) throws -> String { try harness.mac(i) }

    func register(_ i: Int, _ name: String, group: String?) throws {
        _ = try registry.addNode(
            name: name, macs: [try mac(i)], ip: harness.address(i) + "/24", image: nil, group: group)
    }

    /// An NTP server on the head node (chronyd, told not to touch this machine's clock).
    func startNTP() throws {
        let dir = harness.path("ntp")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "allow all\nlocal stratum 8\ncmdport 0\npidfile \(dir)/chronyd.pid\n".write(
            toFile: dir + "/chrony.conf", atomically: true, encoding: .utf8)
        _ = try harness.start(
            on: 0, ["chronyd", "-d", "-x", "-f", dir + "/chrony.conf"], timeout: 300, log: "chronyd.out")
    }

    func startDaemon() throws {
        daemon = try harness.start(
            on: 0,
            [
                qlumand.path, "--root", head.prefix, "--listen", harness.address(0), "--tls-certificate",
                ssl + "/qlumand.crt",
                "--tls-key", ssl + "/qlumand.key",
            ], timeout: 300, log: "qlumand.out")
    }

    /// Runs `qluman-execd ARGS --root nI --server h0` on host `i`; returns its exit status.
    @discardableResult
    func execd(_ i: Int, _ arguments: [String], root: String? = nil, log: String? = nil) throws -> Int32 {
        let p = try harness.start(
            on: i,
            [execd.path, "--root", root ?? nodeRoot(i), "--server", harness.address(0), "--server-timeout", "20"]
                + arguments,
            timeout: 60, log: log ?? "execd\(i).out")
        return harness.wait(p, seconds: 70)
    }

    /// `qluman ARGS --root head` on the machine (the registry is a file on the head's root).
    func qlumanCLI(_ arguments: [String]) throws -> String {
        try Lab.run(qluman.path, arguments + ["--root", head.prefix])
    }

    func status() throws -> [String: Any] {
        let out = try harness.lab.exec(
            on: 0, [qlumand.path, "status", "--server", harness.address(0), "--ca", ssl + "/ca.crt", "--json"])
        return try JSONSerialization.jsonObject(with: Data(out.utf8)) as! [String: Any]
    }

    func tearDown() { harness.tearDown() }
}
