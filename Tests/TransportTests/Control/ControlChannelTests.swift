import Foundation
import NIOConcurrencyHelpers
import NIOCore
import LabTestSupport
import XCTest

@testable import Transport

final class ControlChannelTests: XCTestCase {
    struct Echo: Codable, Equatable { var text: String; var n: Int }

    func startServer(_ options: ControlServer.Options = .init()) throws -> ControlServer {
        try ControlServer.start(host: "127.0.0.1", port: 0, options: options) { request throws(ControlFailure) in
            switch request.op {
            case "echo":
                let e = try request.arguments(Echo.self)
                return Array(try! JSONEncoder().encode(Echo(text: e.text, n: e.n + 1)))
            case "sleep":
                usleep(400_000)
                return Array("{}".utf8)
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
}
