import Foundation
import ImageService
import LabSupport
import LabTestSupport
import Logging
import NodeConfig
import Platform
import QlumanServer
import Transport
import XCTest

/// qlumand in process on loopback, with a real cluster CA: what a stranger or a broken client
/// sends is answered with an error and counted; the server keeps serving.
final class QlumanServerTests: XCTestCase {
    private var fixture: ConfigFixture?
    private var server: QlumanServer?

    override func tearDown() {
        server?.stop()
        server = nil
        fixture = nil
    }

    private func start() throws -> (QlumanServer, ConfigFixture, ControlTLS) {
        let f = try ConfigFixture()
        fixture = f
        let ssl = f.dir + "/ssl"
        try Lab.run(
            LabHarness.repositoryRoot.appendingPathComponent("scripts/cluster-ca").path, [ssl, "qlumand", "127.0.0.1"])
        var settings = QlumanServer.Settings(root: f.root, certificate: ssl + "/qlumand.crt", key: ssl + "/qlumand.key")
        settings.listenHost = "127.0.0.1"
        settings.listenPort = 0
        let s = try QlumanServer(settings: settings, log: Logger(root: f.root, name: "qlumand", echo: false))
        try s.start()
        server = s
        return (s, f, try ControlTLS.client(ca: ssl + "/ca.crt", host: "127.0.0.1"))
    }

    private func failure(_ body: () throws -> Void) -> ControlFailure? {
        do { try body() } catch let f as ControlFailure { return f } catch { XCTFail("\(error)") }
        return nil
    }

