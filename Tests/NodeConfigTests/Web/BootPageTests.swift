import Foundation
import LabSupport
import LabTestSupport
import Logging
import NodeConfig
import Platform
import QlumanServer
import XCTest

/// qlumand's boot page with 1,000 registered nodes, loaded by headless Chromium over the
/// DevTools protocol (scripts/web-check): every node appears with its stage, a stage change
/// arrives without a reload, and what a stranger sends is refused.
final class BootPageTests: XCTestCase {
    private var fixture: ConfigFixture?
    private var server: QlumanServer?

    override func tearDown() {
        server?.stop()
        server = nil
        fixture = nil
    }

    static let nodes = 1_000

    static func name(_ i: Int) -> String { String(printf: "vn%04d", Int32(i)) }

    /// A qlumand with its page on loopback, 1,000 nodes registered and in the middle of a wave.
    private func start() throws -> (QlumanServer, ConfigFixture, cert: String, token: String) {
        let f = try ConfigFixture()
        fixture = f
        let ssl = f.dir + "/ssl"
        try Lab.run(
            LabHarness.repositoryRoot.appendingPathComponent("scripts/cluster-ca").path, [ssl, "qlumand", "127.0.0.1"])
        for i in 1...Self.nodes {
            _ = try f.registry.addNode(
                name: Self.name(i), macs: [String(printf: "52:54:00:00:%02x:%02x", Int32(i >> 8), Int32(i & 255))],
                ip: "10.1.\(i / 250).\(i % 250 + 1)/16", image: "compute", group: nil)
        }
        var settings = QlumanServer.Settings(root: f.root, certificate: ssl + "/qlumand.crt", key: ssl + "/qlumand.key")
        settings.listenHost = "127.0.0.1"
        settings.listenPort = 0
        settings.imageServer = nil
        settings.web = ("127.0.0.1", 0)
        settings.webToken = f.dir + "/web.token"
        settings.metrics = ("127.0.0.1", 0)
        let s = try QlumanServer(settings: settings, log: Logger(root: f.root, name: "qlumand", echo: false))
        try s.start()
        server = s
        // The wave: every node but the last began a minute ago and got as far as i % 9 stages;
        // vn0007 failed, vn0500 is fetching its image, vn1000 has not been heard of.
        let t0 = BootMonitor.now() - 60
        let stages = BootStage.allCases
        for i in 1..<Self.nodes {
            let node = Self.name(i)
            s.boots.record(node, BootEvent(at: t0, stage: .dhcp, what: "DHCPDISCOVER (PXE)"), startsBoot: true)
            let reached = i == 500 ? 3 : i % stages.count
            for k in 1...max(1, reached) where k < stages.count {
                s.boots.record(node, BootEvent(at: t0 + Double(k) * 5, stage: stages[k], what: stages[k].rawValue))
            }
        }
        s.boots.record("vn0007", BootEvent(at: t0 + 30, stage: .image, what: "no image 'x'", failed: true))
        return (s, f, ssl + "/qlumand.crt", try String(contentsOfFile: f.dir + "/web.token", encoding: .utf8))
    }

