import FoundationEssentials
import Logging
import Platform
import Transport

#if canImport(Glibc)
    import Glibc
#endif

/// How ql-mcast-client fetches an image.
public struct ClientOptions: Sendable {
    /// ql-mcastd on the first head node to try.
    public var server: HeadNode
    /// ql-mcastd on the other head nodes (`--server A,B`), in the order tried after `server`: the
    /// client uses the first that answers and goes on at the next when the one it uses is lost.
    public var otherServers: [HeadNode] = []
    /// Every head in the order tried.
    public var servers: [HeadNode] { [server] + otherServers }
    public var image: String
    public var output: String
    /// Local interface to join on; nil: the one routing picks toward the server.
    public var interface: IPv4Address?
    /// Skip multicast and fetch everything over the control connection.
    public var unicastOnly = false
    /// Seconds to wait, after the session's announced start, for it to reach us before falling back.
    public var multicastTimeout = 10.0
    /// Seconds of sender silence in a running session before falling back.
    public var idleTimeout = 5.0
    /// Seconds to keep trying to reach the server (it may still be starting) and to get a ticket.
    public var serverTimeout = 60.0
    /// Seeded loss on what this client receives (testing aid).
    public var simulateLoss = LossModel.none
    /// Seed of the loss model; nil: this client's receiver id (so nodes lose different datagrams).
    public var simulateLossSeed: UInt64?
    public var host = ProcessInfo.processInfo.hostName
    public var segmentationOffload = true
    /// The cluster CA (PEM) to verify ql-mcastd with over TLS (nil: plain TCP).
    public var ca: String?
    /// Bytes per unicast fetch.
    public var fetchChunk = 4 << 20
    /// This node's enrollment token, for a server with a registry that gives it one.
    public var token: String?
    /// Nodes of this boot wave that will ask (this one included): the session starts once they all
    /// have, instead of at its window's end. nil: the window alone.
    public var expect: Int?

    public init(server: HeadNode, image: String, output: String) {
        self.server = server
        self.image = image
        self.output = output
    }
}

/// What a fetch did.
public struct ClientReport: Sendable, Codable {
    public var image: String
    public var sha256: SHA256Digest
    public var size: UInt64
    /// "multicast", "multicast+unicast" or "unicast".
    public var path: String
    public var sessionID: UInt32
    public var lateJoin: Bool
    public var multicastBytes: UInt64
    public var unicastBytes: UInt64
    public var seconds: Double
    /// `seconds` without the wait for the session's grouping window: the transfer itself.
    public var transferSeconds: Double = 0
    /// Why multicast did not deliver everything, when it did not.
    public var fallbackReason: String?
    /// The bytes that came from each head node (`HOST:PORT`), by multicast and unicast together.
    public var bytesByServer: [String: UInt64] = [:]
    /// Each time the client went on at another head: "HOST:PORT -> HOST:PORT: why".
    public var serverSwitches: [String] = []
    public var receiver: ReceiverCounters?
    /// How long this node waited for the session to start: from its ticket to the session's first
    /// ANNOUNCE (what the ticket said when none came). A session starts before the ticket's time
    /// when every expected member has asked.
    public var windowWaitSeconds: Double = 0
}

/// ql-mcast-client's work: ask ql-mcastd for an image, receive it by multicast with everyone
/// who asked at the same time, fetch over unicast only what multicast did not deliver, verify
/// the SHA-256, and only then put the file where the next boot step looks.
///
/// The image is written to `OUTPUT.partial` (mapped, written in place) and renamed to `OUTPUT`
/// after verification; a failed or corrupt transfer removes it, so a corrupt image is never
/// left where it would be used.
public final class ImageClient {
    public let options: ClientOptions
    let log: Logger
    /// Show progress (a bar on a terminal, lines in the log otherwise).
    public var showProgress = true
    /// Index into `options.servers` of the head in use.
    private var current = 0
    private var head: HeadNode { options.servers[current] }
    /// Across attempts, for the report: the bytes each head delivered, and every switch.
    private var bytesByServer: [String: UInt64] = [:]
    private var switches: [String] = []

