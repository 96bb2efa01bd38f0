import Foundation
import ImageService
import Platform
import XCTest

final class DaemonConfigurationTests: XCTestCase {
    func file(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "mcastd-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).conf"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testReadsEveryKindOfValueFromAFile() throws {
        var c = DaemonConfiguration()
        try c.apply(
            file: try file(
                """
                # head node settings
                interface = 198.18.0.10
                listen = 198.18.0.10:7000   # control port
                group-pool = 239.255.4.0/28
                port-range = 31000-31009
                window = 0.5
                rate = 2g
                max-sessions = 3
                authenticate = yes

                """))
        XCTAssertEqual(c.interface?.description, "198.18.0.10")
        XCTAssertEqual(c.listenHost, "198.18.0.10")
        XCTAssertEqual(c.listenPort, 7000)
        XCTAssertEqual(c.groupPool, "239.255.4.0/28")
        XCTAssertEqual(c.portRange, "31000-31009")
        XCTAssertEqual(c.windowSeconds, 0.5)
        XCTAssertEqual(c.rate.bytesPerSecond, 250_000_000)
        XCTAssertEqual(c.maxSessions, 3)
        XCTAssertTrue(c.authenticate)
        XCTAssertNoThrow(try c.validate())
    }

    func testWrongTypesAndUnknownKeysNameTheLine() throws {
        let cases: [(String, String)] = [
            ("window = soon", ":2: window = 'soon': expected seconds in 0.0…60.0"),
            ("max-sessions = -1", ":2: max-sessions = '-1': expected a whole number in 1…1024"),
            (
                "interface = 239.255.0.1",
                ":2: interface = '239.255.0.1': expected the name or IPv4 address of a local interface"
            ),
            ("authenticate = maybe", ":2: authenticate = 'maybe': expected yes or no"),
            ("colour = blue", ":2: unknown key 'colour'"),
            ("just words", ":2: expected 'key = value', got 'just words'"),
        ]
        for (line, expected) in cases {
            let path = try file("# ok\n" + line + "\n")
            var c = DaemonConfiguration()
            XCTAssertThrowsError(try c.apply(file: path)) { error in
                let message = (error as? QlustarError)?.message ?? ""
                XCTAssertTrue(message.hasPrefix(path + expected), "\(message) does not start with \(path + expected)")
            }
        }
    }

    func testInterfaceCannotBeGuessed() {
        XCTAssertThrowsError(try DaemonConfiguration().validate()) { error in
            XCTAssertEqual(
                (error as? QlustarError)?.message,
                "no --interface: give the address of the head node's interface to the compute nodes")
        }
    }
}
