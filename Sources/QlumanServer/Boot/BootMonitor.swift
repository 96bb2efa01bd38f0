import Foundation
import Logging
import NIOConcurrencyHelpers
import NodeConfig
import NodeRegistry
import Platform

/// Every node's boot as the head node sees it: events from dnsmasq's log (DHCP, TFTP), from
/// ql-mcastd's status (the image session, progress, verified) and from the nodes' execd
/// (configure, init.d, up) become one `BootRecord` per boot, kept in memory for `qluman boot
/// status` and stored in the registry in batches (every half second: a wave of a thousand nodes
/// makes tens of events a second, one transaction each would be the registry's whole work).
///
/// `Sendable`: all state is behind one lock, never held across I/O except the registry write,
/// which takes a copy first.
public final class BootMonitor: Sendable {
    public struct Counters: Codable, Sendable, Equatable {
        public var events: UInt64 = 0
        public var bootsStarted: UInt64 = 0
        /// Events about a MAC or address no registered node has (counted, not kept).
        public var unknownNode: UInt64 = 0
        public var stored: UInt64 = 0
        public var storeErrors: UInt64 = 0
        public var logLines: UInt64 = 0
        /// dnsmasq log lines longer than the reader takes (skipped).
        public var logLinesTooLong: UInt64 = 0
        public var imageServerPolls: UInt64 = 0
        public var imageServerErrors: UInt64 = 0
    }

    struct State {
        var current: [String: BootRecord] = [:]
        var dirty: Set<String> = []
        var byMAC: [String: String] = [:]
        var byIP: [String: String] = [:]
        var names: [String] = []
        var indexedAt: UInt64 = 0
        var counters = Counters()
        var sessions: [SessionSummary] = []
        /// How long boots stayed in each stage (observed when they moved on).
        var durations: [BootStage: Histogram] = [:]
    }

    /// A Prometheus histogram: cumulative bucket counts, sum and count.
    public struct Histogram: Sendable, Equatable {
        public static let bounds: [Double] = [1, 2, 5, 10, 20, 30, 60, 120, 300, 600]
        public var buckets = [UInt64](repeating: 0, count: Histogram.bounds.count)
        public var sum = 0.0
        public var count: UInt64 = 0

        mutating func observe(_ seconds: Double) {
            for (i, b) in Self.bounds.enumerated() where seconds <= b { buckets[i] += 1 }
            sum += seconds
            count += 1
        }
    }

    /// A firmware DHCP this long after a boot's last event starts a new boot even in stage dhcp.
    static let staleBootSeconds = 600.0
    /// Boots that started within this long before the newest belong to its wave.
    static let waveSeconds = 1_800.0

    let registry: Registry
    let log: Logger
    private let state: NIOLockedValueBox<State>

    public init(registry: Registry, log: Logger) {
        self.registry = registry
        self.log = log
        var s = State()
        do { s.current = try registry.currentBoots() } catch {
            log.warning("boot monitor: cannot read the stored boots: \(error.message)")
        }
        state = NIOLockedValueBox(s)
    }

    public var counters: Counters { state.withLockedValue { $0.counters } }

    /// How long boots stayed in each stage, since qlumand started.
    public var stageDurations: [BootStage: Histogram] { state.withLockedValue { $0.durations } }

    /// ql-mcastd's sessions as last polled (for the boot page).
    public var sessions: [SessionSummary] {
        get { state.withLockedValue { $0.sessions } }
        set { state.withLockedValue { $0.sessions = newValue } }
    }

    func count(_ update: (inout Counters) -> Void) { state.withLockedValue { update(&$0.counters) } }

    // MARK: - Which node

    /// The registered node with `mac`, or nil (counted).
    func node(mac: String) -> String? { lookup { $0.byMAC[mac.lowercased()] } }

    /// The registered node with `ip`, or nil (counted).
    func node(ip: String) -> String? { lookup { $0.byIP[ip] } }

