import Foundation
import LabTestSupport
import NIOConcurrencyHelpers
import NIOCore
import XCTest

@testable import Transport

final class ControlChannelTests: XCTestCase {
    struct Echo: Codable, Equatable {
        var text: String
        var n: Int
    }

    func startServer(_ options: ControlServer.Options = .init()) throws -> ControlServer {
        try ControlServer.start(host: "127.0.0.1", port: 0, options: options) { request throws(ControlFailure) in
            switch request.op {
            case "echo":
                let e = try request.arguments(Echo.self)
                return Array(try! JSONEncoder().encode(Echo(text: e.text, n: e.n + 1)))
            case "sleep":
                usleep(400_000)
                return Array("{}".utf8)
            case "big":
                return Array("\"".utf8) + [UInt8](repeating: 0x61, count: 64 << 10) + Array("\"".utf8)
            default:
                throw ControlFailure(.unknownOperation, "no operation '\(request.op)'")
            }
        }
    }

    func testRequestResponseAndErrorsKeepTheConnectionUsable() throws {
        let server = try startServer()
        defer { server.stop() }
        let client = try ControlClient(host: "127.0.0.1", port: server.port)
        XCTAssertEqual(try client.call("echo", Echo(text: "hi", n: 1), as: Echo.self), Echo(text: "hi", n: 2))
        XCTAssertThrowsError(try client.call(ControlRequest(op: "reboot-everything"))) { e in
            XCTAssertEqual((e as? ControlFailure)?.code, .unknownOperation)
        }
        XCTAssertThrowsError(try client.call(ControlRequest(op: "echo", args: Array("{\"text\": 5}".utf8)))) { e in
            XCTAssertEqual((e as? ControlFailure)?.code, .malformedRequest)
        }
        XCTAssertEqual(try client.call("echo", Echo(text: "again", n: 9), as: Echo.self).n, 10)
        XCTAssertEqual(server.counters.failedRequests, 2)
    }

    func testOversizedFrameIsRefusedBeforeItsBodyArrives() throws {
        var options = ControlServer.Options()
        options.maxBody = 1_024
        let server = try startServer(options)
        defer { server.stop() }
        var frame = ByteBuffer()
        frame.writeInteger(ControlFrame.magic)
        frame.writeInteger(UInt8(1))
        frame.writeInteger(UInt8(1))
        frame.writeInteger(UInt16(0))
        frame.writeInteger(UInt32(7))
        frame.writeInteger(UInt32(1 << 30))  // claims 1 GiB, sends nothing more
        let reply = try RawTCP.exchange(port: server.port, send: Array(frame.readableBytesView))
        XCTAssert(reply.contains("frame-too-large") || reply.contains("exceeds the limit"), reply)
        XCTAssertEqual(server.counters.framingErrors, 1)
    }