    public init(options: ClientOptions, log: Logger) {
        self.options = options
        self.log = log
    }

    /// Fetches and verifies the image.
    /// - Throws: `.notFound`/`.refused` (the server will not serve it), `.unreachable` (no
    ///   server within the timeout), `.integrity` (the digest did not match, twice), `.transfer`
    ///   or `.io`.
    public func run() throws(QlustarError) -> ClientReport {
        let name = try ImageName(options.image)
        let t0 = MonotonicClock.nanoseconds()
        var attempt = 0
        while true {
            attempt += 1
            do {
                var report = try attemptFetch(name)
                report.seconds = Double(MonotonicClock.nanoseconds() - t0) / 1e9
                report.transferSeconds = max(0, report.seconds - report.windowWaitSeconds)
                report.bytesByServer = bytesByServer
                report.serverSwitches = switches
                if switches.count > 0 {
                    let from = bytesByServer.sorted { $0.key < $1.key }.map { "\($0.value) from \($0.key)" }
                    let times = switches.count == 1 ? "once" : "\(switches.count) times"
                    log.info("'\(name)': bytes \(from.joined(separator: ", ")) (switched heads \(times))")
                }
                return report
            } catch let e where e.code == .replaced && attempt < 3 {
                // The image was replaced during our transfer: start over with the new version.
                log.warning("\(e.message); starting over")
            } catch let e where e.code == .serverLost && attempt < 2 + options.servers.count {
                // The head in use died mid-transfer: a new session at the next (`current` moved).
                log.warning("\(e.message)")
            }
        }
    }

    /// Tells ql-mcastd this client gives up and why, with the last lines of its log: what the
    /// head node's boot monitor shows for the node. Best effort, one try of at most 3 s.
    public func reportFailure(exitStatus: Int32, message: String, logFile: String?) {
        let tail = logFile.flatMap { Self.lastLines(of: $0, count: 10) }
        let report = ClientFailureReport(
            image: options.image, exitStatus: exitStatus, message: message, logTail: tail, token: options.token)
        do throws(QlustarError) {
            let client = try connect(deadline: MonotonicClock.nanoseconds() + 1_000_000_000)
            defer { client.close() }
            do throws(ControlFailure) {
                _ = try client.call(ImageOperation.report, report, as: [String: String].self, timeout: 2)
            } catch {
                log.notice("could not report the failure to ql-mcastd: \(error.message)")
            }
        } catch {
            log.notice("could not report the failure to ql-mcastd: \(error.message)")
        }
    }

    /// The last `count` lines of a file (read from its last 8 KiB).
    static func lastLines(of path: String, count: Int) -> [String]? {
        guard let fd = try? Posix.open(path, O_RDONLY | O_CLOEXEC) else { return nil }
        defer { Posix.close(fd) }
        guard let st = try? Posix.fstat(fd) else { return nil }
        let size = Int(st.st_size)
        let start = max(0, size - 8_192)
        var bytes = [UInt8](repeating: 0, count: size - start)
        let n = bytes.withUnsafeMutableBytes { (try? Posix.pread(fd, into: $0, at: start)) ?? 0 }
        let lines = String(decoding: bytes.prefix(n), as: UTF8.self).split(separator: "\n")
        return lines.suffix(count).map(String.init)
    }