    func testAThousandNodesAppearWithTheirStagesAndAChangeArrivesWithoutAReload() throws {
        try Requirements.require(
            FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium"), "needs chromium (scripts/setup)")
        let (s, f, cert, _) = try start()
        // What the page may show: a node whose stage turns "stuck" (60 s) while the browser starts
        // and loads may show either; all others exactly what the monitor says.
        let before = s.boots.status(BootStatusRequest(nodes: nil, stuckSeconds: 60), connected: [])
        let stuckBefore = Dictionary(uniqueKeysWithValues: before.nodes.map { ($0.node, $0.stuck) })
        let url = "https://127.0.0.1:\(s.webPort)"
        let shot = LabHarness.repositoryRoot.appendingPathComponent(".build/test-artifacts/boot-page.png").path
        try FileManager.default.createDirectory(
            atPath: (shot as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = [
            LabHarness.repositoryRoot.appendingPathComponent("scripts/web-check").path, "--url", url, "--cert", cert,
            "--token-file", f.dir + "/web.token", "--screenshot", shot, "--watch", "vn0500", "--stage", "up",
            "--timeout", "90",
        ]
        let input = Pipe()
        let output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        defer { if p.isRunning { p.terminate() } }
        let lines = LineReader(output.fileHandleForReading)

        let loaded = try XCTUnwrap(lines.next(timeout: 90), "the page loaded")
        let page = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(loaded.utf8)) as? [String: Any])
        let tiles = try XCTUnwrap(page["tiles"] as? [String: [String: Any]])
        XCTAssertEqual(tiles.count, Self.nodes, "every node has its tile")
        let expected = s.boots.status(BootStatusRequest(nodes: nil, stuckSeconds: 60), connected: [])
        for line in expected.nodes {
            let tile = try XCTUnwrap(tiles[line.node], line.node)
            XCTAssertEqual(tile["state"] as? String, line.state, line.node)
            XCTAssertEqual(tile["stage"] as? String, line.stage?.rawValue ?? "", line.node)
            if stuckBefore[line.node] == line.stuck {
                XCTAssertEqual(tile["stuck"] as? Bool, line.stuck, line.node)
            } else {
                XCTAssertNotNil(
                    tile["stuck"] as? Bool, "\(line.node) crossed the stuck threshold while the page loaded")
            }
        }
        XCTAssertEqual(tiles["vn0007"]?["state"] as? String, "failed")
        XCTAssertEqual(tiles["vn1000"]?["state"] as? String, "silent")
        XCTAssertEqual(tiles["vn0500"]?["stage"] as? String, "image")
        XCTAssertTrue((page["summary"] as? String ?? "").hasPrefix("1000 nodes: "), "\(page["summary"] ?? "")")

        // vn0500 comes up now: the tile turns without a reload.
        s.boots.record("vn0500", BootEvent(at: BootMonitor.now(), stage: .up, what: "execd connected"))
        input.fileHandleForWriting.write(Data("changed \(Int64(Date().timeIntervalSince1970 * 1_000))\n".utf8))
        let changed = try XCTUnwrap(lines.next(timeout: 30), "the change arrived")
        let result = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(changed.utf8)) as? [String: Any])
        XCTAssertEqual(result["reloaded"] as? Bool, false)
        XCTAssertGreaterThanOrEqual(result["updates"] as? Int ?? 0, 1, "a pushed update, not a reload")
        let latency = try XCTUnwrap(result["latencyMs"] as? Int)
        XCTAssertLessThan(latency, 5_000, "a change reaches the page within a few pushes")
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        XCTAssertGreaterThan((try? FileManager.default.attributesOfItem(atPath: shot)[.size] as? Int) ?? 0, 10_000)
        print(
            "boot page: \(Self.nodes) nodes, loaded in \(page["loadMs"] ?? "?") ms, a change shown \(latency) ms after it was made; screenshot \(shot)"
        )
    }

    func testMetricsCountTheNodesPerStageAndHowLongStagesTook() throws {
        let (s, _, _, _) = try start()
        let text = try Lab.run(
            "/usr/bin/python3",
            [
                "-c", "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1]).read().decode(), end='')",
                "http://127.0.0.1:\(s.metricsPort)/metrics",
            ])
        var samples: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            XCTAssertEqual(parts.count, 2, String(line))
            samples[String(parts[0])] = Double(parts[1])
        }
        let counts = s.boots.status(BootStatusRequest(nodes: nil, stuckSeconds: 60), connected: []).counts
        for stage in BootStage.allCases where stage != .up {
            XCTAssertEqual(
                samples["qlumand_boot_nodes{state=\"booting\",stage=\"\(stage.rawValue)\"}"],
                Double(counts[stage.rawValue] ?? 0), stage.rawValue)
        }
        XCTAssertEqual(samples["qlumand_boot_nodes{state=\"up\"}"], Double(counts["up"] ?? 0))
        XCTAssertEqual(samples["qlumand_boot_nodes{state=\"failed\"}"], 1)
        XCTAssertEqual(samples["qlumand_boot_nodes{state=\"silent\"}"], 1)
        XCTAssertEqual(samples["qlumand_registered_nodes"], Double(Self.nodes))
        // Every one of the 999 boots left dhcp after 5 s: all in the 5 s bucket, none in 2 s.
        XCTAssertEqual(samples["qlumand_boot_stage_seconds_count{stage=\"dhcp\"}"], 999)
        XCTAssertEqual(samples["qlumand_boot_stage_seconds_sum{stage=\"dhcp\"}"], 999 * 5)
        XCTAssertEqual(samples["qlumand_boot_stage_seconds_bucket{stage=\"dhcp\",le=\"2\"}"], 0)
        XCTAssertEqual(samples["qlumand_boot_stage_seconds_bucket{stage=\"dhcp\",le=\"5\"}"], 999)
        XCTAssertEqual(samples["qlumand_boot_stage_seconds_bucket{stage=\"dhcp\",le=\"+Inf\"}"], 999)
        XCTAssertEqual(samples["qlumand_boots_started_total"], 999)
        XCTAssertTrue(text.contains("# TYPE qlumand_boot_stage_seconds histogram\n"))
    }

    func testStrangersGetNothingButTheLoginPage() throws {
        let (s, _, cert, token) = try start()
        // Python's http.client with the certificate as the trust anchor: what a browser would send.
        let script = """
            import http.client, ssl, sys, socket
            port, cert, token = int(sys.argv[1]), sys.argv[2], sys.argv[3].strip()
            ctx = ssl.create_default_context(cafile=cert); ctx.check_hostname = False
            ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the page's certificate is the anchor
            def ask(method, path, body=None, headers={}):
                c = http.client.HTTPSConnection('127.0.0.1', port, context=ctx, timeout=10)
                c.request(method, path, body=body, headers=headers)
                r = c.getresponse(); data = r.read()
                return r.status, r.getheader('Set-Cookie') or '', data
            form = {'Content-Type': 'application/x-www-form-urlencoded'}
            print(ask('GET', '/api/status')[0], ask('GET', '/api/events')[0], ask('GET', '/api/node?name=vn0001')[0])
            print(ask('POST', '/login', 'token=wrong', form)[0], ask('GET', '/nothing')[0], ask('DELETE', '/')[0])
            print(ask('POST', '/login', 'token=' + 'x' * 5000, form)[0])
            status, cookie, _ = ask('POST', '/login', 'token=' + token, form)
            print(status, 'HttpOnly' in cookie and 'Secure' in cookie and 'SameSite=Strict' in cookie)
            session = {'Cookie': cookie.split(';')[0]}
            print(ask('GET', '/api/status', headers=session)[0], ask('GET', '/api/node?name=../../etc', headers=session)[0],
                  ask('GET', '/api/node?name=vn0001', headers=session)[0])
            s = socket.create_connection(('127.0.0.1', port)); s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')
            s.settimeout(5); print(len(s.recv(100) or b''))
            """
        let out = try Lab.run("/usr/bin/python3", ["-c", script, "\(s.webPort)", cert, token])
        XCTAssertEqual(
            out,
            """
            401 401 401
            403 404 405
            413
            303 True
            200 400 200
            0

            """)
    }
}

/// Lines from a pipe, each waited for with a bound (a stuck browser must not hang the test).
final class LineReader: @unchecked Sendable {
    private let handle: FileHandle
    private var buffer = Data()

    init(_ handle: FileHandle) { self.handle = handle }

    func next(timeout: Double) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let i = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[buffer.startIndex..<i], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...i)
                return line
            }
            var pfd = pollfd(fd: handle.fileDescriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 200) >= 0 else { return nil }
            if pfd.revents != 0 {
                let chunk = handle.availableData
                if chunk.isEmpty { return nil }
                buffer.append(chunk)
            }
        }
        return nil
    }
}
