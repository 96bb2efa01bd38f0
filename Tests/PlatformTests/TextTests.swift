import Glibc
import NIOConcurrencyHelpers
import XCTest

@testable import Platform

/// What the initrd's programs use instead of Foundation's formatting, strings and threads.
final class TextTests: XCTestCase {
    func testPrintfFormatsAsTheCLibraryDoes() {
        XCTAssertEqual(String(printf: "%.2f s", 3.14159), "3.14 s")
        XCTAssertEqual(String(printf: "%04d-%02d", Int32(7), Int32(3)), "0007-03")
        XCTAssertEqual(String(printf: "\\x%02X", UInt32(0x1B)), "\\x1B")
        XCTAssertEqual(String(printf: "%3d%% %7.1f", Int32(42), 123.456), " 42%   123.5")
        XCTAssertEqual(String(printf: "%llu", UInt64.max), "18446744073709551615")
    }

    func testPrintfGrowsPastItsFirstBuffer() {
        let long = String(printf: "%0500d|", Int32(1))
        XCTAssertEqual(long.count, 501)
        XCTAssertTrue(long.hasSuffix("1|"))
    }

    func testTrimmedAndParentPath() {
        XCTAssertEqual("  a b \n\t".trimmed, "a b")
        XCTAssertEqual(" \n ".trimmed, "")
        XCTAssertEqual("key = value"[...].trimmed, "key = value")
        XCTAssertEqual("/tmp/compute.img".parentPath, "/tmp")
        XCTAssertEqual("/compute.img".parentPath, "/")
        XCTAssertEqual("compute.img".parentPath, "")
        XCTAssertEqual("a/b/c".parentPath, "a/b")
    }

    func testDetachedThreadRunsItsBodyUnderItsName() throws {
        let seen = NIOLockedValueBox<String?>(nil)
        try DetachedThread.start(name: "a-very-long-thread-name") {
            let comm = (try? FileSystem.readFile("/proc/thread-self/comm", limit: 64)) ?? []
            seen.withLockedValue { $0 = String(decoding: comm, as: UTF8.self).trimmed }
        }
        let deadline = MonotonicClock.nanoseconds() + 5_000_000_000
        while seen.withLockedValue({ $0 }) == nil, MonotonicClock.nanoseconds() < deadline { usleep(1_000) }
        XCTAssertEqual(seen.withLockedValue { $0 }, "a-very-long-thr")
    }
}