    /// A control connection to the head in use, else to the next head that answers (the switch
    /// is logged and reported); every head is tried in turn until `deadline`.
    private func connect(deadline: UInt64) throws(QlustarError) -> ControlClient {
        let servers = options.servers
        var backoff = Backoff(first: 1, cap: 5)
        while true {
            var failures: [String] = []
            for step in 0..<servers.count {
                let index = (current + step) % servers.count
                let head = servers[index]
                let tls: ControlTLS?
                do {
                    tls = try options.ca.map { ca throws(ControlFailure) in
                        try ControlTLS.client(ca: ca, host: head.host)
                    }
                } catch {
                    throw QlustarError(.invalidArgument, error.message)
                }
                do {
                    let client = try ControlClient(
                        host: head.host, port: head.port, timeout: 3, maxData: options.fetchChunk + 4_096, tls: tls)
                    if index != current { switchServer(to: index, because: failures.last ?? "not reachable") }
                    return client
                } catch {
                    failures.append(error.message)
                }
            }
            // Each failure names its head ("cannot reach the control port HOST:PORT: …").
            let tried = failures.joined(separator: "; ")
            let heads = servers.map(\.description).joined(separator: ", ")
            guard MonotonicClock.nanoseconds() < deadline else {
                throw QlustarError(
                    .unreachable, "cannot reach ql-mcastd at \(heads) within \(Int(options.serverTimeout)) s: \(tried)")
            }
            log.warning("ql-mcastd at \(heads) not reachable (\(tried)); retrying")
            backoff.wait()
        }
    }

    /// Goes on at head `index` from now on; logs and records why the one in use was left.
    private func switchServer(to index: Int, because reason: String) {
        let line = "\(head) -> \(options.servers[index]): \(reason)"
        log.warning("going on at ql-mcastd \(options.servers[index]): \(head) \(reason)")
        switches.append(line)
        current = index
    }

    /// Whether the head in use is gone: a new connection to it fails (refused, or no answer in 2 s).
    private func headIsLost() -> String? {
        do throws(ControlFailure) {
            let tls = try options.ca.map { ca throws(ControlFailure) in try ControlTLS.client(ca: ca, host: head.host) }
            let probe = try ControlClient(host: head.host, port: head.port, timeout: 2, tls: tls)
            probe.close()
            return nil
        } catch {
            return error.code == .connection || error.code == .timedOut ? error.message : nil
        }
    }

    private func count(_ bytes: UInt64, from head: HeadNode) {
        bytesByServer[head.description, default: 0] += bytes
    }

    private func requestTicket(_ client: inout ControlClient, _ name: ImageName, deadline: UInt64) throws(QlustarError)
        -> ImageTicket
    {
        let request = ImageRequest(
            image: name.value, host: options.host, unicast: options.unicastOnly ? true : nil, token: options.token,
            expect: options.expect)
        // A hundred nodes told `busy` at once must not come back at once.
        var backoff = Backoff(first: 2, cap: 8)
        while true {
            do {
                return try client.call(ImageOperation.requestImage, request, as: ImageTicket.self)
            } catch {
                switch error.code {
                case .notFound: throw QlustarError(.notFound, error.message)
                case .tls:
                    throw QlustarError(
                        .unreachable, "ql-mcastd at \(head): \(error.message)")
                case .malformedRequest: throw QlustarError(.refused, error.message)
                case .notRegistered: throw QlustarError(.refused, "ql-mcastd does not know this node: \(error.message)")
                case .busy, .timedOut, .connection:
                    guard MonotonicClock.nanoseconds() < deadline else {
                        throw QlustarError(
                            .unreachable, "ql-mcastd did not hand out '\(name)' in time: \(error.message)")
                    }
                    log.warning("ql-mcastd: \(error.message); retrying")
                    backoff.wait()
                    // A new connection every time: a connection-level `busy` (too many connections)
                    // came with the server closing this one.
                    client.close()
                    client = try connect(deadline: deadline)
                default: throw QlustarError(.transfer, "ql-mcastd refused '\(name)': \(error.message)")
                }
            }
        }
    }

