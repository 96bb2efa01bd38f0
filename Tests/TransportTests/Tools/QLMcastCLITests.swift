import Foundation
import LabSupport
import LabTestSupport
import XCTest

/// `ql-mcast` as an administrator meets it: bad input gives one clear line and exit status 1.
final class QLMcastCLITests: XCTestCase {
    func binary() throws -> String { try LabHarness.releaseBinary("ql-mcast").path }

    func run(_ args: [String]) throws -> (status: Int32, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try binary())
        p.arguments = args
        let err = Pipe()
        p.standardError = err
        p.standardOutput = Pipe()
        try p.run()
        let data = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func testBadInputGivesOneClearLine() throws {
        let cases: [([String], String)] = [
            (
                ["send", "/nonexistent.img", "--group", "239.255.1.1:30000", "--interface", "127.0.0.1"],
                "Error: cannot open /nonexistent.img: No such file or directory\n"
            ),
            (
                ["receive", "--group", "10.1.2.3:30000", "--interface", "127.0.0.1", "-o", "/tmp/x"],
                "Error: 10.1.2.3 is not a multicast address (224.0.0.0/4)\n"
            ),
            (
                ["receive", "--group", "239.255.1.1", "--interface", "127.0.0.1", "-o", "/tmp/x"],
                "Error: '239.255.1.1' is not GROUP:PORT (e.g. 239.255.1.1:30000)\n"
            ),
            (
                [
                    "send", "/etc/hostname", "--group", "239.255.1.1:30000", "--interface", "127.0.0.1", "--rate",
                    "fast",
                ],
                "Error: rate 'fast' is not a bit rate like 2g, 500m or 100k (≥ 8k)\n"
            ),
            (
                [
                    "send", "/etc/hostname", "--group", "239.255.1.1:30000", "--interface", "127.0.0.1", "--loss",
                    "lots",
                ],
                "Error: loss 'lots' is not one of: none, random:P, burst:P:LENGTH (short: P, P,LENGTH), optionally @SEED\n"
            ),
            (
                [
                    "receive", "--group", "239.255.1.1:30000", "--interface", "127.0.0.1", "-o", "/tmp/x", "--auth-key",
                    "xyz",
                ],
                "Error: --auth-key must be 32 to 128 hex digits\n"
            ),
            (
                [
                    "send", "/etc/hostname", "--group", "239.255.1.1:30000", "--interface", "127.0.0.1",
                    "--block-symbols", "255",
                ],
                "Error: source symbols per block 255 must be 1...254\n"
            ),
        ]
        for (args, expected) in cases {
            let r = try run(args)
            XCTAssertEqual(r.status, 1, args.joined(separator: " "))
            XCTAssertEqual(r.stderr, expected, args.joined(separator: " "))
        }
    }

    func testHelpExplainsEveryOption() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try binary())
        p.arguments = ["send", "--help"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        for option in [
            "--group", "--interface", "--rate", "--block-symbols", "--parity", "--auth-key", "--receivers", "--loss",
        ] {
            XCTAssert(text.contains(option), "send --help lacks \(option)")
        }
    }
}
