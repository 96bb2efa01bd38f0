import Foundation
import ImageService
import NodeConfig
import Platform
import Transport

/// The image stage of every node, from ql-mcastd's `status` (pulled once a second over its
/// control channel, as `ql-mcastd status` does): a member joining a session is "image requested",
/// its receiver's blocks are the progress, its receiver reporting complete (SHA-256 verified) is
/// "verified"; a receiver that failed or was dropped goes on by unicast (a retry, not a failure).
///
/// Why pulled and not pushed: ql-mcastd stays independent of qlumand (it serves images without
/// one), and its status already holds every member and receiver; a second a poll is the
/// resolution an administrator watching a boot needs.
struct ImageServerWatch {
    var host: String
    var port: Int
    /// The cluster CA when ql-mcastd speaks TLS.
    var ca: String?
    /// What was seen of each (session, receiver): to report changes once.
    private var seen: [String: String] = [:]
    /// The last client event taken (nil before the first poll: the events already there are old).
    private var lastEvent: UInt64?
    private var lastUptime = 0.0

    init(host: String, port: Int, ca: String?) {
        self.host = host
        self.port = port
        self.ca = ca
    }

    /// One poll: asks ql-mcastd and records what changed.
    /// - Throws: The control channel's failure (ql-mcastd down or refusing): counted by the caller.
    mutating func poll(into monitor: BootMonitor) throws(ControlFailure) {
        let tls = try ca.map { c throws(ControlFailure) in try ControlTLS.client(ca: c, host: host) }
        let client = try ControlClient(host: host, port: port, timeout: 2, tls: tls)
        defer { client.close() }
        let args = lastEvent.map { "{\"eventsSince\":\($0)}" } ?? "{}"
        let body = try client.call(ControlRequest(op: ImageOperation.status, args: Array(args.utf8)), timeout: 3)
        let status: ServerStatus
        do { status = try JSONDecoder().decode(ServerStatus.self, from: Data(body)) } catch {
            throw ControlFailure(.internalError, "ql-mcastd's status does not decode: \(error)")
        }
        take(status, into: monitor)
    }

    mutating func take(_ status: ServerStatus, into monitor: BootMonitor) {
        let now = BootMonitor.now()
        takeEvents(status, into: monitor)
        monitor.sessions = status.sessions.map(Self.summary)
        var current: [String: String] = [:]
        for session in status.sessions {
            let receivers = Dictionary(
                (session.progress?.receivers ?? []).map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            let blocks = max(1, session.progress?.blocks ?? 1)
            for m in session.members {
                let ip = String(m.address.split(separator: ":").first ?? "")
                let key = "\(session.sessionID)/\(m.receiverID)"
                let r = receivers[m.receiverID]
                let state = r.map { "\($0.state)" } ?? "asked"
                current[key] = state
                let before = seen[key]
                if before == state {
                    if state == "receiving", let r, let node = monitor.node(ip: ip) {
                        monitor.update(node) { Self.progress(&$0, r, blocks) }
                    }
                    continue
                }
                guard let node = monitor.node(ip: ip) else { continue }
                let sid = String(session.sessionID)
                if before == nil {
                    monitor.record(
                        node,
                        BootEvent(
                            at: now, stage: .image,
                            what: "requested \(session.image): session \(sid)\(m.lateJoin ? " (joined late)" : "")")
                    ) { b in
                        b.image = session.image
                        b.imageVersion = String(String(describing: session.sha256).prefix(12))
                        b.session = sid
                    }
                }
                switch r?.state {
                case .complete?:
                    monitor.record(node, BootEvent(at: now, stage: .verified, what: "image verified (session \(sid))"))
                case .failed?:
                    monitor.record(
                        node,
                        BootEvent(
                            at: now, stage: .image, what: "multicast failed in session \(sid): the rest by unicast",
                            retry: true))
                case .dropped?:
                    monitor.record(
                        node,
                        BootEvent(
                            at: now, stage: .image, what: "dropped from session \(sid) (too slow): the rest by unicast",
                            retry: true))
                case .receiving?:
                    monitor.update(node) { Self.progress(&$0, r!, blocks) }
                case nil: break
                }
            }
        }
        // Keys of sessions ql-mcastd no longer lists are forgotten (its finished sessions stay
        // listed for a while, so nothing is reported twice).
        seen = current
    }

    /// Refused requests and unicast tickets: the image stage's failures and detours.
    mutating func takeEvents(_ status: ServerStatus, into monitor: BootMonitor) {
        let events = status.events ?? []
        // ql-mcastd restarted: its numbering starts again.
        if status.uptimeSeconds < lastUptime { lastEvent = 0 }
        lastUptime = status.uptimeSeconds
        defer { lastEvent = max(lastEvent ?? 0, events.map(\.seq).max() ?? 0) }
        guard lastEvent != nil else { return }
        for e in events where e.seq > lastEvent! {
            guard let node = monitor.node(ip: e.address) else { continue }
            monitor.record(
                node, BootEvent(at: e.at, stage: .image, what: e.what, failed: e.failed, retry: e.retry)
            ) { b in
                if b.image == nil { b.image = e.image }
            }
        }
    }

    /// A receiver's blocks and loss into its node's boot.
    static func progress(_ b: inout BootRecord, _ r: ReceiverRecord, _ blocks: Int) {
        b.progress = min(1, Double(r.blocksComplete) / Double(blocks))
        b.loss = min(1, max(0, r.recentLoss))
    }

    /// A session as the boot page shows it.
    static func summary(_ s: SessionStatus) -> SessionSummary {
        let p = s.progress
        let receivers = p?.receivers ?? []
        let loss = receivers.isEmpty ? 0 : receivers.map(\.recentLoss).reduce(0, +) / Double(receivers.count)
        return SessionSummary(
            id: String(s.sessionID), image: s.image, state: s.state.rawValue, members: s.members.count,
            rate: p.map { "\($0.rate)" } ?? "-",
            wireMBps: p.map { Double($0.counters.wireBytes) / 1e6 / max($0.elapsedSeconds, 1e-3) } ?? 0,
            lossPercent: loss * 100, repairSymbols: p?.counters.repairSymbols ?? 0, passes: p?.counters.passes ?? 0)
    }
}
