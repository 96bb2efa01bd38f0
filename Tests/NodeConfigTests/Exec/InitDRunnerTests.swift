import Foundation
import ImageService
import LabSupport
import LabTestSupport
import Logging
import NodeConfig
import Platform
import XCTest

final class InitDRunnerTests: XCTestCase {
    func testScriptsRunInOrderAndAFailureDoesNotStopTheRest() throws {
        let f = try ConfigFixture()
        let root = Root(f.dir + "/node")
        let dir = root.path(InitDRunner.directory)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let trace = f.dir + "/trace"
        let scripts: [(String, String, Int16)] = [
            ("20-second", "echo 20 >> \(trace); echo output of 20", 0o755),
            ("10-first", "echo 10 >> \(trace)", 0o755),
            ("15-fails", "echo 15 >> \(trace); echo broken >&2; exit 3", 0o755),
            ("30-not-executable", "echo 30 >> \(trace)", 0o644),
            ("9-nine", "echo 9 >> \(trace)", 0o755),
            ("40-slow", "echo 40 >> \(trace); sleep 30", 0o755),
            ("50-last", "echo 50 >> \(trace); test \"$QLUSTAR_ROOT\" = '\(root.prefix)'", 0o755),
            (".hidden", "echo hidden >> \(trace)", 0o755),
        ]
        for (name, body, mode) in scripts {
            FileManager.default.createFile(
                atPath: dir + "/" + name, contents: Data("#!/bin/sh\n\(body)\n".utf8),
                attributes: [.posixPermissions: mode])
        }
        let log = Logger(root: root, name: "qluman-execd", echo: false)
        var runner = InitDRunner(root: root, log: log)
        runner.timeoutSeconds = 1
        let results = runner.run()
        // Byte order: "10" < "15" < "20" < "30" < "40" < "50" < "9".
        XCTAssertEqual(
            results.map(\.script),
            ["10-first", "15-fails", "20-second", "30-not-executable", "40-slow", "50-last", "9-nine"])
        XCTAssertEqual(results.map(\.outcome), ["ok", "exit 3", "ok", "skipped", "timed out", "ok", "ok"])
        XCTAssertEqual(try String(contentsOfFile: trace, encoding: .utf8), "10\n15\n20\n40\n50\n9\n")
        XCTAssertEqual(try String(contentsOfFile: root.logs + "/init.d/15-fails.log", encoding: .utf8), "broken\n")
        XCTAssertEqual(
            try String(contentsOfFile: root.logs + "/init.d/20-second.log", encoding: .utf8), "output of 20\n")
        let execdLog = try String(contentsOfFile: log.filePath!, encoding: .utf8)
        XCTAssertTrue(execdLog.contains("init.d: 15-fails failed: exit 3"), execdLog)
        XCTAssertTrue(execdLog.contains("init.d: 40-slow killed after 1 s"), execdLog)
        XCTAssertTrue(execdLog.contains("init.d: 7 scripts, 2 failed: 15-fails, 40-slow"), execdLog)
    }

    /// Foundation's `Process` hung in an initrd whose `lo` was down (docs/PROVISIONING.md): the
    /// release execd runs its scripts in a network namespace of its own, loopback down, bounded.
    func testScriptsRunWhereTheLoopbackIsDown() throws {
        try Requirements.root("a network namespace of its own needs root")
        let execd = try LabHarness.releaseBinary("qluman-execd")
        let f = try ConfigFixture()
        let root = Root(f.dir + "/node")
        let dir = root.path(InitDRunner.directory)
        try FileSystem.makeDirectories(dir)
        let trace = f.dir + "/trace"
        let script =
            "#!/bin/sh\nip -o link show lo | grep -q 'state DOWN' && echo lo-down >> \(trace)\n(sleep 30 &)\necho ran >> \(trace)\n"
        try FileSystem.writeAtomically(dir + "/10-net", Array(script.utf8), mode: 0o755)
        let started = Date()
        try Lab.run(
            "/usr/bin/timeout",
            ["-k", "5", "60", "unshare", "--net", "--", execd.path, "--run-initd", "--root", root.prefix])
        XCTAssertEqual(try String(contentsOfFile: trace, encoding: .utf8), "lo-down\nran\n")
        XCTAssertLessThan(Date().timeIntervalSince(started), 20, "a child the script left behind holds up nothing")
    }

    func testNoDirectoryIsNothingToDo() throws {
        let f = try ConfigFixture()
        let root = Root(f.dir + "/empty")
        XCTAssertEqual(InitDRunner(root: root, log: Logger(root: root, name: "qluman-execd", echo: false)).run(), [])
    }
}