    private func attemptFetch(_ name: ImageName) throws(QlustarError) -> ClientReport {
        let deadline = MonotonicClock.nanoseconds() + UInt64(options.serverTimeout * 1e9)
        var client = try connect(deadline: deadline)
        defer { client.close() }
        let ticket = try requestTicket(&client, name, deadline: deadline)
        let ticketAt = MonotonicClock.nanoseconds()
        let ticketHead = head
        let layout = try ticket.layout()
        let partial = options.output + ".partial"
        let parent = options.output.parentPath
        if !parent.isEmpty { try FileSystem.makeDirectories(parent) }
        let file: MappedFile
        do { file = try MappedFile.create(writingTo: partial, size: layout.paddedSize, mode: 0o600) } catch {
            throw QlustarError(.io, "cannot create \(partial): \(error.message)")
        }
        var keep = false
        defer { if !keep { FileSystem.remove(partial) } }

        var report = ClientReport(
            image: name.value, sha256: ticket.sha256, size: ticket.objectSize, path: "unicast",
            sessionID: ticket.sessionID,
            lateJoin: ticket.lateJoin, multicastBytes: 0, unicastBytes: 0, seconds: 0)
        report.windowWaitSeconds = Double(ticket.startsInMillis) / 1_000
        var hasher = SHA256()
        var hashed: UInt64 = 0
        var missing: [Range<UInt64>] = ticket.objectSize > 0 ? [0..<ticket.objectSize] : []
        if ticket.mode == .multicast {
            log.info(
                "image '\(name)': session \(ticket.sessionID) on \(ticket.group ?? "?"):\(ticket.port ?? 0)\(ticket.lateJoin ? " (joining late)" : ""), \(ticket.objectSize) bytes, starts in \(ticket.startsInMillis) ms"
            )
            let outcome = receiveMulticast(ticket, layout: layout, into: file, control: client)
            report.receiver = outcome.counters
            if outcome.announcedAt > ticketAt {
                report.windowWaitSeconds = Double(outcome.announcedAt - ticketAt) / 1e9
            }
            switch outcome.result {
            case .success:
                report.path = "multicast"
                report.multicastBytes = ticket.objectSize
                count(ticket.objectSize, from: ticketHead)
                missing = []
                hashed = ticket.objectSize
            case .failure(let error):
                report.fallbackReason = error.message
                if error.code == .integrity {
                    log.warning(
                        "multicast copy of '\(name)' failed verification (\(error.message)); fetching it again over unicast"
                    )
                } else {
                    missing = outcome.missing ?? missing
                    if let state = outcome.hashState { (hasher, hashed) = state }
                    let need = missing.reduce(0) { $0 + $1.count }
                    report.multicastBytes = ticket.objectSize - UInt64(need)
                    count(report.multicastBytes, from: ticketHead)
                    report.path = report.multicastBytes > 0 ? "multicast+unicast" : "unicast"
                    // Its head gone with much still to come: a new session at the next head costs
                    // the wave one multicast pass, where every node fetching its rest by unicast
                    // would cost the next head one copy per node.
                    if options.servers.count > 1, UInt64(need) > ticket.objectSize / 4, let why = headIsLost() {
                        let next = (current + 1) % options.servers.count
                        let left = "lost mid-transfer (\(why)) with \(need) of \(ticket.objectSize) bytes still to come"
                        switchServer(to: next, because: left)
                        throw QlustarError(.serverLost, "asking \(head) for '\(name)': a new session there")
                    }
                    log.warning(
                        "multicast did not complete '\(name)' (\(error.message)); fetching \(need) missing bytes over unicast"
                    )
                }
            }
        } else {
            log.info("image '\(name)': unicast (\(ticket.reason ?? "as asked")), \(ticket.objectSize) bytes")
        }

        var digest = ticket.sha256
        if !missing.isEmpty || hashed < ticket.objectSize {
            report.unicastBytes += try fetch(missing, ticket: ticket, client: &client, into: file)
            digest = finishHash(hasher, from: hashed, file: file, size: ticket.objectSize)
            if digest != ticket.sha256 {
                // Once more, everything over unicast, hashed from scratch.
                log.warning(
                    "'\(name)' does not verify (sha256 \(digest), expected \(ticket.sha256)); fetching it all again over unicast"
                )
                report.path = "unicast"
                report.unicastBytes += try fetch(
                    ticket.objectSize > 0 ? [0..<ticket.objectSize] : [], ticket: ticket, client: &client, into: file)
                digest = finishHash(SHA256(), from: 0, file: file, size: ticket.objectSize)
            }
        }
        guard digest == ticket.sha256 else {
            throw QlustarError(
                .integrity,
                "image '\(name)' failed verification: expected sha256 \(ticket.sha256), got \(digest); nothing was written to \(options.output)"
            )
        }
        do { try file.finish(size: Int(ticket.objectSize)) } catch {
            throw QlustarError(.io, "cannot finish \(partial): \(error.message)")
        }
        try FileSystem.rename(partial, to: options.output)
        keep = true
        log.info("image '\(name)' verified (sha256 \(digest)) → \(options.output) via \(report.path)")
        return report
    }