    func testGarbageGetsAFramingErrorAndServerSurvivesHundredsOfThem() throws {
        let server = try startServer()
        defer { server.stop() }
        let reply = try RawTCP.exchange(port: server.port, send: Array("GET / HTTP/1.1\r\n\r\n".utf8))
        XCTAssert(reply.contains("bad magic"), reply)
        var rng = SplitMix64(seed: 11)
        for i in 0..<300 {
            var bytes = (0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if i % 2 == 0 { bytes = [0x51, 0x4C, 0x43, 0x43] + bytes }  // right magic, random rest
            _ = try RawTCP.exchange(port: server.port, send: bytes, wait: 0.02)
        }
        let client = try ControlClient(host: "127.0.0.1", port: server.port)
        XCTAssertEqual(try client.call("echo", Echo(text: "alive", n: 0), as: Echo.self).text, "alive")
    }

    func testIdleConnectionsAreClosed() throws {
        var options = ControlServer.Options()
        options.idleTimeout = .milliseconds(200)
        let server = try startServer(options)
        defer { server.stop() }
        let reply = try RawTCP.exchange(port: server.port, send: [], wait: 2)
        XCTAssert(reply.contains("idle"), reply)
        XCTAssertEqual(server.counters.idleTimeouts, 1)
    }

    func testConnectionsBeyondTheLimitAreToldBusy() throws {
        var options = ControlServer.Options()
        options.maxConnections = 2
        let server = try startServer(options)
        defer { server.stop() }
        let a = try ControlClient(host: "127.0.0.1", port: server.port)
        let b = try ControlClient(host: "127.0.0.1", port: server.port)
        _ = try a.call("echo", Echo(text: "", n: 0), as: Echo.self)
        _ = try b.call("echo", Echo(text: "", n: 0), as: Echo.self)
        let c = try ControlClient(host: "127.0.0.1", port: server.port)
        XCTAssertThrowsError(try c.call("echo", Echo(text: "", n: 0), as: Echo.self)) { e in
            XCTAssertEqual((e as? ControlFailure)?.code, .busy, "\(e)")
        }
        XCTAssertEqual(server.counters.refusedConnections, 1)
    }

    func testClientTimesOutAndUnreachableServerIsNamed() throws {
        let server = try startServer()
        defer { server.stop() }
        let client = try ControlClient(host: "127.0.0.1", port: server.port)
        XCTAssertThrowsError(try client.call(ControlRequest(op: "sleep"), timeout: 0.1)) { e in
            XCTAssertEqual((e as? ControlFailure)?.code, .timedOut)
        }
        XCTAssertThrowsError(try ControlClient(host: "127.0.0.1", port: 1, timeout: 1)) { e in
            XCTAssertEqual((e as? ControlFailure)?.code, .connection)
            XCTAssert("\(e)".contains("127.0.0.1:1"))
        }
    }

    func testManyClientsAtOnce() throws {
        let server = try startServer()
        defer { server.stop() }
        let errors = NIOLockedValueBox<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { t in
            do {
                let client = try ControlClient(host: "127.0.0.1", port: server.port)
                for i in 0..<200 {
                    let r = try client.call("echo", Echo(text: "\(t)", n: i), as: Echo.self)
                    if r != Echo(text: "\(t)", n: i + 1) { throw ControlFailure(.internalError, "wrong answer") }
                }
            } catch {
                errors.withLockedValue { $0.append("\(error)") }
            }
        }
        XCTAssertEqual(errors.withLockedValue { $0 }, [])
        XCTAssertEqual(server.counters.requests, 1_600)
    }

    // MARK: - A host that tries to hold the channel

    private func requestFrame(_ op: String, id: UInt32) -> [UInt8] {
        var b = ByteBuffer()
        ControlFrame(kind: .request, requestID: id, body: ControlRequest(op: op).encoded()).write(to: &b)
        return Array(b.readableBytesView)
    }

    func testAFrameTrickledAByteAtATimeIsClosedAtItsDeadline() throws {
        var options = ControlServer.Options()
        options.frameDeadline = .milliseconds(500)
        let server = try startServer(options)
        defer { server.stop() }
        let fd = try RawTCP.connectIdle(port: server.port)
        defer { close(fd) }
        let frame = requestFrame("echo", id: 1)
        let start = Date()
        var closedAfter: Double?
        for byte in frame.prefix(frame.count - 1) {
            // One byte every 100 ms: every byte resets an idle timeout, none completes the frame.
            var b = byte
            if write(fd, &b, 1) != 1 || server.counters.incompleteFrames > 0 {
                closedAfter = Date().timeIntervalSince(start)
                break
            }
            usleep(100_000)
        }
        XCTAssertNotNil(closedAfter, "the trickle was never cut")
        XCTAssertLessThan(closedAfter ?? 99, 2.0)
        XCTAssertEqual(server.counters.incompleteFrames, 1)
        // Whole frames, however slow between them, are fine.
        let c = try ControlClient(host: "127.0.0.1", port: server.port)
        for n in 0..<3 {
            XCTAssertEqual(try c.call("echo", Echo(text: "", n: n), as: Echo.self).n, n + 1)
            usleep(300_000)
        }
    }

    func testOneHostCannotTakeEveryConnection() throws {
        var options = ControlServer.Options()
        options.maxConnectionsPerHost = 3
        let server = try startServer(options)
        defer { server.stop() }
        let held = try (0..<3).map { _ in try ControlClient(host: "127.0.0.1", port: server.port) }
        for c in held { _ = try c.call("echo", Echo(text: "", n: 0), as: Echo.self) }
        let fourth = try ControlClient(host: "127.0.0.1", port: server.port)
        XCTAssertThrowsError(try fourth.call("echo", Echo(text: "", n: 0), as: Echo.self)) { e in
            XCTAssertEqual((e as? ControlFailure)?.code, .busy, "\(e)")
            XCTAssert((e as? ControlFailure)?.message.contains("from 127.0.0.1") == true, "\(e)")
        }
        XCTAssertEqual(server.counters.refusedPerHost, 1)
        held[0].close()
        usleep(200_000)
        let again = try ControlClient(host: "127.0.0.1", port: server.port)
        XCTAssertEqual(try again.call("echo", Echo(text: "", n: 1), as: Echo.self).n, 2, "a slot freed is taken again")
    }

    func testPipelinedRequestsNeverReadAreRefusedNotBuffered() throws {
        let server = try startServer()
        defer { server.stop() }
        let fd = try RawTCP.connectIdle(port: server.port)
        defer { close(fd) }
        // 4,000 requests for 64 KiB answers (256 MiB if all were buffered), none read.
        var rcv: Int32 = 4_096
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, socklen_t(MemoryLayout<Int32>.size))
        var flags = fcntl(fd, F_GETFL)
        flags |= O_NONBLOCK
        _ = fcntl(fd, F_SETFL, flags)
        var sent = 0
        let deadline = Date().addingTimeInterval(10)
        var pending: [UInt8] = []
        for i in 0..<4_000 { pending += requestFrame("big", id: UInt32(i + 1)) }
        while sent < pending.count, Date() < deadline {
            let n = pending[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n > 0 { sent += n } else { usleep(10_000) }
        }
        usleep(500_000)
        let c = server.counters
        XCTAssertEqual(sent, pending.count, "the requests (156 KB) fit the kernel's buffers")
        XCTAssertLessThan(c.requests, 4_000, "the server stopped reading them: \(c)")
        XCTAssertGreaterThan(c.unreadAnswers, 0, "those read while answers were unread got a short busy")
        // Answers queued: what the socket and the 1 MiB high-water mark hold, not 256 MiB.
        XCTAssertLessThan(c.requests - c.unreadAnswers, 200, "\(c)")
        // Everyone else is served meanwhile.
        let other = try ControlClient(host: "127.0.0.1", port: server.port)
        XCTAssertEqual(try other.call("echo", Echo(text: "", n: 5), as: Echo.self).n, 6)
    }
}

/// The request envelope is read without Foundation's JSONSerialization (not in the initrd).
final class ControlEnvelopeTests: XCTestCase {
    func testArgumentsPassThroughWithExactIntegers() throws {
        let body = Array(
            #"{"op":"fetch","args":{"offset":18446744073709551615,"n":-9007199254740993,"x":1.5,"s":"a\"b","l":[true,null]}}"#
                .utf8)
        let request = try ControlRequest.decode(body)
        XCTAssertEqual(request.op, "fetch")
        struct Args: Decodable, Equatable {
            var offset: UInt64
            var n: Int64
            var x: Double
            var s: String
            var l: [Bool?]
        }
        XCTAssertEqual(
            try request.arguments(Args.self),
            Args(offset: .max, n: -9_007_199_254_740_993, x: 1.5, s: "a\"b", l: [true, nil]))
    }

