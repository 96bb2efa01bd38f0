import Foundation
import LabTestSupport
import NodeRegistry
import Platform
import XCTest

/// Registering a cluster at once: counted addresses, one transaction, every conflict listed,
/// and tables that export and import to the same registry.
final class BulkRegistrationTests: XCTestCase {
    var dir = ""
    var root: Root { Root(dir) }

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "bulk-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try RegistryBackend.prepare(root: dir)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    private func hundred(first: Int = 1, count: Int = 100) throws -> [NodeSpec] {
        try NodeSpec.counting(
            names: Hostlist.expand(
                "beo-[\(String(format: "%03d", first))-\(String(format: "%03d", first + count - 1))]"),
            ip: "10.1.0.\(first)/16", macs: ["52:54:00:01:00:\(String(format: "%02x", first))"], bmc: "10.2.0.\(first)",
            image: "compute", group: "compute", bootConfig: nil)
    }

    func testAddressesCountUpAcrossTheHostlist() throws {
        let specs = try NodeSpec.counting(
            names: Hostlist.expand("beo-[001-300]"), ip: "10.1.0.250/16",
            macs: ["52:54:00:01:00:fe", "52:54:00:02:00:fe"],
            bmc: "10.2.0.1:6230", image: nil, group: nil, bootConfig: nil)
        XCTAssertEqual(specs[0].ip, "10.1.0.250/16")
        XCTAssertEqual(specs[6].ip, "10.1.1.0/16", "carries into the next octet")
        XCTAssertEqual(specs[1].macs, ["52:54:00:01:00:ff", "52:54:00:02:00:ff"])
        XCTAssertEqual(specs[2].macs, ["52:54:00:01:01:00", "52:54:00:02:01:00"])
        XCTAssertEqual(specs[299].bmc, "10.2.1.44:6230")
        XCTAssertThrowsError(
            try NodeSpec.counting(
                names: Hostlist.expand("n[1-10]"), ip: "10.1.0.250/24", macs: ["52:54:00:01:00:01"], bmc: nil,
                image: nil, group: nil, bootConfig: nil)
        ) { e in
            XCTAssertEqual(
                (e as? QlustarError)?.message,
                "counting up from 10.1.0.250 by 5 leaves its network /24 (give a larger prefix)")
        }
        XCTAssertThrowsError(
            try NodeSpec.counting(
                names: ["a", "b"], ip: "10.1.0.1", macs: ["52:54:00:ff:ff:ff"], bmc: nil, image: nil, group: nil,
                bootConfig: nil)
        ) { e in XCTAssertTrue("\(e)".contains("leaves its vendor prefix 52:54:00"), "\(e)") }
    }

    func testABatchIsRegisteredWholeOrNotAtAllWithEveryConflictListed() throws {
        let r = try Registry(root: root)
        try r.addGroup("compute")
        XCTAssertEqual(try r.addNodes(hundred()).count, 100)
        XCTAssertEqual(try r.node("beo-100").bmc, "10.2.0.100")
        // beo-099..beo-102: two taken names; the new ones would take beo-001's MAC and a taken BMC.
        var batch = try hundred(first: 99, count: 4)
        batch[2].macs = ["52:54:00:01:00:01"]
        batch[3].bmc = "10.2.0.5"
        batch[3].group = "nothing"
        XCTAssertThrowsError(try r.addNodes(batch)) { e in
            XCTAssertEqual(
                (e as? QlustarError)?.message,
                """
                none of the 4 nodes was registered: 5 problems
                  node beo-099 is already registered
                  node beo-100 is already registered
                  beo-101: MAC 52:54:00:01:00:01 already belongs to node beo-001
                  beo-102: BMC 10.2.0.5 already belongs to node beo-005
                  beo-102: no group nothing (qluman group add nothing)
                """)
        }
        XCTAssertEqual(try r.nodes().count, 100, "nothing of the refused batch is stored")
        // Conflicts inside the batch and malformed values are found before the database is asked.
        let inner = [
            NodeSpec(name: "x1", macs: ["52:54:00:09:00:01"], ip: "10.9.0.1"),
            NodeSpec(name: "x2", macs: ["52:54:00:09:00:01"], ip: "10.9.0.1"),
            NodeSpec(name: "X1", macs: ["52:54:00:09:00:03"], ip: "10.9.0.3"),
            NodeSpec(name: "x_4", macs: ["zz"], ip: "10.9.0.4"),
        ]
        XCTAssertThrowsError(try r.addNodes(inner)) { e in
            XCTAssertEqual(
                (e as? QlustarError)?.message,
                """
                none of the 4 nodes was registered: 4 problems
                  x2: MAC 52:54:00:09:00:01 is also given for x1
                  x2: IP 10.9.0.1 is also given for x1
                  node x1 is given twice (as x1 and X1)
                  node name 'x_4' is not a host name (1–63 letters, digits, '-'; not starting or ending with '-')
                """)
        }
        let alike = (1...50).map {
            NodeSpec(name: "z\($0)", macs: ["52:54:00:07:00:\($0 + 10)"], ip: "10.7.0.\($0)", group: "gpu")
        }
        XCTAssertThrowsError(try r.addNodes(alike)) { e in
            XCTAssertEqual(
                (e as? QlustarError)?.message,
                "none of the 50 nodes was registered: 50 problems\n  z[1-50]: no group gpu (qluman group add gpu)")
        }
        let many = (1...30).map { NodeSpec(name: "y\($0)", macs: ["52:54:00:01:00:01"], ip: "10.8.0.\($0)") }
        XCTAssertThrowsError(try r.addNodes(many)) { e in
            XCTAssertTrue((e as? QlustarError)?.message.hasSuffix("\n  and 9 more") ?? false, "\(e)")
        }
    }

    func testHostlistChangesAndRemovalsAreAllOrNothing() throws {
        let r = try Registry(root: root)
        try r.addGroup("compute")
        try r.addNodes(hundred())
        XCTAssertEqual(try r.setNodes(Hostlist.expand("beo-[001-050]"), image: "new").count, 50)
        XCTAssertEqual(try r.node("beo-050").image, "new")
        XCTAssertEqual(try r.node("beo-051").image, "compute")
        XCTAssertThrowsError(try r.setNodes(Hostlist.expand("beo-[100-102]"), image: "other")) { e in
            XCTAssertEqual((e as? QlustarError)?.message, "not registered: beo-[101-102]")
        }
        XCTAssertEqual(try r.node("beo-100").image, "compute")
        XCTAssertThrowsError(try r.removeNodes(Hostlist.expand("beo-[090-101]")))
        XCTAssertEqual(try r.nodes().count, 100)
        try r.removeNodes(Hostlist.expand("beo-[051-100]"))
        XCTAssertEqual(Hostlist.fold(try r.nodes().map(\.name)), "beo-[001-050]")
    }

    func testTablesRoundTripInCSVAndYAML() throws {
        let r = try Registry(root: root)
        try r.addGroup("compute")
        try r.putBootConfig(BootConfig(name: "debug", kernel: "k", initrd: "i", append: "debug"))
        var specs = try hundred(count: 20)
        specs[3].macs.append("52:54:00:aa:bb:cc")
        specs[4].bootConfig = "debug"
        specs[5].group = nil
        specs[5].bmc = nil
        try r.addNodes(specs)
        let nodes = try r.nodes()
        for format in NodeTable.Format.allCases {
            let text = NodeTable.encode(nodes, as: format)
            try RegistryBackend.prepare(root: dir + "/" + format.rawValue)
            let other = try Registry(root: Root(dir + "/" + format.rawValue))
            try other.addGroup("compute")
            try other.putBootConfig(BootConfig(name: "debug", kernel: "k", initrd: "i", append: "debug"))
            try other.addNodes(NodeTable.decode(text, as: format))
            XCTAssertEqual(try other.nodes(), nodes, format.rawValue)
            XCTAssertEqual(NodeTable.encode(try other.nodes(), as: format), text, format.rawValue)
        }
        // What an administrator writes by hand: other column order, flow style, bare values.
        let csv = "IP,Name,MAC,Boot-Config\n10.3.0.1/16,h1,52:54:00:03:00:01 52:54:00:03:00:02,\n"
        XCTAssertEqual(
            try NodeTable.decode(csv, as: .csv),
            [NodeSpec(name: "h1", macs: ["52:54:00:03:00:01", "52:54:00:03:00:02"], ip: "10.3.0.1/16")])
        let yaml =
            "- {name: h2, mac: 52:54:00:03:00:03, ip: 10.3.0.2}\n- name: h3\n  mac: [52:54:00:03:00:04]\n  ip: 10.3.0.3\n"
        XCTAssertEqual(
            try NodeTable.decode(yaml, as: .yaml),
            [
                NodeSpec(name: "h2", macs: ["52:54:00:03:00:03"], ip: "10.3.0.2"),
                NodeSpec(name: "h3", macs: ["52:54:00:03:00:04"], ip: "10.3.0.3"),
            ])
    }

    func testMalformedTablesNameTheRowAndColumn() {
        let cases: [(String, NodeTable.Format, String)] = [
            (
                "name,mac,colour\n", .csv,
                "header: unknown column 'colour' (columns: name, mac, ip, group, image, boot_config, bmc)"
            ),
            ("name,name\n", .csv, "header: column name is given twice"),
            ("name,mac,ip\nn1,52:54:00:00:00:01\n", .csv, "row 1: 2 fields where the header has 3"),
            ("name,mac,ip\nn1,,10.0.0.1\n", .csv, "row 1 (n1): no mac"),
            ("name: n1\n", .yaml, "the table must be a list of nodes (- name: …)"),
            ("- [a, b]\n", .yaml, "node 1 (line 1): a node is a mapping (name: …, mac: …, ip: …)"),
            (
                "- name: n1\n  mac: m\n  ip: {a: 1}\n", .yaml,
                "node 1 (line 1): ip must be one value, not a list or mapping"
            ),
            (
                "- name: n1\n  size: 3\n", .yaml,
                "node 1 (line 1): unknown key 'size' (keys: name, mac, ip, group, image, boot_config, bmc)"
            ),
            ("- name: n1\n  mac: [[a]]\n  ip: x\n", .yaml, "node 1 (line 1): mac: each MAC is one value"),
        ]
        for (text, format, message) in cases {
            XCTAssertThrowsError(try NodeTable.decode(text, as: format), text) { e in
                XCTAssertEqual((e as? QlustarError)?.message, message, text)
            }
        }
    }

    func testARepeatedKeyIsRefused() {
        XCTAssertThrowsError(try NodeTable.decode("- name: n1\n  name: n2\n", as: .yaml)) { e in
            XCTAssertTrue(
                (e as? QlustarError)?.message.hasPrefix("not YAML: Parser: expected all keys to be unique") ?? false,
                "\(e)")
        }
    }

    /// Hostile YAML: deep nesting, aliases that multiply, a document too large — refused with
    /// an error, in bounded time, never a crash.
    func testHostileYAMLIsRefusedNotFollowed() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        XCTAssertThrowsError(try NodeTable.decode(deep, as: .yaml)) { e in
            XCTAssertTrue((e as? QlustarError)?.message.hasPrefix("not YAML: ") ?? false, "\(e)")
        }
        var laughs = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
        for i in 1...9 {
            laughs +=
                "\(Character(UnicodeScalar(97 + i)!)): &\(Character(UnicodeScalar(97 + i)!)) " + "["
                + Array(repeating: "*\(Character(UnicodeScalar(96 + i)!))", count: 9).joined(separator: ",") + "]\n"
        }
        let start = Date()
        XCTAssertThrowsError(try NodeTable.decode(laughs, as: .yaml))
        XCTAssertThrowsError(try NodeTable.decode("- &r {name: n1, mac: *r, ip: x}\n", as: .yaml))
        XCTAssertLessThan(Date().timeIntervalSince(start), 10)
        XCTAssertThrowsError(try NodeTable.decode(String(repeating: "#", count: NodeTable.maxBytes + 1), as: .yaml))
    }
}
