import Foundation
import ImageService
import LabTestSupport
import Platform
import XCTest

@testable import NodeRegistry

/// Who ql-mcastd and qlumand serve: the neighbour table's MAC for the source address, the
/// registry's node at that address, its token.
final class AdmissionTests: XCTestCase {
    var root: Root!

    override func setUpWithError() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("admission-\(UUID().uuidString)").path
        root = Root(dir)
        try RegistryBackend.prepare(root: dir)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: root.path("/")) }

    static let table = """
        IP address       HW type     Flags       HW address            Mask     Device
        198.18.0.11      0x1         0x2         52:54:00:AA:00:01     *        eth0
        198.18.0.12      0x1         0x0         00:00:00:00:00:00     *        eth0
        198.18.0.13      0x1         0x6         52:54:00:aa:00:03     *        eth0
        198.18.0.111     0x1         0x2         52:54:00:aa:00:99     *        eth0

        garbage line
        198.18.0.14 0x1 0xZZ 52:54:00:aa:00:04 * eth0
        """

    func testNeighbourTableTakesCompleteEntriesOnlyAndExactAddresses() {
        XCTAssertEqual(NeighbourTable.mac(of: "198.18.0.11", inTable: Self.table), "52:54:00:aa:00:01")
        XCTAssertNil(NeighbourTable.mac(of: "198.18.0.12", inTable: Self.table), "incomplete: no MAC known")
        XCTAssertEqual(
            NeighbourTable.mac(of: "198.18.0.13", inTable: Self.table), "52:54:00:aa:00:03", "permanent entries count")
        XCTAssertNil(NeighbourTable.mac(of: "198.18.0.1", inTable: Self.table), "no prefix match (198.18.0.11, .111)")
        XCTAssertNil(NeighbourTable.mac(of: "198.18.0.14", inTable: Self.table), "unreadable flags")
        XCTAssertNil(NeighbourTable.mac(of: "198.18.0.11", inTable: ""))
        XCTAssertNil(NeighbourTable.mac(of: "198.18.0.11", table: "/nonexistent/arp"))
        XCTAssertEqual(NeighbourTable.plainIPv4("::ffff:198.18.0.11"), "198.18.0.11")
        XCTAssertEqual(NeighbourTable.plainIPv4("198.18.0.11"), "198.18.0.11")
        XCTAssertEqual(NeighbourTable.plainIPv4("fd51::1"), "fd51::1")
        // A real table of this host reads (whatever it holds) without trouble.
        _ = NeighbourTable.mac(of: "198.18.0.11")
        XCTAssertTrue(NeighbourTable.isLocal("127.0.0.1"))
        XCTAssertTrue(NeighbourTable.isLocal("127.3.2.1"))
        XCTAssertFalse(NeighbourTable.isLocal("198.51.100.77"))
    }

    func testRegistryAdmitsTheNodeAtItsAddressWithItsMACAndToken() throws {
        let r = try Registry(root: root)
        _ = try r.addNode(name: "beo-01", macs: ["52:54:00:aa:00:01"], ip: "198.18.0.11", image: nil, group: nil)
        _ = try r.addNode(
            name: "beo-02", macs: ["52:54:00:aa:00:02", "52:54:00:bb:00:02"], ip: "198.18.0.12", image: nil, group: nil)
        try r.setToken("beo-02", token: "enrollment-token-of-beo-02")
        let a = RegistryAdmission(registry: r)
        XCTAssertEqual(a.admit(address: "198.18.0.11", mac: "52:54:00:aa:00:01", token: nil), .admitted(node: "beo-01"))
        XCTAssertEqual(
            a.admit(address: "198.18.0.11", mac: "52:54:00:aa:00:01", token: "anything"), .admitted(node: "beo-01"),
            "a node without a token needs none")
        func reason(_ v: AdmissionVerdict) -> String? {
            if case .refused(let r, _) = v { return r }
            return nil
        }
        XCTAssertEqual(
            reason(a.admit(address: "198.18.0.99", mac: "52:54:00:aa:00:01", token: nil)), "not-registered",
            "a MAC from another address")
        XCTAssertEqual(
            reason(a.admit(address: "198.18.0.11", mac: "52:54:00:aa:00:02", token: nil)), "mac-mismatch",
            "another node's MAC")
        XCTAssertEqual(
            reason(a.admit(address: "198.18.0.11", mac: nil, token: nil)), "mac-mismatch", "no neighbour entry")
        XCTAssertEqual(reason(a.admit(address: "198.18.0.12", mac: "52:54:00:bb:00:02", token: nil)), "token")
        XCTAssertEqual(
            reason(a.admit(address: "198.18.0.12", mac: "52:54:00:bb:00:02", token: "wrong-token-wrong-token")), "token"
        )
        XCTAssertEqual(
            a.admit(address: "198.18.0.12", mac: "52:54:00:bb:00:02", token: "enrollment-token-of-beo-02"),
            .admitted(node: "beo-02"))
        if case .refused(_, let message) = a.admit(
            address: "198.18.0.12", mac: "52:54:00:bb:00:02", token: "wrong-token-wrong-token")
        {
            XCTAssertFalse(message.contains("wrong-token"), "the refusal never repeats a token: \(message)")
        }
    }
}