    /// Looks up in the index, refreshing it from the registry when older than 5 s — or older
    /// than 1 s when the lookup misses (a node registered a moment ago).
    private func lookup(_ find: (State) -> String?) -> String? {
        let now = MonotonicClock.nanoseconds()
        let (found, age) = state.withLockedValue { (find($0), now.subtractingClamped($0.indexedAt)) }
        if let found, age < 5_000_000_000 { return found }
        if found == nil, age < 1_000_000_000 {
            count { $0.unknownNode += 1 }
            return nil
        }
        refreshIndex(now: now)
        let again = state.withLockedValue { find($0) }
        if again == nil { count { $0.unknownNode += 1 } }
        return again
    }

    private func refreshIndex(now: UInt64) {
        guard let nodes = try? registry.nodes() else { return }
        state.withLockedValue { s in
            s.byMAC = [:]
            s.byIP = [:]
            for n in nodes {
                for m in n.macs { s.byMAC[m.lowercased()] = n.name }
                s.byIP[n.ip] = n.name
            }
            s.names = nodes.map(\.name).sorted()
            s.indexedAt = now
        }
    }

    // MARK: - Events

    /// Takes one event of `node`'s boot.
    /// - Parameters:
    ///   - startsBoot: The firmware's first step (its PXE DHCP): a new boot begins unless the
    ///     current one is still at that step.
    ///   - repeatIsRetry: The same step seen again in this boot is a retry (a DHCP or TFTP request
    ///     sent again).
    ///   - update: Sets what the event carries beside its line (image, session, progress).
    public func record(
        _ node: String, _ event: BootEvent, startsBoot: Bool = false, repeatIsRetry: Bool = false,
        update: ((inout BootRecord) -> Void)? = nil
    ) {
        let started: Bool = state.withLockedValue { s in
            s.counters.events += 1
            var started = false
            var r: BootRecord
            if let current = s.current[node],
                !startsBoot
                    || (current.stage == .dhcp && current.outcome == .booting
                        && event.at - current.lastEventAt < Self.staleBootSeconds)
            {
                r = current
            } else {
                // A new boot: the firmware's DHCP, or the first we hear of a node (qlumand
                // started while it was booting).
                r = BootRecord(node: node, startedAt: event.at, stage: startsBoot ? .dhcp : event.stage)
                s.counters.bootsStarted += 1
                started = true
            }
            var e = event
            if repeatIsRetry, r.events.contains(where: { $0.stage == e.stage && $0.what == e.what }) { e.retry = true }
            let (before, since) = (r.stage, r.stageAt)
            r.take(e)
            if r.stage > before, !started { s.durations[before, default: Histogram()].observe(max(0, e.at - since)) }
            update?(&r)
            s.current[node] = r
            s.dirty.insert(node)
            return started
        }
        if event.failed { log.warning("boot of \(node): \(event.stage.rawValue): \(event.what)") }
        if started { log.debug("boot of \(node) begins: \(event.what)") }
    }

    /// Updates `node`'s current boot without an event (image progress), if it has one booting.
    func update(_ node: String, _ change: (inout BootRecord) -> Void) {
        state.withLockedValue { s in
            guard var r = s.current[node], r.outcome != .up else { return }
            change(&r)
            s.current[node] = r
            s.dirty.insert(node)
        }
    }

    /// execd's daemon polled: the node is up (once per boot).
    func agentSeen(_ node: String) {
        let booting = state.withLockedValue { s in s.current[node].map { $0.outcome != .up } ?? true }
        if booting { record(node, BootEvent(at: Self.now(), stage: .up, what: "execd connected to qlumand")) }
    }

    /// The head node's clock in seconds since the epoch: what every event is stamped with.
    public static func now() -> Double { Date().timeIntervalSince1970 }

    // MARK: - Storing

