import ClusterAdmin
import Foundation
import NodeRegistry
import Platform
import XCTest

final class PowerControlTests: XCTestCase {
    var dir = ""

    override func setUp() { dir = NSTemporaryDirectory() + "power-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func testANodesOwnCredentialsWinOverTheDefault() {
        var c = BMCCredentials()
        c.set(.init(hosts: nil, user: "admin", password: "a", cipher: 3))
        c.set(.init(hosts: "beo-[010-020]", user: "ops", password: "b", cipher: 17))
        c.set(.init(hosts: nil, user: "root", password: "c", cipher: 3))
        XCTAssertEqual(c.entries.count, 2, "the default is replaced, not added")
        XCTAssertEqual(c.entry(for: "beo-015")?.user, "ops")
        XCTAssertEqual(c.entry(for: "beo-021")?.user, "root")
        XCTAssertNil(BMCCredentials().entry(for: "beo-001"))
    }

    func testCredentialsReadableByOthersAreRefused() throws {
        let root = Root(dir)
        var c = BMCCredentials()
        c.set(.init(hosts: nil, user: "admin", password: "secret", cipher: 3))
        try c.save(root: root)
        let file = root.path(BMCCredentials.path)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int, 0o600)
        XCTAssertEqual(try BMCCredentials.load(root: root), c)
        chmod(file, 0o644)
        XCTAssertThrowsError(try BMCCredentials.load(root: root)) { e in
            XCTAssertEqual(
                (e as? QlustarError)?.message, "\(file) may be read by others (mode 644): chmod 600 \(file)")
        }
        chmod(file, 0o600)
        try "{\"entries\": 5}".write(toFile: file, atomically: false, encoding: .utf8)
        XCTAssertThrowsError(try BMCCredentials.load(root: root))
    }

    /// Nodes without a BMC address or credentials fail at once, without ipmitool, each saying why.
    func testNodesWithoutAddressOrCredentialsFailWithTheReason() throws {
        let registry = try Registry(root: Root(dir))
        try registry.addNodes([
            NodeSpec(name: "a1", macs: ["52:54:00:00:00:01"], ip: "198.18.1.1"),
            NodeSpec(name: "a2", macs: ["52:54:00:00:00:02"], ip: "198.18.1.2", bmc: "198.18.0.99"),
        ])
        var control = PowerControl(parallel: 4, timeout: 1)
        control.ipmitool = "/nonexistent/ipmitool"
        let results = control.run(
            .status, on: PowerControl.targets(try registry.nodes(), registry: registry), credentials: BMCCredentials())
        XCTAssertEqual(results.map(\.outcome), ["no BMC address", "no credentials"])
        XCTAssertEqual(
            results[0].detail, "no BMC address (qluman node set NODE --bmc ADDRESS, or assign an ipmi config)")
        XCTAssertFalse(results.contains { $0.succeeded })
        let summary = OutcomeSummary(results.map { ($0.node, $0.outcome, $0.succeeded) })
        XCTAssertEqual(summary.line, "no BMC address: a1  no credentials: a2")
        XCTAssertFalse(summary.allSucceeded)
    }

    func testOutcomesAreFoldedSuccessesFirstThenBySize() {
        let results = (1...100).map { i in
            (node: String(format: "beo-%03d", i), outcome: i > 97 ? "timeout" : "on", succeeded: i <= 97)
        }
        let summary = OutcomeSummary(results + [("gpu1", "off", true)])
        XCTAssertEqual(summary.line, "on: beo-[001-097]  off: gpu1  timeout: beo-[098-100]")
    }
}
