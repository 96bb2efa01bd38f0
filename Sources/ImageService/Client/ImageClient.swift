import FoundationEssentials
import Logging
import Platform
import Transport

#if canImport(Glibc)
    import Glibc
#endif

/// How ql-mcast-client fetches an image.
public struct ClientOptions: Sendable {
    public var serverHost: String
    public var serverPort = DaemonConfiguration.defaultPort
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

    public init(serverHost: String, image: String, output: String) {
        self.serverHost = serverHost
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
                return report
            } catch let e where e.code == .replaced && attempt < 3 {
                // The image was replaced during our transfer: start over with the new version.
                log.warning("\(e.message); starting over")
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

    private func connect(deadline: UInt64) throws(QlustarError) -> ControlClient {
        var lastError = ""
        let tls: ControlTLS?
        do {
            tls = try options.ca.map { ca throws(ControlFailure) in
                try ControlTLS.client(ca: ca, host: options.serverHost)
            }
        } catch {
            throw QlustarError(.invalidArgument, error.message)
        }
        var backoff = Backoff(first: 1, cap: 5)
        while true {
            do {
                return try ControlClient(
                    host: options.serverHost, port: options.serverPort, timeout: 3, maxData: options.fetchChunk + 4_096,
                    tls: tls)
            } catch {
                lastError = error.message
            }
            guard MonotonicClock.nanoseconds() < deadline else {
                throw QlustarError(
                    .unreachable,
                    "cannot reach ql-mcastd at \(options.serverHost):\(options.serverPort) within \(Int(options.serverTimeout)) s: \(lastError)"
                )
            }
            log.warning(
                "ql-mcastd at \(options.serverHost):\(options.serverPort) not reachable (\(lastError)); retrying")
            backoff.wait()
        }
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
                        .unreachable, "ql-mcastd at \(options.serverHost):\(options.serverPort): \(error.message)")
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
            let outcome = receiveMulticast(ticket, layout: layout, into: file)
            report.receiver = outcome.counters
            if outcome.announcedAt > ticketAt {
                report.windowWaitSeconds = Double(outcome.announcedAt - ticketAt) / 1e9
            }
            switch outcome.result {
            case .success:
                report.path = "multicast"
                report.multicastBytes = ticket.objectSize
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
                    report.path = report.multicastBytes > 0 ? "multicast+unicast" : "unicast"
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
            report.unicastBytes += try fetch(missing, ticket: ticket, client: &client, into: file, deadline: deadline)
            digest = finishHash(hasher, from: hashed, file: file, size: ticket.objectSize)
            if digest != ticket.sha256 {
                // Once more, everything over unicast, hashed from scratch.
                log.warning(
                    "'\(name)' does not verify (sha256 \(digest), expected \(ticket.sha256)); fetching it all again over unicast"
                )
                report.path = "unicast"
                report.unicastBytes += try fetch(
                    ticket.objectSize > 0 ? [0..<ticket.objectSize] : [], ticket: ticket, client: &client, into: file,
                    deadline: deadline)
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

    private func receiveMulticast(_ ticket: ImageTicket, layout: ObjectLayout, into file: MappedFile)
        -> MulticastOutcome
    {
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
                    interface = try RouteProbe.localAddress(toward: options.serverHost)
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
    private func fetch(
        _ ranges: [Range<UInt64>], ticket: ImageTicket, client: inout ControlClient, into file: MappedFile,
        deadline: UInt64
    ) throws(QlustarError) -> UInt64 {
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
                    guard failure.code == .connection || failure.code == .timedOut,
                        MonotonicClock.nanoseconds() < deadline
                    else {
                        throw QlustarError(
                            .transfer, "unicast fetch of '\(ticket.image)' at \(offset) failed: \(failure.message)")
                    }
                    log.warning("unicast fetch interrupted (\(failure.message)); reconnecting")
                    client = try connect(deadline: deadline)
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