    struct MulticastOutcome {
        var result: Result<SHA256Digest, TransportError>
        var missing: [Range<UInt64>]?
        var hashState: (SHA256, UInt64)?
        var counters: ReceiverCounters?
        /// When the first ANNOUNCE arrived (monotonic ns; 0: none did).
        var announcedAt: UInt64 = 0
    }

    /// Receives the session of `ticket` into the file. While it runs, the control connection
    /// `control` is watched: when it drops and a new connection to the head is refused (or not
    /// answered), the head is gone and the session is given up at once rather than after the
    /// sender's silence (`idleTimeout`) — a head killed mid-boot costs its nodes less.
    private func receiveMulticast(
        _ ticket: ImageTicket, layout: ObjectLayout, into file: MappedFile, control: ControlClient
    ) -> MulticastOutcome {
        let receiver: Receiver
        let socket: MulticastSocket
        do throws(TransportError) {
            guard let groupText = ticket.group, let group = IPv4Address(groupText), let port = ticket.port else {
                throw TransportError(.invalidArgument, "the ticket names no group")
            }
            let endpoint = try MulticastEndpoint(group: group, port: port)
            let interface: IPv4Address
            do throws(QlustarError) {
                if let given = options.interface {
                    interface = given
                } else {
                    interface = try RouteProbe.localAddress(toward: head.host)
                }
            } catch {
                throw TransportError(.invalidArgument, error.message)
            }
            var socketOptions = SocketOptions(interface: interface)
            socketOptions.segmentationOffload = options.segmentationOffload
            socketOptions.receiveOffload = options.segmentationOffload
            socket = try MulticastSocket(endpoint: endpoint, options: socketOptions)
            var config = ReceiverConfiguration()
            config.sessionID = ticket.sessionID
            config.receiverID = ticket.receiverID
            config.authenticationKey = try ticket.key.map { k throws(TransportError) in
                try PacketAuthenticator.key(hex: k)
            }
            config.encrypted = ticket.encrypted == true
            config.loss = LossModel(
                options.simulateLoss.kind, seed: options.simulateLossSeed ?? UInt64(ticket.receiverID))
            config.joinTimeoutNanos = UInt64((Double(ticket.startsInMillis) / 1_000 + options.multicastTimeout) * 1e9)
            config.idleTimeoutNanos = UInt64(options.idleTimeout * 1e9)
            let expected = ticket.sha256
            let name = ticket.image
            receiver = try Receiver(channel: socket, configuration: config) { announce throws(TransportError) in
                guard announce.layout == layout, announce.digest == expected else {
                    throw TransportError(
                        .integrity,
                        "session announces a different object than the ticket for '\(name)' (sha256 \(announce.digest))"
                    )
                }
                return file.mutableBytes
            }
        } catch {
            return MulticastOutcome(result: .failure(error))
        }
        let meter = ProgressMeter(total: ticket.objectSize, label: ticket.image, log: log)
        meter.enabled = showProgress
        let blockBytes = UInt64(layout.blockBytes)
        receiver.onProgress = { done, _ in
            meter.update(min(ticket.objectSize, UInt64(done) * blockBytes), via: "multicast")
        }
        defer { meter.finish() }
        // ql-mcastd closes a control connection idle for its idle-timeout: a closed connection
        // alone says nothing; a head that refuses a new one (probed at most every 2 s) is gone.
        var probedAt: UInt64 = 0
        receiver.shouldAbandon = { [self] in
            guard !control.isOpen else { return nil }
            let now = MonotonicClock.nanoseconds()
            guard now - probedAt >= 2_000_000_000 else { return nil }
            probedAt = now
            return headIsLost().map { "ql-mcastd at \(head) is gone (\($0))" }
        }
        do throws(TransportError) {
            let digest = try receiver.run()
            meter.update(ticket.objectSize, via: "multicast")
            let c = receiver.counters
            log.info(
                "multicast: \(c.dataSymbols) data, \(c.repairSymbols) repair symbols, \(c.blocksDecoded) blocks decoded, \(c.naksSent) NAKs"
            )
            return MulticastOutcome(
                result: .success(digest), counters: receiver.counters, announcedAt: receiver.announcedAt)
        } catch {
            let announced = receiver.announce != nil
            return MulticastOutcome(
                result: .failure(error), missing: announced ? receiver.missingRanges() : nil,
                hashState: announced && error.code != .integrity ? receiver.takeHashState() : nil,
                counters: receiver.counters, announcedAt: receiver.announcedAt)
        }
    }

