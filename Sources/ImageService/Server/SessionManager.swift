import FoundationEssentials
import Glibc
import Logging
import NIOConcurrencyHelpers
import Platform
import Transport

/// The conductor of ql-mcastd: owns the sessions, hands out tickets, starts sessions when their
/// window closes, shares the rate cap, and reaps finished sessions.
///
/// Requests arrive on network threads and are answered at once (a ticket says when the session
/// starts); each running session's `Sender` runs on its own thread and is reached only through
/// its mailbox. `Sendable`: all shared state is behind one lock, never held across I/O.
public final class SessionManager: Sendable {
    struct State {
        var sessions: [UInt32: StreamSession] = [:]
        var pool: GroupPool
        var counters = ServerCounters()
        /// Sessions whose sender thread has not returned yet.
        var senders: Set<UInt32> = []
        var stopping = false
        /// The newest client events (refusals, unicast tickets), oldest first.
        var events: [ClientEvent] = []
        var eventSeq: UInt64 = 0
        /// Image versions held back (name and digest), each logged once.
        var heldBackLogged: Set<String> = []
    }

    /// Client events kept for `status` pollers.
    static let keptEvents = 1_024

    public let configuration: DaemonConfiguration
    public let catalog: ImageCatalog
    let log: Logger
    /// What the other head serves; nil: no other head, or hold-back off.
    let peerWatch: PeerWatch?
    let startedAt = MonotonicClock.nanoseconds()
    private let state: NIOLockedValueBox<State>
    private let conductorStop = NIOLockedValueBox(false)

    public init(configuration: DaemonConfiguration, catalog: ImageCatalog, log: Logger, peerWatch: PeerWatch? = nil)
        throws(QlustarError)
    {
        try configuration.validate()
        self.configuration = configuration
        self.catalog = catalog
        self.log = log
        self.peerWatch = peerWatch
        do {
            state = NIOLockedValueBox(
                State(pool: try GroupPool(cidr: configuration.groupPool, ports: configuration.portRange)))
        } catch {
            throw QlustarError(.configuration, "group pool: \(error.message)")
        }
    }

    public var counters: ServerCounters { state.withLockedValue { $0.counters } }

    func count(_ update: (inout ServerCounters) -> Void) { state.withLockedValue { update(&$0.counters) } }

    // MARK: - Requests

