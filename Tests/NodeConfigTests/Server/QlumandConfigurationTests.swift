import Foundation
import NodeConfig
import Platform
import QlumanServer
import XCTest

/// qlumand's configuration file and command line: the packaged /etc/qlustar/qlumand.conf is
/// read as written, options win over the file, and every bad value names its file, line and key.
final class QlumandConfigurationTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "qlumand-conf-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    private func file(_ text: String) throws -> String {
        let path = dir + "/qlumand.conf"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testShippedFileGivesTheDefaultsItDocuments() throws {
        let shipped = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../../contrib/etc/qlumand.conf").standardized.path
        var c = QlumandConfiguration()
        try c.apply(file: shipped)
        let s = try c.settings()
        XCTAssertEqual(s.listenHost, "0.0.0.0")
        XCTAssertEqual(s.listenPort, QlumanDefaults.port)
        XCTAssertEqual(s.maxConnections, 2_048)
        XCTAssertEqual(s.certificate, "/etc/qlustar/ssl/qlumand.crt")
        XCTAssertEqual(s.web?.host, "127.0.0.1")
        XCTAssertNil(s.metrics)
    }

    func testOptionsWinOverTheFile() throws {
        var c = QlumandConfiguration()
        try c.apply(file: try file("root = \(dir)\nlisten = 198.18.0.1:7000\nmax-connections = 10\nweb = none\n"))
        try c.set("listen", "198.18.0.2")
        try c.set("log-level", "debug")
        let s = try c.settings()
        XCTAssertEqual(s.listenHost, "198.18.0.2")
        XCTAssertEqual(s.listenPort, QlumanDefaults.port)
        XCTAssertEqual(s.maxConnections, 10)
        XCTAssertNil(s.web)
        XCTAssertEqual(s.certificate, dir + "/etc/qlustar/ssl/qlumand.crt")
        XCTAssertEqual(try c.logLevel(), .debug)
    }

    func testBadLinesNameTheFileLineAndKey() throws {
        let cases: [(String, String)] = [
            ("max-connections = -3", "max-connections = '-3': expected a whole number in 1…1000000"),
            ("idle-timeout = forever", "idle-timeout = 'forever': expected seconds in 0.1…86400"),
            ("listen = none", "listen = 'none': qlumand needs an address to listen on"),
            ("listen = 1.2.3.4:99999", "listen = '1.2.3.4:99999'"),
            ("log-level = loud", "log-level = no log level 'loud'"),
            ("colour = blue", ":2: unknown key 'colour'"),
            ("just words", ":2: expected 'key = value', got 'just words'"),
        ]
        for (line, expected) in cases {
            let path = try file("# ok\n" + line + "\n")
            XCTAssertThrowsError(
                try {
                    var c = QlumandConfiguration()
                    try c.apply(file: path)
                    _ = try c.settings()
                    _ = try c.logLevel()
                }()
            ) { error in
                let message = (error as? QlustarError)?.message ?? ""
                XCTAssertTrue(message.contains(expected), "'\(message)' does not contain '\(expected)'")
            }
        }
    }

    func testHostileFilesAreRefusedNotTrapped() throws {
        // Not UTF-8, and larger than a settings file can be.
        var c = QlumandConfiguration()
        let binary = dir + "/binary.conf"
        FileManager.default.createFile(atPath: binary, contents: Data([0xff, 0xfe, 0x00, 0x3d]))
        XCTAssertThrowsError(try c.apply(file: binary)) { error in
            XCTAssertEqual((error as? QlustarError)?.message, "\(binary) is not UTF-8 text")
        }
        let huge = dir + "/huge.conf"
        FileManager.default.createFile(atPath: huge, contents: Data(count: ConfigFile.sizeLimit + 1))
        XCTAssertThrowsError(try c.apply(file: huge))
        XCTAssertThrowsError(try c.apply(file: dir + "/missing.conf")) { error in
            XCTAssertTrue(((error as? QlustarError)?.message ?? "").hasPrefix("configuration file:"))
        }
    }
}
