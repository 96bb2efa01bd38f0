import Foundation
import ImageService
import LabSupport
import LabTestSupport
import NodeConfig
import Platform
import XCTest

/// The one-shot clock check against a real NTP server (chronyd serving on loopback, told not
/// to touch this machine's clock); the clock is never stepped here.
final class TimeSyncTests: XCTestCase {
    private var server: Process?
    private var dir = ""

    override func tearDown() {
        server?.terminate()
        server?.waitUntilExit()
        try? FileManager.default.removeItem(atPath: dir)
    }

    func testOffsetFromAChronyServerAndNoAnswerIsAClearError() throws {
        let chronyd = try InstalledTool.path("chronyd", "chrony")
        try Requirements.root("chronyd needs root")
        dir = NSTemporaryDirectory() + "ntp-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let port = UInt16.random(in: 20_000...29_999)
        try "allow all\nbindaddress 127.0.0.1\nlocal stratum 8\nport \(port)\ncmdport 0\npidfile \(dir)/chronyd.pid\n"
            .write(toFile: dir + "/chrony.conf", atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: chronyd)
        p.arguments = ["-d", "-x", "-f", dir + "/chrony.conf"]
        p.standardError = FileHandle.nullDevice
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        server = p
        var sync = TimeSync(server: "127.0.0.1")
        sync.port = port
        sync.mayStep = false
        sync.timeout = 1
        var result: TimeSync.Result?
        let deadline = Date().addingTimeInterval(10)
        while result == nil, Date() < deadline { result = try? sync.run() }
        let r = try XCTUnwrap(result, "chronyd answered")
        XCTAssertLessThan(abs(r.offset), 0.05, "same clock on both ends")
        XCTAssertEqual(r.stratum, 8, "chronyd serves its local stratum")
        XCTAssertFalse(r.stepped)
        XCTAssertGreaterThanOrEqual(r.delay, 0)

        var silent = TimeSync(server: "127.0.0.1")
        silent.port = port &+ 1
        silent.timeout = 1
        XCTAssertThrowsError(try silent.run()) { error in
            XCTAssertEqual((error as! QlustarError).code, .unreachable)
            XCTAssertTrue(
                (error as! QlustarError).message.hasPrefix("time: no answer from 127.0.0.1:\(port &+ 1)"), "\(error)")
        }
    }
}