    /// Answers `request-image`: joins the gathering or running session of the same image
    /// version, or opens one, or hands out a unicast ticket when a limit is reached.
    /// - Throws: `.malformedRequest` (bad name), `.notFound` (no such image), `.busy` (client
    ///   limit reached, or shutting down: retry later).
    public func request(_ request: ImageRequest, peer: ControlPeer) throws(ControlFailure) -> ImageTicket {
        count { $0.requests += 1 }
        let name: ImageName
        do { name = try ImageName(request.image) } catch {
            count { $0.badRequests += 1 }
            throw ControlFailure(.malformedRequest, error.message)
        }
        var snapshot: ImageSnapshot
        do { snapshot = try catalog.snapshot(name) } catch {
            count { $0.unknownImages += 1 }
            if error.code == .notFound {
                let known = catalog.names().map(\.value).joined(separator: ", ")
                throw ControlFailure(
                    .notFound, "no image '\(name)' on this server (images: \(known.isEmpty ? "none" : known))")
            }
            throw ControlFailure(.internalError, error.message)
        }
        snapshot = try agreed(snapshot)
        if let e = request.expect, !(1...ImageRequest.maxExpect).contains(e) {
            count {
                $0.badRequests += 1
                $0.badExpect += 1
            }
            throw ControlFailure(.malformedRequest, "expect \(e) is outside 1…\(ImageRequest.maxExpect)")
        }
        // The name a node gives is its claim: shown and logged, so kept to what a host name holds.
        let host = String(
            (request.host ?? peer.host).prefix(64).map { SessionManager.hostCharacters.contains($0) ? $0 : "?" })
        let now = MonotonicClock.nanoseconds()
        let config = configuration
        let m = snapshot.manifest
        var ticket = ImageTicket(
            mode: .unicast, image: name.value, sha256: m.sha256, objectSize: m.size, symbolSize: m.symbolSize,
            sourceSymbols: m.sourceSymbols)
        let result: Result<ImageTicket, ControlFailure> = state.withLockedValue { s in
            guard !s.stopping else {
                return .failure(ControlFailure(.busy, "ql-mcastd is shutting down; retry in a few seconds"))
            }
            if request.unicast == true {
                s.counters.unicastTickets += 1
                ticket.reason = "asked for unicast"
                return .success(ticket)
            }
            let clients = s.sessions.values.filter(\.isActive).reduce(0) { $0 + $1.members.count }
            guard clients < config.maxClients else {
                s.counters.refusedAtLimit += 1
                return .failure(
                    ControlFailure(.busy, "ql-mcastd serves \(clients) clients, its limit (max-clients); retry in 5 s"))
            }
            var session = s.sessions.values.first {
                $0.isActive && $0.snapshot.name == name && $0.snapshot.manifest.sha256 == m.sha256
            }
            if session == nil {
                let active = s.sessions.values.filter(\.isActive).count
                guard active < config.maxSessions else {
                    s.counters.refusedAtLimit += 1
                    s.counters.unicastTickets += 1
                    ticket.reason = "\(active) sessions running, the limit (max-sessions): use unicast"
                    return .success(ticket)
                }
                let endpoint: MulticastEndpoint
                do throws(TransportError) { endpoint = try s.pool.allocate() } catch {
                    s.counters.unicastTickets += 1
                    ticket.reason = "no free multicast group: \(error.message)"
                    return .success(ticket)
                }
                var id = UInt32.random(in: 1...UInt32.max)
                while s.sessions[id] != nil { id = UInt32.random(in: 1...UInt32.max) }
                let key = config.sessionKeys ? PacketAuthenticator.randomKey() : nil
                let created = StreamSession(
                    id: id, snapshot: snapshot, endpoint: endpoint, key: key, now: now,
                    startAt: now + UInt64(config.windowSeconds * 1e9))
                s.sessions[id] = created
                session = created
                log.info(
                    "session \(id): image '\(name)' on \(endpoint), starts in \(config.windowSeconds) s (first: \(host))"
                )
            }
            let chosen = session!
            let fromPeer = chosen.members.reduce(0) { $0 + ($1.address.hasPrefix(peer.host + ":") ? 1 : 0) }
            guard fromPeer < SessionManager.maxMembersPerHost else {
                s.counters.refusedAtLimit += 1
                return .failure(
                    ControlFailure(
                        .busy, "\(peer.host) is already \(fromPeer) members of this session; wait for them to finish"))
            }
            var receiverID = UInt32.random(in: 1...UInt32.max)
            while chosen.members.contains(where: { $0.receiverID == receiverID }) {
                receiverID = UInt32.random(in: 1...UInt32.max)
            }
            let late = chosen.state == .running
            chosen.members.append(
                MemberStatus(receiverID: receiverID, host: host, address: peer.address, lateJoin: late))
            if !late { expectMembers(request.expect, in: chosen, now: now) }
            if late {
                // The sender takes its pass round the image once more for it (a carousel).
                chosen.mailbox.post(.joinLate(receiverID))
                s.counters.lateJoins += 1
                log.info("session \(chosen.id): \(host) (\(peer.address)) joins late")
            }
            ticket.mode = .multicast
            ticket.sessionID = chosen.id
            ticket.group = chosen.endpoint.group.description
            ticket.port = chosen.endpoint.port
            ticket.receiverID = receiverID
            ticket.key = chosen.key.map(PacketAuthenticator.hex)
            ticket.encrypted = chosen.key != nil && config.encryptsSessions ? true : nil
            ticket.startsInMillis = chosen.startAt > now ? Int((chosen.startAt - now) / 1_000_000) : 0
            ticket.lateJoin = late
            return .success(ticket)
        }
        let t = try result.get()
        if t.mode == .unicast {
            log.info("unicast ticket for '\(name)' to \(host) (\(peer.address)): \(t.reason ?? "")")
        }
        return t
    }

    /// The image name and range length of a `fetch` or `fetch-file`, checked (bad ones counted).
    private func checkedRange(_ op: String, _ image: String, _ length: Int) throws(ControlFailure) -> ImageName {
        let name: ImageName
        do { name = try ImageName(image) } catch {
            count { $0.badRequests += 1 }
            throw ControlFailure(.malformedRequest, error.message)
        }
        guard length > 0, length <= configuration.maxFetchBytes else {
            count { $0.badRequests += 1 }
            throw ControlFailure(
                .malformedRequest, "\(op) length \(length) is outside 1…\(configuration.maxFetchBytes)")
        }
        return name
    }

