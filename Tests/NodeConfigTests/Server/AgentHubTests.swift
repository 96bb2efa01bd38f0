import Foundation
import NIOCore
import NIOPosix
import NodeConfig
import Transport
import XCTest

@testable import QlumanServer

final class AgentHubTests: XCTestCase {
    private let loop = MultiThreadedEventLoopGroup.singleton.next()
    private let report = NodeReport(
        load1: 0, load5: 0, load15: 0, memoryTotal: 1, memoryAvailable: 1, uptimeSeconds: 1, diskTotal: 1, diskFree: 1)

    private func decode<T: Decodable>(_ future: EventLoopFuture<ControlReply>, as: T.Type) throws -> T {
        guard case .json(let body) = try future.wait() else { throw ControlFailure(.internalError, "not JSON") }
        return try JSONDecoder().decode(T.self, from: Data(body))
    }

    func testAWaitingAgentGetsTheCommandAndOnlyItsNodeMayAnswer() throws {
        let hub = AgentHub()
        XCTAssertThrowsError(try hub.submit(node: "beo-01", kind: .run, argv: ["true"], timeout: 5)) { error in
            XCTAssertTrue((error as! ControlFailure).message.contains("not connected"))
        }
        let waiting = hub.wait(node: "beo-01", report: report, seconds: 20, loop: loop)
        _ = hub.wait(node: "beo-02", report: report, seconds: 20, loop: loop)
        let job = try hub.submit(node: "beo-01", kind: .run, argv: ["echo", "hi"], timeout: 5)
        let command = try XCTUnwrap(try decode(waiting, as: AgentWaitReply.self).command)
        XCTAssertEqual(command, AgentCommand(job: job, kind: .run, argv: ["echo", "hi"], timeoutSeconds: 5))
        // beo-02 cannot write into beo-01's job, nor end it.
        XCTAssertThrowsError(try hub.output(node: "beo-02", job: job, data: Array("forged".utf8)))
        XCTAssertThrowsError(try hub.result(node: "beo-02", job: job, status: 0, outcome: "ok"))
        // A poller waiting for output is woken by it.
        let poll = hub.poll(job: job, offset: 0, loop: loop)
        try hub.output(node: "beo-01", job: job, data: Array("hi\n".utf8))
        let first = try decode(poll, as: ExecPollReply.self)
        XCTAssertEqual(first.data, Data("hi\n".utf8))
        XCTAssertFalse(first.done)
        try hub.result(node: "beo-01", job: job, status: 0, outcome: "ok")
        let last = try decode(hub.poll(job: job, offset: first.offset, loop: loop), as: ExecPollReply.self)
        XCTAssertEqual(last.data, Data())
        XCTAssertTrue(last.done)
        XCTAssertEqual(last.status, 0)
        XCTAssertThrowsError(try hub.output(node: "beo-01", job: job, data: [1]), "a finished job takes no more output")
    }

    func testCommandsQueueWhileTheAgentIsBusyAndAnIdlePollEndsEmpty() throws {
        let hub = AgentHub()
        let idle = hub.wait(node: "beo-01", report: report, seconds: 1, loop: loop)
        XCTAssertNil(try decode(idle, as: AgentWaitReply.self).command)
        // Seen a moment ago, not waiting (busy): commands queue and the next wait takes the first.
        let a = try hub.submit(node: "beo-01", kind: .run, argv: ["a"], timeout: 5)
        let b = try hub.submit(node: "beo-01", kind: .configure, argv: [], timeout: 5)
        XCTAssertEqual(
            try decode(hub.wait(node: "beo-01", report: report, seconds: 5, loop: loop), as: AgentWaitReply.self)
                .command?.job, a)
        XCTAssertEqual(
            try decode(hub.wait(node: "beo-01", report: report, seconds: 5, loop: loop), as: AgentWaitReply.self)
                .command?.job, b)
        XCTAssertEqual(hub.monitor().map(\.node), ["beo-01"])
        XCTAssertTrue(hub.monitor()[0].connected)
    }
}