    /// Fetches `ranges` over the control connection into the file. Returns the bytes fetched.
    /// A connection lost on the way is made again — to the next head when this one is gone, which
    /// serves the same version (the same SHA-256) — at most `maxInterruptions` times in a row.
    private func fetch(
        _ ranges: [Range<UInt64>], ticket: ImageTicket, client: inout ControlClient, into file: MappedFile
    ) throws(QlustarError) -> UInt64 {
        let maxInterruptions = 2 + options.servers.count
        var interruptions = 0
        let total = ranges.reduce(UInt64(0)) { $0 + UInt64($1.count) }
        let meter = ProgressMeter(total: total, label: ticket.image, log: log)
        meter.enabled = showProgress
        defer { meter.finish() }
        var done: UInt64 = 0
        for range in ranges {
            var offset = range.lowerBound
            while offset < range.upperBound {
                let length = Int(min(UInt64(options.fetchChunk), range.upperBound - offset))
                let request = FetchRequest(
                    image: ticket.image, sha256: ticket.sha256, offset: offset, length: length, token: options.token)
                let payload: ArraySlice<UInt8>
                do {
                    let args = try ControlRequest(op: ImageOperation.fetch, arguments: request)
                    payload = try client.fetch(args).payload
                } catch let failure as ControlFailure {
                    // The only version-specific refusal of `fetch`: the image was replaced meanwhile.
                    if failure.code == .notFound { throw QlustarError(.replaced, failure.message) }
                    interruptions += 1
                    guard failure.code == .connection || failure.code == .timedOut, interruptions <= maxInterruptions
                    else {
                        throw QlustarError(
                            .transfer, "unicast fetch of '\(ticket.image)' at \(offset) failed: \(failure.message)")
                    }
                    log.warning("unicast fetch from \(head) interrupted (\(failure.message)); reconnecting")
                    client.close()
                    client = try connect(deadline: MonotonicClock.nanoseconds() + UInt64(options.serverTimeout * 1e9))
                    continue
                } catch {
                    throw QlustarError(.transfer, "unicast fetch of '\(ticket.image)': \(error)")
                }
                guard payload.count == length else {
                    throw QlustarError(
                        .transfer, "server sent \(payload.count) bytes for a \(length)-byte range of '\(ticket.image)'")
                }
                payload.withUnsafeBytes { src in
                    (file.mutableBytes.baseAddress! + Int(offset)).copyMemory(from: src.baseAddress!, byteCount: length)
                }
                offset += UInt64(length)
                done += UInt64(length)
                interruptions = 0
                count(UInt64(length), from: head)
                meter.update(done, via: "unicast")
            }
        }
        return done
    }

    /// Completes the SHA-256 over bytes `from..<size` of the file.
    private func finishHash(_ hasher: SHA256, from: UInt64, file: MappedFile, size: UInt64) -> SHA256Digest {
        if from < size {
            hasher.update(UnsafeRawBufferPointer(start: file.bytes.baseAddress! + Int(from), count: Int(size - from)))
        }
        return hasher.finalize()
    }
}
