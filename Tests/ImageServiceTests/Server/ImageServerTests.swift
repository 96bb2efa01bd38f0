import Foundation
import ImageService
import LabSupport
import LabTestSupport
import Logging
import Platform
import Transport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// ql-mcastd's control plane in process, on 127.0.0.1: tickets, grouping, limits, fetch, and
/// everything a bad client can send. The window is long, so no session starts and nothing is
/// multicast; streaming itself is tested on the test hosts (ImageStreamingLabTests).
final class ImageServerTests: XCTestCase {
    var dir = ""
    var server: ImageServer?

    override func tearDown() {
        server?.stop()
        server = nil
        try? FileManager.default.removeItem(atPath: dir)
    }

    @discardableResult
    func start(_ adjust: (inout DaemonConfiguration) -> Void = { _ in }) throws -> ImageServer {
        dir = NSTemporaryDirectory() + "mcastd-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        var c = DaemonConfiguration()
        c.root = Root(dir)
        c.interface = IPv4Address("127.0.0.1")
        c.listenHost = "127.0.0.1"
        c.listenPort = 0
        c.windowSeconds = 600
        c.shutdownGraceSeconds = 0
        adjust(&c)
        try FileManager.default.createDirectory(atPath: c.root.images, withIntermediateDirectories: true)
        for (name, size) in [("compute", 1_000_003), ("gpu", 20_000)] {
            let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ name.count) }
            try Data(bytes).write(to: URL(fileURLWithPath: c.root.images + "/\(name).img"))
        }
        let s = try ImageServer(configuration: c, log: Logger(root: c.root, name: "ql-mcastd", echo: false))
        try s.start()
        server = s
        return s
    }

    func client() throws -> ControlClient {
        try ControlClient(host: "127.0.0.1", port: server!.port, timeout: 5, maxData: 8 << 20)
    }

    func ticket(_ c: ControlClient, _ image: String, unicast: Bool? = nil) throws -> ImageTicket {
        try c.call(
            ImageOperation.requestImage, ImageRequest(image: image, host: "n1", unicast: unicast), as: ImageTicket.self)
    }

    func failure(_ body: () throws -> Void) -> ControlFailure? {
        do { try body() } catch { return error as? ControlFailure }
        return nil
    }

    func testRequestsWithinTheWindowShareOneSessionAndImagesGetDistinctGroups() throws {
        try start()
        let c = try client()
        let a = try ticket(c, "compute")
        let b = try ticket(try client(), "compute")
        let g = try ticket(c, "gpu")
        XCTAssertEqual(a.mode, .multicast)
        XCTAssertEqual(a.sessionID, b.sessionID)
        XCTAssertEqual(a.group, b.group)
        XCTAssertNotEqual(a.receiverID, b.receiverID)
        XCTAssertNotEqual(a.sessionID, g.sessionID)
        XCTAssertNotEqual("\(a.group!):\(a.port!)", "\(g.group!):\(g.port!)")
        XCTAssertEqual(a.objectSize, 1_000_003)
        XCTAssertGreaterThan(a.startsInMillis, 500_000)
        let status = try c.call(ImageOperation.status, [String: String](), as: ServerStatus.self)
        XCTAssertEqual(status.sessions.count, 2)
        XCTAssertEqual(status.sessions.first { $0.image == "compute" }?.members.count, 2)
        XCTAssertEqual(status.counters.requests, 3)
    }

    func testUnknownImagesAndBadNamesAreAnsweredAndCounted() throws {
        try start()
        let c = try client()
        XCTAssertEqual(
            failure { _ = try ticket(c, "nosuch") },
            ControlFailure(.notFound, "no image 'nosuch' on this server (images: compute, gpu)"))
        for bad in ["../etc/passwd", "a/b", "..", ""] {
            XCTAssertEqual(failure { _ = try ticket(c, bad) }?.code, .malformedRequest, bad)
        }
        XCTAssertEqual(
            failure { _ = try c.call(ControlRequest(op: "request-image", args: Array(#"{"image": 7}"#.utf8))) }?.code,
            .malformedRequest)
        XCTAssertEqual(failure { _ = try c.call(ControlRequest(op: "format-disk")) }?.code, .unknownOperation)
        // The connection stays usable after every refusal.
        XCTAssertEqual(try ticket(c, "gpu").mode, .multicast)
        let counters = server!.sessions.counters
        XCTAssertEqual(counters.unknownImages, 1)
        XCTAssertEqual(counters.badRequests, 6)
    }

    func testExpectIsTheLargestAnyMemberGaveAndOutOfRangeValuesAreRefused() throws {
        try start()
        let c = try client()
        func ask(_ expect: Int?, host: String) throws -> ImageTicket {
            try c.call(
                ImageOperation.requestImage, ImageRequest(image: "compute", host: host, expect: expect),
                as: ImageTicket.self)
        }
        for bad in [0, -3, ImageRequest.maxExpect + 1, Int.max, Int.min] {
            XCTAssertEqual(failure { _ = try ask(bad, host: "x") }?.code, .malformedRequest, "\(bad)")
        }
        XCTAssertEqual(
            failure {
                _ = try c.call(
                    ControlRequest(op: "request-image", args: Array(#"{"image": "compute", "expect": "all"}"#.utf8)))
            }?.code, .malformedRequest)
        // Three expected; a second member saying one cannot lower it, so the window still holds.
        XCTAssertGreaterThan(try ask(3, host: "n1").startsInMillis, 500_000)
        XCTAssertGreaterThan(try ask(1, host: "n2").startsInMillis, 500_000)
        let status = try c.call(ImageOperation.status, [String: String](), as: ServerStatus.self)
        XCTAssertEqual(status.sessions.first?.expected, 3)
        let counters = server!.sessions.counters
        XCTAssertEqual(counters.badExpect, 5)
        XCTAssertGreaterThanOrEqual(counters.badRequests, 6)
    }

    func testFetchReturnsExactBytesAndRefusesBadRanges() throws {
        let s = try start()
        let c = try client()
        let t = try ticket(c, "compute", unicast: true)
        XCTAssertEqual(t.mode, .unicast)
        let expected = try Data(contentsOf: URL(fileURLWithPath: s.configuration.root.images + "/compute.img"))
        for (offset, length) in [(0, 1), (0, 4_096), (999_000, 1_003), (123_457, 65_537)] {
            let request = try ControlRequest(
                op: ImageOperation.fetch,
                arguments: FetchRequest(image: "compute", sha256: t.sha256, offset: UInt64(offset), length: length))
            let (json, payload) = try c.fetch(request)
            XCTAssertEqual(try JSONDecoder().decode(FetchHeader.self, from: Data(json)).length, length)
            XCTAssertEqual(Data(payload), expected[offset..<(offset + length)])
        }
        func fetch(_ offset: UInt64, _ length: Int, digest: SHA256Digest? = nil) -> ControlFailure? {
            failure {
                _ = try c.fetch(
                    ControlRequest(
                        op: ImageOperation.fetch,
                        arguments: FetchRequest(
                            image: "compute", sha256: digest ?? t.sha256, offset: offset, length: length)))
            }
        }
        XCTAssertEqual(fetch(1_000_000, 4)?.message, "range 1000000+4 lies outside image 'compute' (1000003 bytes)")
        XCTAssertEqual(fetch(UInt64.max - 1, 4)?.code, .malformedRequest)
        XCTAssertEqual(fetch(0, 0)?.code, .malformedRequest)
        XCTAssertEqual(fetch(0, 64 << 20)?.code, .malformedRequest)
        XCTAssertEqual(fetch(0, 10, digest: .zero)?.code, .notFound)
        XCTAssertEqual(s.sessions.counters.fetches, 4)
    }

    func testGarbageTruncatedAndOversizedFramesDoNotStopTheServer() throws {
        let s = try start()
        let port = s.port
        XCTAssertTrue(try RawTCP.exchange(port: port, send: Array("GET / HTTP/1.1\r\n\r\n".utf8)).contains("bad magic"))
        var huge: [UInt8] = [0x51, 0x4C, 0x43, 0x43, 1, 1, 0, 0, 0, 0, 0, 1]
        huge += [0x7F, 0xFF, 0xFF, 0xFF]
        XCTAssertTrue(
            try RawTCP.exchange(port: port, send: huge).contains("frame body of 2147483647 bytes exceeds the limit"))
        _ = try RawTCP.exchange(port: port, send: [0x51, 0x4C, 0x43], wait: 0.2)  // truncated, then gone
        var garbage = SplitMix64(seed: 7)
        for _ in 0..<50 {
            _ = try RawTCP.exchange(
                port: port, send: (0..<64).map { _ in UInt8(truncatingIfNeeded: garbage.next()) }, wait: 0.2)
        }
        XCTAssertEqual(try ticket(try client(), "compute").mode, .multicast)
        let status = try client().call(ImageOperation.status, [String: String](), as: ServerStatus.self)
        XCTAssertGreaterThanOrEqual(status.counters.controlFramingErrors, 50)
    }

    func testSilentClientsAreClosedAndAThousandIdleConnectionsDoNotBlockOthers() throws {
        try Requirements.descriptors(4_096)
        // All from 127.0.0.1 here: the per-host bound (tested in ControlChannelTests) is lifted.
        let s = try start {
            $0.idleTimeoutSeconds = 2
            $0.maxConnectionsPerHost = 2_000
        }
        var idle: [Int32] = []
        defer { idle.forEach { close($0) } }
        for _ in 0..<1_000 { idle.append(try RawTCP.connectIdle(port: s.port)) }
        // Everyone else is still served at once.
        let t0 = MonotonicClock.nanoseconds()
        XCTAssertEqual(try ticket(try client(), "gpu").mode, .multicast)
        XCTAssertLessThan(Double(MonotonicClock.nanoseconds() - t0) / 1e9, 2)
        // The silent ones are closed with a reason after the idle timeout.
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(idle[0], SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var buf = [UInt8](repeating: 0, count: 512)
        let n = read(idle[0], &buf, buf.count)
        XCTAssertGreaterThan(n, 0)
        XCTAssertTrue(String(decoding: buf[0..<max(0, n)], as: UTF8.self).contains("idle too long"))
        let deadline = Date().addingTimeInterval(10)
        var status = try client().call(ImageOperation.status, [String: String](), as: ServerStatus.self)
        while status.counters.controlIdleTimeouts < 1_000, Date() < deadline {
            usleep(200_000)
            status = try client().call(ImageOperation.status, [String: String](), as: ServerStatus.self)
        }
        XCTAssertGreaterThanOrEqual(status.counters.controlIdleTimeouts, 1_000)
    }

    func testLimitsGiveAClearAnswerNeverAHang() throws {
        try start {
            $0.maxSessions = 1
            $0.maxClients = 2
        }
        let c = try client()
        XCTAssertEqual(try ticket(c, "compute").mode, .multicast)
        let other = try ticket(c, "gpu")
        XCTAssertEqual(other.mode, .unicast)
        XCTAssertEqual(other.reason, "1 sessions running, the limit (max-sessions): use unicast")
        XCTAssertEqual(try ticket(c, "compute").mode, .multicast)
        XCTAssertEqual(
            failure { _ = try ticket(c, "compute") },
            ControlFailure(.busy, "ql-mcastd serves 2 clients, its limit (max-clients); retry in 5 s"))
        XCTAssertEqual(server!.sessions.counters.refusedAtLimit, 2)
    }

    func testAStoppingServerTellsClientsToRetry() throws {
        let s = try start()
        let c = try client()
        s.sessions.shutdown(grace: 0)
        XCTAssertEqual(failure { _ = try ticket(c, "compute") }?.code, .busy)
    }

    func testUnicastOnlyClientFetchesVerifiesAndWritesAtomically() throws {
        let s = try start()
        let out = dir + "/node/compute.img"
        var options = ClientOptions(server: HeadNode(host: "127.0.0.1", port: s.port), image: "compute", output: out)
        options.unicastOnly = true
        options.fetchChunk = 300_000  // several fetches, the last one short
        let client = ImageClient(
            options: options, log: Logger(root: Root(dir + "/node"), name: "ql-mcast-client", echo: false))
        client.showProgress = false
        let report = try client.run()
        XCTAssertEqual(report.path, "unicast")
        XCTAssertEqual(report.unicastBytes, 1_000_003)
        XCTAssertEqual(
            try Data(contentsOf: URL(fileURLWithPath: out)),
            try Data(contentsOf: URL(fileURLWithPath: s.configuration.root.images + "/compute.img")))
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + ".partial"))
        XCTAssertEqual(s.sessions.counters.fetches, 4)
        let log = try String(contentsOfFile: dir + "/node/var/log/qlustar/ql-mcast-client.log", encoding: .utf8)
        XCTAssertTrue(log.contains("verified"), log)
    }

    func testPrometheusMetricsOverHTTP() throws {
        let s = try start { $0.metrics = ("127.0.0.1", 0) }
        _ = try ticket(try client(), "compute")
        let reply = try RawTCP.exchange(port: s.metricsPort, send: Array("GET /metrics HTTP/1.0\r\n\r\n".utf8))
        XCTAssertTrue(reply.hasPrefix("HTTP/1.0 200 OK"), reply)
        XCTAssertTrue(reply.contains("Content-Type: text/plain; version=0.0.4"), reply)
        XCTAssertTrue(reply.contains("\nqlmcastd_requests_total 1\n"), reply)
        XCTAssertTrue(reply.contains("qlmcastd_sessions{state=\"gathering\"} 1"), reply)
        XCTAssertTrue(reply.contains("qlmcastd_session_members{session="), reply)
        let missing = try RawTCP.exchange(port: s.metricsPort, send: Array("GET /other HTTP/1.0\r\n\r\n".utf8))
        XCTAssertTrue(missing.hasPrefix("HTTP/1.0 404 Not Found"), missing)
    }

    /// Makes a cluster CA and a ql-mcastd certificate for 127.0.0.1 with `scripts/cluster-ca`.
    func makeCA(_ name: String) throws -> String {
        let ca = NSTemporaryDirectory() + "ca-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: ca) }
        try Lab.run(
            LabHarness.repositoryRoot.appendingPathComponent("scripts/cluster-ca").path,
            [ca, "ql-mcastd", "127.0.0.1", "localhost"])
        return ca
    }

    func testTLSCarriesSessionKeysAndFetchesOnlyToClientsTrustingTheClusterCA() throws {
        let ca = try makeCA("good")
        let s = try start {
            $0.tlsCertificate = ca + "/ql-mcastd.crt"
            $0.tlsKey = ca + "/ql-mcastd.key"
            $0.authenticate = true
        }
        for host in ["127.0.0.1", "localhost"] {
            let c = try ControlClient(
                host: host, port: s.port, timeout: 5, maxData: 8 << 20,
                tls: try ControlTLS.client(ca: ca + "/ca.crt", host: host))
            let t = try ticket(c, "compute")
            XCTAssertEqual(t.key?.count, 64, "a 256-bit session key, hex")
            // Under TLS the fallback's bytes are read and encrypted (no sendfile): still exact.
            let (_, payload) = try c.fetch(
                ControlRequest(
                    op: ImageOperation.fetch,
                    arguments: FetchRequest(image: "compute", sha256: t.sha256, offset: 999_000, length: 1_003)))
            let expected = try Data(contentsOf: URL(fileURLWithPath: s.configuration.root.images + "/compute.img"))
            XCTAssertEqual(Data(payload), expected[999_000..<1_000_003])
        }
        // A plain client learns nothing; a client trusting another CA refuses the server.
        XCTAssertNotNil(
            failure { _ = try ticket(try ControlClient(host: "127.0.0.1", port: s.port, timeout: 5), "compute") })
        let other = try makeCA("other")
        let wrong = try ControlClient(
            host: "127.0.0.1", port: s.port, timeout: 5,
            tls: try ControlTLS.client(ca: other + "/ca.crt", host: "127.0.0.1"))
        XCTAssertEqual(failure { _ = try ticket(wrong, "compute") }?.code, .tls)
        usleep(200_000)
        let good = try ControlClient(
            host: "127.0.0.1", port: s.port, timeout: 5,
            tls: try ControlTLS.client(ca: ca + "/ca.crt", host: "127.0.0.1"))
        let status = try good.call(ImageOperation.status, [String: String](), as: ServerStatus.self)
        XCTAssertEqual(status.counters.controlTLSErrors, 2, "the plain client and the one that refused the server")
    }

    func testAClientThatAsksWithoutReadingIsToldBusyNotBuffered() throws {
        let s = try start()
        let t = try ticket(try client(), "compute")
        // 64 fetches of 1 MB in one go, then nothing read for a while: the server must not queue
        // 64 MB for it; once its queue is full the rest are refused.
        var stream: [UInt8] = []
        for id in 1...64 {
            let body = Array(
                #"{"op":"fetch","args":{"image":"compute","sha256":"\#(t.sha256)","offset":0,"length":1000000}}"#.utf8)
            stream += [0x51, 0x4C, 0x43, 0x43, 1, 1, 0, 0]
            stream += withUnsafeBytes(of: UInt32(id).bigEndian, Array.init)
            stream += withUnsafeBytes(of: UInt32(body.count).bigEndian, Array.init)
            stream += body
        }
        let reply = try RawTCP.exchange(port: s.port, send: stream, wait: 3)
        let refused = reply.components(separatedBy: "earlier answers on this connection are still unread").count - 1
        let served = reply.components(separatedBy: "QLCC\u{1}\u{4}").count - 1
        XCTAssertGreaterThan(refused, 0)
        XCTAssertGreaterThan(served, 0)
        XCTAssertEqual(refused + served, 64)
    }

    /// `fetch-file`: the other head's copy of the files published beside an image.
    func testOnlyTheOtherHeadGetsTheFilesBesideAnImageAndNothingOutsideThem() throws {
        let tokenFile = NSTemporaryDirectory() + "peer-\(getpid()).token"
        defer { try? FileManager.default.removeItem(atPath: tokenFile) }
        let secret = String(repeating: "s3cret-", count: 4)
        try secret.write(toFile: tokenFile, atomically: true, encoding: .utf8)
        chmod(tokenFile, 0o644)
        // A secret others may read is refused at start, naming the chmod.
        XCTAssertThrowsError(try start { $0.peerToken = tokenFile }) {
            XCTAssertEqual(
                ($0 as? QlustarError)?.message,
                "peer-token file \(tokenFile) may be read by others (mode 644); chmod 600 \(tokenFile)")
        }
        tearDown()
        chmod(tokenFile, 0o600)
        let s = try start { $0.peerToken = tokenFile }
        let initrd = (0..<300_001).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try Data(initrd).write(to: URL(fileURLWithPath: s.configuration.root.images + "/compute.initrd"))
        try FileManager.default.createSymbolicLink(
            atPath: s.configuration.root.images + "/gpu.initrd", withDestinationPath: "/etc/shadow")
        let c = try client()
        func fetch(_ image: String, _ file: PublishedFile, _ offset: UInt64, _ length: Int, token: String = secret)
            throws -> (FileFetchHeader, ArraySlice<UInt8>)
        {
            let r = FileFetchRequest(image: image, file: file, offset: offset, length: length, token: token)
            let answer = try c.fetch(try ControlRequest(op: ImageOperation.fetchFile, arguments: r))
            return (try JSONDecoder().decode(FileFetchHeader.self, from: Data(answer.json)), answer.payload)
        }
        // The secret: the bytes, the last range short at the file's end.
        let (h1, p1) = try fetch("compute", .initrd, 0, 200_000)
        XCTAssertEqual([h1.offset, UInt64(h1.length), h1.size], [0, 200_000, 300_001])
        let (h2, p2) = try fetch("compute", .initrd, 200_000, 200_000)
        XCTAssertEqual(h2.length, 100_001)
        XCTAssertEqual(Array(p1) + Array(p2), initrd)
        // Without it, a wrong one, a link out of the directory, a name that is a path, a range
        // outside, a file that is not there: refused, counted, the server serves on.
        XCTAssertEqual(failure { _ = try fetch("compute", .initrd, 0, 10, token: "guess") }?.code, .notRegistered)
        XCTAssertEqual(failure { _ = try fetch("gpu", .initrd, 0, 10) }?.code, .notFound)
        XCTAssertEqual(failure { _ = try fetch("../etc/passwd", .initrd, 0, 10) }?.code, .malformedRequest)
        XCTAssertEqual(failure { _ = try fetch("compute", .initrd, 300_002, 10) }?.code, .malformedRequest)
        XCTAssertEqual(failure { _ = try fetch("compute", .initrd, 0, 9 << 20) }?.code, .malformedRequest)
        XCTAssertEqual(failure { _ = try fetch("compute", .vmlinuz, 0, 10) }?.code, .notFound)
        let counters = try c.call(ImageOperation.status, [String: String](), as: ServerStatus.self).counters
        XCTAssertEqual(counters.peerRefusals, 1)
        XCTAssertEqual(counters.peerFileFetches, 2)
        XCTAssertEqual(counters.peerFileBytes, 300_001)
        // The secret also lists and fetches images where a registry would refuse this host.
        XCTAssertEqual(
            try c.call(ImageOperation.listImages, Credentials(token: secret), as: [ImageManifest].self).map { $0.name },
            ["compute", "gpu"])
    }
}