    /// Answers `fetch`: a range of the image version with the given digest, from the snapshot a
    /// session holds or the current file.
    public func fetch(_ f: FetchRequest) throws(ControlFailure) -> ControlReply {
        let name = try checkedRange("fetch", f.image, f.length)
        let held = state.withLockedValue { $0.sessions.values.map(\.snapshot) }
        guard let snapshot = catalog.snapshot(name, digest: f.sha256, among: held) else {
            count { $0.unknownImages += 1 }
            throw ControlFailure(
                .notFound,
                "image '\(name)' with sha256 \(f.sha256) is not served any more (replaced?); request it again")
        }
        guard f.offset <= snapshot.manifest.size, UInt64(f.length) <= snapshot.manifest.size - f.offset else {
            count { $0.badRequests += 1 }
            throw ControlFailure(
                .malformedRequest,
                "range \(f.offset)+\(f.length) lies outside image '\(name)' (\(snapshot.manifest.size) bytes)")
        }
        count {
            $0.fetches += 1
            $0.fetchedBytes += UInt64(f.length)
        }
        let header = (try? JSONEncoder().encode(FetchHeader(offset: f.offset, length: f.length))).map(Array.init) ?? []
        // Its own descriptor: the snapshot may be released before the answer is written.
        return try .file(json: header, duplicating: snapshot.descriptor, offset: Int(f.offset), count: f.length)
    }

    /// The version of an image to serve while the other head can be asked (`peerWatch`): the
    /// current one if the other head has it too, else the previous one if that is the other
    /// head's; else none (docs/HA.md). Nodes that fail over between the heads then always find
    /// the version they were fetching.
    /// - Throws: `.notFound` naming the other head and what to run there.
    private func agreed(_ current: ImageSnapshot) throws(ControlFailure) -> ImageSnapshot {
        guard let peerWatch, case .known(let theirs) = peerWatch.lookup(current.name) else { return current }
        let ours = current.manifest.sha256
        if theirs == ours { return current }
        let older = catalog.previousSnapshot(current.name).flatMap { $0.manifest.sha256 == theirs ? $0 : nil }
        let first = state.withLockedValue { s in
            s.counters.heldBack += 1
            return s.heldBackLogged.insert("\(current.name) \(ours)").inserted
        }
        if first {
            let instead = older.map { "serving sha256 \($0.manifest.sha256), which it has" } ?? "not served"
            log.warning(
                "image '\(current.name)' sha256 \(ours) is not on the other head node \(peerWatch.peer) yet: \(instead) (qlustar-image replicate there; hold-back = no serves it anyway)"
            )
        }
        if let older { return older }
        throw ControlFailure(
            .notFound,
            "image '\(current.name)' (sha256 \(ours)) is not on the other head node \(peerWatch.peer) yet; retry once it is replicated"
        )
    }

