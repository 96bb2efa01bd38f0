import Foundation
import ImageService
import LabSupport
import LabTestSupport
import NodeRegistry
import Platform
import XCTest

final class RegistryTests: XCTestCase {
    var dir = ""
    var root: Root { Root(dir) }

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "registry-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try RegistryBackend.prepare(root: dir)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func message(_ body: () throws -> Void) -> String? {
        do { try body() } catch { return (error as? QlustarError)?.message ?? "\(error)" }
        return nil
    }

    func testBadValuesAreRefusedWithAMessageNamingThem() throws {
        let r = try Registry(root: root)
        func add(name: String = "beo-01", mac: String = "52:54:00:00:00:01", ip: String = "10.1.0.11") -> String? {
            message { _ = try r.addNode(name: name, macs: [mac], ip: ip, image: nil, group: nil) }
        }
        XCTAssertEqual(
            add(name: "beo_01"),
            "node name 'beo_01' is not a host name (1–63 letters, digits, '-'; not starting or ending with '-')")
        XCTAssertEqual(
            add(name: "-x"),
            "node name '-x' is not a host name (1–63 letters, digits, '-'; not starting or ending with '-')")
        XCTAssertEqual(
            add(name: "beo\n01"),
            "node name 'beo\\u{a}01' is not a host name (1–63 letters, digits, '-'; not starting or ending with '-')")
        XCTAssertEqual(
            add(mac: "52:54:00:00:00"), "MAC address '52:54:00:00:00' is not six hex pairs like 52:54:00:12:34:56")
        XCTAssertEqual(
            add(mac: "01:00:5e:00:00:01"),
            "MAC address 01:00:5e:00:00:01 is a multicast address; a NIC's address is unicast")
        XCTAssertEqual(
            add(ip: "10.1.0.256"), "IP address '10.1.0.256' is not an IPv4 address like 10.0.0.5 or 10.0.0.5/16")
        XCTAssertEqual(add(ip: "10.1.0.0"), "10.1.0.0 is the network or broadcast address of /24, not a host's")
        XCTAssertEqual(
            add(ip: "10.1.255.255/16"), "10.1.255.255 is the network or broadcast address of /16, not a host's")
        XCTAssertEqual(add(ip: "10.1.0.5/31"), "netmask of '10.1.0.5/31' must be a prefix length from /8 to /30")
        XCTAssertEqual(
            add(ip: "010.1.0.5"), "IP address '010.1.0.5' is not an IPv4 address like 10.0.0.5 or 10.0.0.5/16")
        XCTAssertEqual(
            message {
                _ = try r.addNode(
                    name: "beo-01", macs: ["52-54-00-00-00-01"], ip: "10.1.0.11", image: "../x", group: nil)
            },
            "image name '../x' may only contain letters, digits, '.', '_', '+' and '-'")
        XCTAssertEqual(try r.nodes(), [], "nothing was stored")
        // Dashes and upper case are accepted and normalised.
        let n = try r.addNode(name: "BEO-01", macs: ["52-54-00-AB-CD-EF"], ip: "10.1.0.11/16", image: nil, group: nil)
        XCTAssertEqual(
            n, Node(name: "beo-01", macs: ["52:54:00:ab:cd:ef"], ip: "10.1.0.11", prefix: 16, image: nil, group: nil))
    }

    func testDuplicatesAreRefusedNamingTheNodeThatHasIt() throws {
        let r = try Registry(root: root)
        _ = try r.addNode(name: "beo-01", macs: ["52:54:00:00:00:01"], ip: "10.1.0.11", image: nil, group: nil)
        XCTAssertEqual(
            message {
                _ = try r.addNode(name: "beo-02", macs: ["52:54:00:00:00:01"], ip: "10.1.0.12", image: nil, group: nil)
            },
            "MAC 52:54:00:00:00:01 already belongs to node beo-01")
        XCTAssertEqual(
            message {
                _ = try r.addNode(name: "beo-02", macs: ["52:54:00:00:00:02"], ip: "10.1.0.11", image: nil, group: nil)
            },
            "IP 10.1.0.11 already belongs to node beo-01")
        XCTAssertEqual(
            message {
                _ = try r.addNode(name: "beo-01", macs: ["52:54:00:00:00:03"], ip: "10.1.0.13", image: nil, group: nil)
            },
            "node beo-01 is already registered")
        XCTAssertEqual(try r.nodes().count, 1)
    }

    func testSetChangesOnlyWhatIsGivenAndGroupsInUseStay() throws {
        let r = try Registry(root: root)
        try r.addGroup("compute")
        _ = try r.addNode(
            name: "beo-01", macs: ["52:54:00:00:00:01"], ip: "10.1.0.11", image: "compute", group: "compute")
        let changed = try r.setNode(
            "beo-01", ip: "10.1.0.21", addMACs: ["52:54:00:00:00:02"], removeMACs: ["52:54:00:00:00:01"])
        XCTAssertEqual(
            changed,
            Node(
                name: "beo-01", macs: ["52:54:00:00:00:02"], ip: "10.1.0.21", prefix: 24, image: "compute",
                group: "compute"))
        XCTAssertEqual(
            message { _ = try r.setNode("beo-01", removeMACs: ["52:54:00:00:00:02"]) },
            "node beo-01 would have no MAC left")
        XCTAssertEqual(try r.node("beo-01").macs, ["52:54:00:00:00:02"], "the refused change left nothing behind")
        XCTAssertEqual(
            message { _ = try r.setNode("beo-01", group: .some("gpu")) }, "no group gpu (qluman group add gpu)")
        XCTAssertEqual(message { try r.removeGroup("compute") }, "group compute still has nodes: beo-01")
        _ = try r.setNode("beo-01", image: .some(nil), group: .some(nil))
        try r.removeGroup("compute")
        try r.removeNode("beo-01")
        XCTAssertEqual(message { _ = try r.node("beo-01") }, "no node 'beo-01' is registered")
    }

    func testTheRegistrySurvivesReopeningAndKeepsItsSchemaVersion() throws {
        _ = try Registry(root: root).addNode(
            name: "beo-01", macs: ["52:54:00:00:00:01"], ip: "10.1.0.11", image: nil, group: nil)
        let again = try Registry(root: root)
        XCTAssertEqual(try again.node("beo-01").ip, "10.1.0.11")
        XCTAssertEqual(
            try again.appliedMigrations(),
            [
                "1 nodes, MACs, groups", "2 boot configurations",
                "3 config classes, assignments, tokens, configure reports", "4 time daemon in configure reports",
                "5 boots", "6 BMC addresses", "7 per-firmware boot configurations",
            ])
        // SQLite: the file is what GRDB has always written (existing head nodes upgrade in place).
        guard !RegistryBackend.isPostgres else { return }
        let migrations = try Lab.run(
            "/usr/bin/python3",
            [
                "-c",
                "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select identifier from grdb_migrations').fetchall())",
                again.path,
            ])
        XCTAssertEqual(
            migrations,
            "[('1 nodes, MACs, groups',), ('2 boot configurations',), ('3 config classes, assignments, tokens, configure reports',), ('4 time daemon in configure reports',), ('5 boots',), ('6 BMC addresses',), ('7 per-firmware boot configurations',)]\n"
        )
    }

    /// Two administrators at once: two qluman processes adding nodes concurrently, and both
    /// trying to take the same MAC — every write is whole, exactly one of the conflicting ones wins.
    func testTwoAdministratorsAtOnce() throws {
        let qluman = try LabHarness.releaseBinary("qluman").path
        let script = """
            for i in $(seq 1 25); do \(qluman) node add "a-$i" --mac "52:54:00:00:01:$(printf %02x $i)" --ip "10.2.1.$i" --root \(dir) >/dev/null || echo "fail a-$i"; done &
            for i in $(seq 1 25); do \(qluman) node add "b-$i" --mac "52:54:00:00:02:$(printf %02x $i)" --ip "10.2.2.$i" --root \(dir) >/dev/null || echo "fail b-$i"; done &
            \(qluman) node add x-1 --mac 52:54:00:00:09:09 --ip 10.2.9.1 --root \(dir) >/dev/null 2>&1 && echo won-1 &
            \(qluman) node add x-2 --mac 52:54:00:00:09:09 --ip 10.2.9.2 --root \(dir) >/dev/null 2>&1 && echo won-2 &
            wait
            """
        let out = try Lab.run("/bin/sh", ["-c", script])
        XCTAssertFalse(out.contains("fail"), out)
        XCTAssertEqual(out.components(separatedBy: "won-").count - 1, 1, out)
        let nodes = try Registry(root: root).nodes()
        XCTAssertEqual(nodes.count, 51)
        XCTAssertEqual(Set(nodes.flatMap(\.macs)).count, 51)
    }
}
