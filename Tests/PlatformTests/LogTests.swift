import LabTestSupport
import Logging
import XCTest

@testable import Platform

#if canImport(Glibc)
    import Glibc
#endif

/// The tools' swift-log handler: one line per event in <root>/var/log/qlustar/NAME.log.
final class LogTests: ScratchTestCase {

    private func lines(_ path: String) throws -> [String] {
        String(decoding: try FileSystem.readFile(path, limit: 1 << 20), as: UTF8.self).split(separator: "\n").map(
            String.init)
    }

    func testLinesCarryTimeLevelMessageAndMetadataWithControlCharactersEscaped() throws {
        var log = Logger(root: Root(dir), name: "tool", echo: false)
        log[metadataKey: "node"] = "beo-01"
        log.info("configured")
        log.warning("name from the wire: evil\nFORGED 2026 error", metadata: ["peer": "198.18.0.9"])
        log.debug("not at info")
        let path = try XCTUnwrap(log.filePath)
        XCTAssertEqual(path, dir + "/var/log/qlustar/tool.log")
        let got = try lines(path)
        XCTAssertEqual(got.count, 2)
        let stamp = #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "#
        XCTAssertNotNil(got[0].range(of: stamp + "info configured node=beo-01$", options: .regularExpression), got[0])
        XCTAssertTrue(
            got[1].hasSuffix(#"warning name from the wire: evil\x0AFORGED 2026 error node=beo-01 peer=198.18.0.9"#),
            got[1])
    }

    func testLevelsFromVerboseAndFromTheCaller() throws {
        let root = Root(dir)
        Logger(root: root, name: "levels", echo: false, verbose: true).debug("debug when verbose")
        Logger(root: root, name: "levels", echo: false, level: .error).warning("dropped at error")
        Logger(root: root, name: "levels", echo: false, level: .error).error("kept at error")
        let got = try lines(dir + "/var/log/qlustar/levels.log")
        XCTAssertEqual(
            got.map { $0.split(separator: " ", maxSplits: 1).last.map(String.init) ?? "" },
            ["debug debug when verbose", "error kept at error"])
        XCTAssertEqual(try Logger.level(parsing: "WARNING"), .warning)
        XCTAssertThrowsError(try Logger.level(parsing: "loud")) { error in
            XCTAssertEqual(
                (error as? QlustarError)?.message,
                "no log level 'loud'; levels: trace, debug, info, notice, warning, error, critical")
        }
    }

    func testReopenAfterLogrotateMovedTheFile() throws {
        let log = Logger(root: Root(dir), name: "rotated", echo: false)
        let path = try XCTUnwrap(log.filePath)
        log.info("before")
        try FileSystem.rename(path, to: path + ".1")
        log.info("still into the moved file")
        LogFile.reopenAll()
        log.info("after")
        XCTAssertEqual(try lines(path + ".1").count, 2)
        XCTAssertEqual(try lines(path).map { $0.hasSuffix("info after") }, [true])
    }

    func testUnderTheJournalStandardErrorGetsPrioritiesAndTheFileTheFullLine() throws {
        let execd = try LabHarness.releaseBinary("qluman-execd").path
        let root = dir + "/node"
        try FileSystem.makeDirectories(root + "/lib/qlustar/init.d")
        try FileSystem.writeAtomically(
            root + "/lib/qlustar/init.d/10-x", Array("#!/bin/sh\nexit 0\n".utf8), mode: 0o755)
        // systemd sets JOURNAL_STREAM to the device and inode of the stream standard error is.
        let stderrFile = dir + "/stderr"
        try FileSystem.writeAtomically(stderrFile, [])
        let st = try FileSystem.status(stderrFile)
        let child = try Subprocess(
            execd, ["--run-initd", "--root", root], adding: ["JOURNAL_STREAM": "\(st.st_dev):\(st.st_ino)"],
            output: .null,
            errors: .file(stderrFile))
        XCTAssertEqual(child.wait(), .exited(0))
        let journal = try lines(stderrFile)
        XCTAssertTrue(journal.contains("<6>init.d: running 10-x"), "\(journal)")
        let file = try lines(root + "/var/log/qlustar/qluman-execd.log")
        XCTAssertTrue(file.contains { $0.hasSuffix(" info init.d: running 10-x") }, "\(file)")
        XCTAssertEqual(QlustarLogHandler.priority(.warning), 4)
    }
}
