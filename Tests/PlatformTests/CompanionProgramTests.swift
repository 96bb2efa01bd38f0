import Foundation
import Platform
import XCTest

/// `qlustar-image` finds `ql-mcast-client` beside the program it was started as, beside its
/// executable, or on `$PATH` (an installed package: both in /usr/sbin, the tool a link to
/// /usr/lib/qlustar/qlustar-tools).
final class CompanionProgramTests: XCTestCase {
    func testFindsAnExecutableOnThePathAndNothingThatIsNotExecutable() throws {
        let dir = NSTemporaryDirectory() + "companion-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        FileManager.default.createFile(
            atPath: dir + "/ql-companion-x", contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o755])
        FileManager.default.createFile(
            atPath: dir + "/ql-companion-plain", contents: Data(), attributes: [.posixPermissions: 0o644])
        let saved = ProcessInfo.processInfo.environment["PATH"] ?? ""
        setenv("PATH", "/nonexistent:" + dir + ":" + saved, 1)
        defer { setenv("PATH", saved, 1) }
        XCTAssertEqual(CompanionProgram.path("ql-companion-x"), dir + "/ql-companion-x")
        XCTAssertNil(CompanionProgram.path("ql-companion-plain"), "a file that cannot be run is no program")
        XCTAssertNil(CompanionProgram.path("ql-companion-missing"))
        // The executable's own directory comes first: the test runner finds itself there.
        let runner = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let name = (runner as NSString).lastPathComponent
        XCTAssertEqual(CompanionProgram.path(name), runner)
    }
}
