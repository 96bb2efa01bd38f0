import XCTest

@testable import Platform

#if canImport(Glibc)
    import Glibc
#endif

/// Programs run through the fence (posix_spawn, waitpid, poll), on real programs.
final class SubprocessTests: ScratchTestCase {
    func testRunReturnsStandardOutput() throws {
        XCTAssertEqual(try Subprocess.run("/bin/echo", ["a b", "c"], step: "echo"), "a b c\n")
        XCTAssertEqual(try Subprocess.run("echo", ["found on PATH"], step: "echo"), "found on PATH\n")
    }

    func testAFailureNamesTheStepTheStatusAndTheProgramsMessage() {
        XCTAssertThrowsError(
            try Subprocess.run(
                "/bin/sh", ["-c", "echo partial; echo 'it broke' >&2; exit 3"], step: "break it", code: .union)
        ) {
            error in
            XCTAssertEqual(error as? QlustarError, QlustarError(.union, "cannot break it: /bin/sh exited 3: it broke"))
        }
        XCTAssertThrowsError(try Subprocess.run("/bin/sh", ["-c", "kill -TERM $$"], step: "die")) { error in
            XCTAssertEqual((error as? QlustarError)?.message, "cannot die: /bin/sh was killed by signal 15: ")
        }
        XCTAssertThrowsError(try Subprocess.run("/nonexistent/tool", [], step: "run a missing tool")) { error in
            XCTAssertEqual(
                (error as? QlustarError)?.message,
                "cannot run a missing tool: cannot run /nonexistent/tool: No such file or directory")
        }
    }

    func testMegabytesOnBothPipesDoNotBlockTheChild() throws {
        let child = try Subprocess("/bin/sh", ["-c", "head -c 3000000 /dev/zero; head -c 2000000 /dev/zero >&2"])
        let (out, err, end) = child.collect()
        XCTAssertEqual(out.count, 3_000_000)
        XCTAssertEqual(err.count, 2_000_000)
        XCTAssertEqual(end, .exited(0))
    }

    func testTimeoutThenKillReachesWhatTheChildStarted() throws {
        let marker = dir + "/marker"
        let child = try Subprocess(
            "/bin/sh", ["-c", "(sleep 2; touch \(marker)) & sleep 30"], output: .null, errors: .null)
        XCTAssertNil(child.wait(seconds: 0.2))
        child.kill()
        XCTAssertEqual(child.wait(), .signalled(SIGKILL))
        usleep(2_500_000)
        XCTAssertFalse(FileSystem.exists(marker), "the grandchild in its process group was killed too")
    }

    func testEnvironmentDirectoryAndFileOutput() throws {
        let child = try Subprocess(
            "/bin/sh", ["-c", "echo \"$QL_TEST_VALUE $(pwd)\"; echo err >&2"], adding: ["QL_TEST_VALUE": "set"],
            directory: dir,
            output: .file(dir + "/log"), errors: .sameAsOutput)
        XCTAssertEqual(child.wait(), .exited(0))
        XCTAssertEqual(
            String(decoding: try FileSystem.readFile(dir + "/log", limit: 100), as: UTF8.self), "set \(dir)\nerr\n")
    }

    func testAChildGetsNoDescriptorButItsStandardThree() throws {
        let leaked = open("/dev/null", O_RDONLY)  // no O_CLOEXEC, as some libraries do
        defer { close(leaked) }
        let out = try Subprocess.run("/bin/sh", ["-c", "ls /proc/self/fd"], step: "list its descriptors")
        // sh's own, and ls's: 0, 1, 2 and the one ls opens to list the directory.
        XCTAssertEqual(out.split(separator: "\n").compactMap { Int($0) }.filter { $0 > 2 }.count, 1, out)
    }

    func testAChildStartsWithSignalsAtTheirDefaults() throws {
        signal(SIGPIPE, SIG_IGN)  // as servers do; the child must not inherit it
        let out = try Subprocess.run(
            "/bin/sh", ["-c", "grep '^SigIgn' /proc/self/status"], step: "read its signal mask")
        let ignored = try XCTUnwrap(UInt64(out.dropFirst("SigIgn:\t".count).prefix(16), radix: 16), out)
        XCTAssertEqual(ignored & (1 << (SIGPIPE - 1)), 0, "SIGPIPE is not ignored in the child: \(out)")
    }
}