    func testStrangersAndMalformedRequestsAreRefusedAndCounted() throws {
        let (s, f, tls) = try start()
        let client = try ControlClient(host: "127.0.0.1", port: s.port, maxData: 1 << 20, tls: tls)
        let request = ConfigureRequest(macs: ["52:54:00:00:00:01"], token: nil, facts: .assumed, hostname: "x")
        // No node can have a loopback address: a stranger.
        let stranger = failure {
            _ = try client.fetch(try ControlRequest(op: QlumanOperation.configure, arguments: request))
        }
        XCTAssertEqual(stranger?.code, .refused)
        XCTAssertEqual(stranger?.message, "no node is registered with address 127.0.0.1")
        // Wrong types, unknown operations, garbage: errors, and the connection stays usable.
        let cases: [(String, String, ControlFailure.Code)] = [
            (QlumanOperation.configure, #"{"macs":5,"osFamily":"debian"}"#, .malformedRequest),
            (QlumanOperation.configure, #"{"macs":[],"osFamily":"windows"}"#, .malformedRequest),
            (QlumanOperation.agentWait, #"{"credentials":{"macs":[]},"report":{},"seconds":1}"#, .malformedRequest),
            (
                QlumanOperation.agentOutput, #"{"credentials":{"macs":["52:54:00:00:00:01"]},"job":1,"data":"aGk="}"#,
                .refused
            ),
            (
                QlumanOperation.bootReport, #"{"credentials":{"macs":[]},"stage":"warp","what":"x","failed":false}"#,
                .malformedRequest
            ),
            (
                QlumanOperation.bootReport,
                #"{"credentials":{"macs":["52:54:00:00:00:01"]},"stage":"system","what":"x","failed":false}"#, .refused
            ),
            ("drop-tables", "{}", .unknownOperation),
            (
                QlumanOperation.exec, #"{"node":"beo-01","kind":"run","argv":["id"],"timeoutSeconds":5}"#,
                .unknownOperation
            ),
        ]
        for (op, json, code) in cases {
            let got = failure { _ = try client.call(ControlRequest(op: op, args: Array(json.utf8))) }
            XCTAssertEqual(got?.code, code, "\(op) \(json): \(got.map { "\($0)" } ?? "accepted")")
        }
        // Plain text on the TLS port.
        _ = try? RawTCP.exchange(port: s.port, send: Array("GET / HTTP/1.0\r\n\r\n".utf8), wait: 1)
        let status = try client.call(QlumanOperation.status, [String: String](), as: QlumandStatus.self)
        XCTAssertEqual(status.refused, ["unknown-address": 3])
        XCTAssertEqual(status.configured, 0)
        XCTAssertGreaterThanOrEqual(status.tlsErrors, 1)
        // Exec is only on the administration socket, which only its owner can open.
        let admin = try ControlClient(unixSocket: s.settings.adminSocket)
        XCTAssertEqual(try Lab.run("/usr/bin/stat", ["-c", "%a", s.settings.adminSocket]), "600\n")
        let unknown = failure {
            _ = try admin.call(
                QlumanOperation.exec, ExecRequest(node: "beo-01", kind: .run, argv: ["id"], timeoutSeconds: 5),
                as: ExecStarted.self)
        }
        XCTAssertEqual(unknown?.message, "no node 'beo-01' is registered")
        _ = try f.registry.addNode(
            name: "beo-01", macs: ["52:54:00:00:00:01"], ip: "10.0.0.1/16", image: nil, group: nil)
        let offline = failure {
            _ = try admin.call(
                QlumanOperation.exec, ExecRequest(node: "beo-01", kind: .run, argv: ["id"], timeoutSeconds: 5),
                as: ExecStarted.self)
        }
        XCTAssertEqual(offline?.message, "node beo-01's qluman-execd is not connected (is it running in daemon mode?)")
        let noJob = failure {
            _ = try admin.call(QlumanOperation.execPoll, ExecPollRequest(job: 42, offset: 0), as: ExecPollReply.self)
        }
        XCTAssertEqual(noJob?.code, .notFound)
        XCTAssertEqual(try admin.call(QlumanOperation.nodes, [String: String](), as: [NodeMonitor].self).count, 0)
        // The boot monitor: unknown nodes and absurd thresholds are refused; a node never seen is "never".
        let noNode = failure {
            _ = try admin.call(
                QlumanOperation.bootStatus, BootStatusRequest(nodes: ["beo-02", "beo-03"], stuckSeconds: 60),
                as: BootStatus.self)
        }
        XCTAssertEqual(noNode?.message, "no registered node beo-[02-03]")
        let badThreshold = failure {
            _ = try admin.call(
                QlumanOperation.bootStatus, BootStatusRequest(nodes: nil, stuckSeconds: -1), as: BootStatus.self)
        }
        XCTAssertEqual(badThreshold?.code, .malformedRequest)
        let boots = try admin.call(
            QlumanOperation.bootStatus, BootStatusRequest(nodes: nil, stuckSeconds: 60), as: BootStatus.self)
        XCTAssertEqual(boots.nodes.map(\.node), ["beo-01"])
        XCTAssertEqual(boots.nodes.first?.state, "never")
        XCTAssertEqual(boots.counts, ["never": 1])
    }

    /// `qluman boot status` and `boot watch` against a running qlumand, as an administrator
    /// meets them: exit status, JSON shape, the stuck flag, and a stage change arriving live.
    func testBootStatusFlagsStuckAndSilentNodesAndWatchShowsChangesAsTheyHappen() throws {
        let (s, f, _) = try start()
        for i in 1...2 {
            _ = try f.registry.addNode(
                name: "beo-0\(i)", macs: ["52:54:00:00:00:0\(i)"], ip: "10.0.0.\(i)/16", image: nil, group: nil)
        }
        let socket = ["--socket", s.settings.adminSocket]
        func qluman(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
            try ReleaseTool.run("qluman", args + socket, environment: ["PATH": "/usr/bin:/bin"])
        }
        var r = try qluman(["boot", "status"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("2 nodes: never 2\n"), r.stdout)

        // beo-01's firmware asked for DHCP 100 s ago and nothing since: stuck; beo-02 is silent.
        let t0 = BootMonitor.now() - 100
        s.boots.record("beo-01", BootEvent(at: t0, stage: .dhcp, what: "DHCPDISCOVER (PXE)"), startsBoot: true)
        r = try qluman(["boot", "status", "--json"])
        XCTAssertEqual(r.status, 2, "a stuck or silent node: exit status 2")
        let status = try JSONDecoder().decode(BootStatus.self, from: Data(r.stdout.utf8))
        XCTAssertEqual(status.counts, ["dhcp": 1, "silent": 1, "stuck": 1])
        XCTAssertEqual(status.nodes.map(\.node), ["beo-01", "beo-02"])
        XCTAssertEqual(status.nodes[0].stuck, true)
        XCTAssertEqual(status.nodes[0].stage, .dhcp)
        XCTAssertEqual(status.nodes[1].state, "silent")
        r = try qluman(["boot", "status", "beo-01", "--stuck", "500"])
        XCTAssertEqual(r.status, 0, "not stuck under a longer threshold: \(r.stdout)")
        XCTAssertTrue(r.stdout.contains("beo-01            booting  dhcp       100 s"), r.stdout)
        r = try qluman(["boot", "status", "beo-0[1-"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("'[' is not closed at character 9"), r.stderr)

        // watch, its output a pipe: a line per change, as the stages arrive.
        let done = DispatchSemaphore(value: 0)
        let result = WatchResult()
        let args = ["boot", "watch", "beo-01", "--interval", "0.2", "--timeout", "30"] + socket
        DispatchQueue.global().async {
            result.value = try? ReleaseTool.run("qluman", args, environment: ["PATH": "/usr/bin:/bin"])
            done.signal()
        }
        for stage in [BootStage.tftp, .image, .up] {
            usleep(700_000)
            s.boots.record("beo-01", BootEvent(at: BootMonitor.now(), stage: stage, what: stage.rawValue))
        }
        XCTAssertEqual(done.wait(timeout: .now() + 30), .success, "watch ends once the node is up")
        let watch = try XCTUnwrap(result.value)
        XCTAssertEqual(watch.status, 0, watch.stderr)
        // Each change once, after its time stamp; then the counts.
        let lines = watch.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(
            lines.dropLast().map { String($0.drop { $0 != " " }.dropFirst()) },
            ["beo-01 dhcp STUCK", "beo-01 dhcp STUCK -> tftp", "beo-01 tftp -> image", "beo-01 image -> up"],
            watch.stdout)
        XCTAssertTrue(lines.last?.hasPrefix("1 nodes: up 1; wave began") == true, watch.stdout)
        // A node that never comes: watch gives up after its timeout, exit status 2.
        r = try qluman(["boot", "watch", "beo-02", "--interval", "0.2", "--timeout", "1"])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stdout.contains("beo-02 silent"), r.stdout)
        XCTAssertTrue(r.stdout.contains("(gave up after 1 s)"), r.stdout)
    }
}

/// What the watch thread got. `@unchecked Sendable`: written once before the semaphore is
/// signalled, read only after the wait.
private final class WatchResult: @unchecked Sendable {
    var value: (status: Int32, stdout: String, stderr: String)?
}