    func testMalformedEnvelopesAreNamed() {
        let cases: [(String, String)] = [
            ("[1,2]", "not a JSON object"), ("{\"op\":", "not a JSON object"), ("{\"args\":{}}", "no 'op'"),
            ("{\"op\":\"\"}", "no 'op'"), ("{\"op\":5}", "no 'op'"),
            ("{\"op\":\"\(String(repeating: "x", count: 65))\"}", "no 'op'"),
            ("{\"op\":\"a\",\"args\":[1]}", "must be a JSON object"),
        ]
        for (body, message) in cases {
            XCTAssertThrowsError(try ControlRequest.decode(Array(body.utf8)), body) { e in
                XCTAssertEqual((e as? ControlFailure)?.code, .malformedRequest)
                XCTAssertTrue((e as? ControlFailure)?.message.contains(message) ?? false, "\(body): \(e)")
            }
        }
        XCTAssertEqual(try ControlRequest.decode(Array("{\"op\":\"status\"}".utf8)).args, Array("{}".utf8))
    }

    func testDeeplyNestedArgumentsAreRefusedNotRecursedInto() {
        // A hostile frame: 100,000 nested arrays in a 200 KB body (under the frame limit).
        let body =
            "{\"op\":\"x\",\"args\":{\"a\":" + String(repeating: "[", count: 100_000)
            + String(repeating: "]", count: 100_000) + "}}"
        XCTAssertThrowsError(try ControlRequest.decode(Array(body.utf8))) { e in
            XCTAssertEqual((e as? ControlFailure)?.code, .malformedRequest)
        }
    }
}
