import Platform
import XCTest

final class NetworkInterfaceTests: XCTestCase {
    /// `--interface` means one thing in every tool: a name or an address, either way round.
    func testAnInterfaceIsFoundByNameOrByAddress() throws {
        XCTAssertEqual(try NetworkInterface.resolve("lo"), NetworkInterface(name: "lo", address: "127.0.0.1"))
        XCTAssertEqual(try NetworkInterface.resolve("127.0.0.1").name, "lo")
        XCTAssertThrowsError(try NetworkInterface.resolve("eth99x")) { e in
            XCTAssertTrue(
                (e as? QlustarError)?.message.hasPrefix("no interface 'eth99x' with an IPv4 address here (") ?? false,
                "\(e)")
        }
        XCTAssertThrowsError(try NetworkInterface.resolve("198.19.255.254")) { e in
            XCTAssertTrue(
                (e as? QlustarError)?.message.hasPrefix("no local interface has the address 198.19.255.254") ?? false,
                "\(e)")
        }
    }
}