    /// Writes the boots that changed since the last call, in one transaction.
    public func store() {
        let records: [BootRecord] = state.withLockedValue { s in
            defer { s.dirty.removeAll(keepingCapacity: true) }
            return s.dirty.compactMap { s.current[$0] }
        }
        guard !records.isEmpty else { return }
        do {
            let ids = try registry.saveBoots(records)
            state.withLockedValue { s in
                s.counters.stored += UInt64(records.count)
                for (r, id) in zip(records, ids) where id != 0 && r.id == 0 {
                    // The same boot still (not one begun meanwhile): it has its row now.
                    if s.current[r.node]?.startedAt == r.startedAt, s.current[r.node]?.id == 0 {
                        s.current[r.node]?.id = id
                    }
                }
            }
        } catch {
            state.withLockedValue { s in
                s.counters.storeErrors += 1
                for r in records { s.dirty.insert(r.node) }
            }
            log.error("boot monitor: cannot store \(records.count) boots: \(error.message)")
        }
    }

    // MARK: - Status

    /// When `r` reached each stage it has seen, in seconds since it started: the first event of
    /// the stage, or of any later stage if that came first (the sources are polled at different
    /// paces — ql-mcastd once a second — and a node that is configuring has verified its image,
    /// whenever the head node heard of it).
    static func stageTimes(_ r: BootRecord) -> [String: Double] {
        var first: [BootStage: Double] = [:]
        for e in r.events { first[e.stage] = min(first[e.stage] ?? .infinity, e.at) }
        var times: [String: Double] = [:]
        var bound = Double.infinity
        for stage in BootStage.allCases.reversed() {
            guard let t = first[stage] else { continue }
            bound = min(bound, t)
            times[stage.rawValue] = max(0, bound - r.startedAt)
        }
        return times
    }

    /// Every requested node's line: its current boot, or why there is none.
    /// - Parameter connected: Nodes whose execd agent is connected (up whatever their records say).
    public func status(_ request: BootStatusRequest, connected: Set<String>) -> BootStatus {
        let now = Self.now()
        if state.withLockedValue({ $0.names.isEmpty }) { refreshIndex(now: MonotonicClock.nanoseconds()) }
        let (current, names) = state.withLockedValue { ($0.current, $0.names) }
        let wanted = request.nodes ?? names
        let newest = current.values.map(\.startedAt).max()
        let waveStart = newest.map { n in
            current.values.map(\.startedAt).filter { $0 >= n - Self.waveSeconds }.min() ?? n
        }
        var lines: [BootStatus.Line] = []
        var counts: [String: Int] = [:]
        for name in wanted {
            var line = BootStatus.Line(node: name, state: "never")
            if let r = current[name] {
                line.startedAt = r.startedAt
                line.image = r.image
                line.imageVersion = r.imageVersion
                line.session = r.session
                line.retries = r.retries
                line.lastError = r.lastError
                line.stages = Self.stageTimes(r)
                line.stage = r.stage
                if let waveStart, r.startedAt < waveStart, !connected.contains(name) {
                    line.state = "silent"
                    line.seconds = now - waveStart
                } else {
                    line.state = r.outcome.rawValue
                    line.progress = r.stage == .image ? r.progress : nil
                    line.loss = r.stage == .image ? r.loss : nil
                    line.seconds = max(0, now - (r.outcome == .booting ? r.stageAt : r.lastEventAt))
                    line.stuck = r.outcome == .booting && now - r.stageAt > request.stuckSeconds
                }
            } else if connected.contains(name) {
                line.state = "up"
            } else if let waveStart {
                line.state = "silent"
                line.seconds = now - waveStart
            }
            if line.state == "booting", let stage = line.stage {
                counts[stage.rawValue, default: 0] += 1
            } else {
                counts[line.state, default: 0] += 1
            }
            if line.stuck { counts["stuck", default: 0] += 1 }
            lines.append(line)
        }
        return BootStatus(
            at: now, waveStartedAt: waveStart, stuckSeconds: request.stuckSeconds, nodes: lines, counts: counts)
    }
}