    /// Answers `fetch-file` (the caller checked the other head's token): a range of the image's
    /// initrd, kernel or manifest as published now, read from the file. The range may end short
    /// at the file's end; the header gives the file's size.
    public func fetchFile(_ f: FileFetchRequest) throws(ControlFailure) -> ControlReply {
        let name = try checkedRange("fetch-file", f.image, f.length)
        let path = catalog.root.images + "/" + name.value + "." + f.file.rawValue
        // Not through a link: the file is the image's own, published beside it.
        guard let fd = try? Posix.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) else {
            count { $0.unknownImages += 1 }
            throw ControlFailure(.notFound, "image '\(name)' has no \(f.file.rawValue) (\(path))")
        }
        defer { Posix.close(fd) }
        let st = try? Posix.fstat(fd)
        let size = UInt64(max(st?.st_size ?? 0, 0))
        guard let st, st.st_mode & S_IFMT == S_IFREG, f.offset <= size else {
            count { $0.badRequests += 1 }
            throw ControlFailure(
                .malformedRequest, "range \(f.offset)+\(f.length) lies outside \(path) (\(size) bytes)")
        }
        let length = Int(min(UInt64(f.length), size - f.offset))
        count {
            $0.peerFileFetches += 1
            $0.peerFileBytes += UInt64(length)
        }
        let header =
            (try? JSONEncoder().encode(FileFetchHeader(offset: f.offset, length: length, size: size))).map(Array.init)
            ?? []
        return try .file(json: header, duplicating: fd, offset: Int(f.offset), count: length)
    }

    /// How long after the last expected member asked its session starts: time for that member
    /// to join the group before the first datagrams (a member that misses them joins late).
    static let allHereGraceNanos: UInt64 = 200_000_000

    /// Takes a member's `expect` into a gathering session (the largest any member gave, at most
    /// `max-clients`: one host cannot lower what another said) and brings its start forward to
    /// `allHereGraceNanos` from now once that many have asked. Under the state lock.
    private func expectMembers(_ expect: Int?, in session: StreamSession, now: UInt64) {
        if let expect { session.expected = max(session.expected, min(expect, configuration.maxClients)) }
        guard session.expected > 0, session.members.count >= session.expected, session.startReason == nil else {
            return
        }
        let early = now + Self.allHereGraceNanos
        if early < session.startAt {
            session.startAt = early
            session.startReason = "all \(session.expected) expected members asked"
            log.info(
                "session \(session.id): all \(session.expected) expected members asked; starting in \(Self.allHereGraceNanos / 1_000_000) ms, not at the window's end"
            )
        }
    }

    /// Members one source address may be of one session: a node runs one client; a host asking
    /// again and again must not fill the session (each member is waited for).
    static let maxMembersPerHost = 4
    static let hostCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")

    /// Records what happened to a client's request (for a boot monitor polling `status`).
    func note(_ peer: ControlPeer, image: String, _ what: String, failed: Bool = false, retry: Bool = false) {
        let at = Date().timeIntervalSince1970
        state.withLockedValue { s in
            s.eventSeq += 1
            s.events.append(
                ClientEvent(
                    seq: s.eventSeq, at: at, address: peer.host, image: String(image.prefix(64)),
                    what: String(what.prefix(2_000)), failed: failed, retry: retry))
            if s.events.count > Self.keptEvents { s.events.removeFirst(s.events.count - Self.keptEvents) }
        }
    }

    /// - Parameter eventsSince: Client events after this one (nil: the newest 50).
    public func status(control: ControlServer.Counters?, eventsSince: UInt64? = nil) -> ServerStatus {
        let now = MonotonicClock.nanoseconds()
        let (sessions, counters, events) = state.withLockedValue { s in
            (
                s.sessions.values.sorted { $0.createdAt < $1.createdAt }.map { $0.status(now: now) }, s.counters,
                eventsSince.map { since in Array(s.events.filter { $0.seq > since }) } ?? Array(s.events.suffix(50))
            )
        }
        var c = counters
        if let control {
            c.controlConnections = control.connections
            c.controlFramingErrors = control.framingErrors
            c.controlIdleTimeouts = control.idleTimeouts
            c.controlRefused = control.refusedConnections
            c.controlRefusedPerHost = control.refusedPerHost
            c.controlIncompleteFrames = control.incompleteFrames
            c.controlUnreadAnswers = control.unreadAnswers
            c.controlTLSErrors = control.tlsErrors
        }
        return ServerStatus(
            uptimeSeconds: Double(now - startedAt) / 1e9, images: catalog.names().map(\.value), sessions: sessions,
            counters: c,
            limits: ServerLimits(
                maxSessions: configuration.maxSessions, maxClients: configuration.maxClients,
                rate: configuration.rate.description),
            events: events)
    }

    // MARK: - Conductor

    /// Runs the conductor on its own thread until `stop()`: every 20 ms, start sessions whose
    /// window closed, share the rate, reap old sessions.
    /// - Throws: `QlustarError` when the system will not start another thread.
    public func startConductor() throws(QlustarError) {
        do {
            try DetachedThread.start(name: "conductor") { [self] in
                while !conductorStop.withLockedValue({ $0 }) {
                    turn(now: MonotonicClock.nanoseconds())
                    usleep(20_000)
                }
            }
        } catch {
            throw QlustarError(.io, "cannot start the session conductor: \(error)")
        }
    }

    /// One turn of the conductor (also callable from tests).
    func turn(now: UInt64) {
        let keep = UInt64(configuration.keepFinishedSeconds * 1e9)
        let due: [StreamSession] = state.withLockedValue { s in
            for (id, session) in s.sessions where session.state == .finished && now - (session.finishedAt ?? now) > keep
            {
                s.sessions[id] = nil
            }
            guard !s.stopping else { return [] }
            let starting = s.sessions.values.filter { $0.state == .gathering && $0.startAt <= now }
            for session in starting {
                session.state = .running
                s.counters.sessionsStarted += 1
                if session.startReason == nil {
                    session.startReason = "window"
                } else {
                    s.counters.sessionsStartedEarly += 1
                }
            }
            shareRate(&s)
            return starting
        }
        for session in due { launch(session) }
    }

    /// Gives every running session an equal share of the daemon's rate cap.
    private func shareRate(_ s: inout State) {
        guard !configuration.rate.isUnpaced else { return }
        let running = s.sessions.values.filter { $0.state == .running }
        guard !running.isEmpty else { return }
        let share = Rate(bytesPerSecond: max(125_000, configuration.rate.bytesPerSecond / UInt64(running.count)))
        for session in running where session.rateShare != share {
            session.rateShare = share
            session.mailbox.post(.rateLimit(share))
        }
    }

    private func launch(_ session: StreamSession) {
        let config = configuration
        let members = state.withLockedValue { _ in session.members.map(\.receiverID) }
        for id in members { session.mailbox.post(.expectReceiver(id)) }
        log.info(
            "session \(session.id): starting '\(session.snapshot.name)' to \(members.count) members on \(session.endpoint)"
        )
        state.withLockedValue { _ = $0.senders.insert(session.id) }
        do {
            try DetachedThread.start(name: "session \(session.id)") { [self] in
                finish(session, outcome: stream(session, config))
            }
        } catch {
            finish(session, outcome: "failed: cannot start its sender: \(error)")
        }
    }

    /// Marks `session` finished with `outcome` and gives its group back to the pool.
    private func finish(_ session: StreamSession, outcome: String) {
        state.withLockedValue { s in
            session.state = .finished
            session.finishedAt = MonotonicClock.nanoseconds()
            session.outcome = outcome
            s.pool.release(session.endpoint)
            s.senders.remove(session.id)
            s.counters.sessionsFinished += 1
            if outcome.hasPrefix("aborted") { s.counters.sessionsAborted += 1 }
        }
        log.info("session \(session.id): \(outcome)")
    }

    /// Runs one session's sender to its end; returns the outcome line.
    private func stream(_ session: StreamSession, _ config: DaemonConfiguration) -> String {
        do throws(TransportError) {
            var options = SocketOptions(interface: config.interface!)
            options.loopback = config.loopback
            options.localDropsPushBack = true
            let socket = try MulticastSocket(endpoint: session.endpoint, options: options)
            let sender = try Sender(
                object: session.snapshot.bytes, digest: session.snapshot.manifest.sha256, channel: socket,
                configuration: session.senderConfiguration(config), mailbox: session.mailbox)
            sender.onProgress = { p in session.progress.withLockedValue { $0 = p } }
            let report = try sender.run()
            let records = report.receivers.values
            let complete = records.filter { $0.state == .complete }.count
            let c = report.counters
            let summary =
                "\(complete)/\(records.count) receivers complete, \(String(printf: "%.2f", report.seconds)) s, "
                + "\(String(printf: "%.1f", Double(c.wireBytes) / 1e6 / max(report.passSeconds, 1e-9))) MB/s pass, "
                + (c.passes > 1
                    ? "\(c.passes) turns (\(c.passExtensions) late joins, \(c.carouselBlocks) blocks again), " : "")
                + "wire/payload \(String(printf: "%.3f", Double(c.wireBytes) / max(1, Double(c.objectBytes)))), "
                + "repair \(c.repairSymbols), NAKs \(c.naksReceived), dropped \(c.receiversDropped), silent \(c.receiversSilent)"
                + (c.localDrops > 0 ? ", \(c.localDrops) sends waited for the link" : "")
                + (c.reportedErrors > 0 ? ", \(c.reportedErrors) ICMP errors ignored" : "")
            if let reason = report.abortReason { return "aborted (\(reason)): " + summary }
            return "finished: " + summary
        } catch {
            log.error("session \(session.id): \(error.message)")
            return "failed: \(error.message)"
        }
    }

    /// Stops taking requests, lets running sessions finish for up to `grace` seconds, aborts the
    /// rest, and waits (bounded) for their threads.
    public func shutdown(grace: Double) {
        let running: [StreamSession] = state.withLockedValue { s in
            s.stopping = true
            for session in s.sessions.values where session.state == .gathering {
                session.state = .finished
                session.outcome = "cancelled: ql-mcastd shut down before it started"
                s.pool.release(session.endpoint)
            }
            return s.sessions.values.filter { $0.state == .running }
        }
        let deadline = MonotonicClock.nanoseconds() + UInt64(grace * 1e9)
        while MonotonicClock.nanoseconds() < deadline, state.withLockedValue({ !$0.senders.isEmpty }) { usleep(50_000) }
        for session in running { session.mailbox.post(.abort("ql-mcastd is shutting down")) }
        let hardDeadline = MonotonicClock.nanoseconds() + 5_000_000_000
        while MonotonicClock.nanoseconds() < hardDeadline, state.withLockedValue({ !$0.senders.isEmpty }) {
            usleep(20_000)
        }
        conductorStop.withLockedValue { $0 = true }
    }
}
