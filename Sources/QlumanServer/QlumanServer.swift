import Foundation
import ImageService
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NodeConfig
import NodeRegistry
import Platform
import Transport

/// qlumand: serves each node its configuration from the registry, over TLS only.
///
/// A node is identified by the address it connects from (the registry's IP); the MAC the
/// kernel's neighbour table shows for that address must be one registered for that node, and a
/// node with an enrollment token must present it. The answer is built from that node's record alone: a node can never receive
/// another node's configuration. Refusals are counted by reason and logged without secrets.
public final class QlumanServer: Sendable {
    public struct Settings: Sendable {
        public var root: Root
        public var listenHost = "0.0.0.0"
        public var listenPort = QlumanDefaults.port
        /// This head node's certificate and key (PEM, signed by the cluster CA).
        public var certificate: String
        public var key: String
        /// The administration socket (qluman exec, reconfigure, nodes): mode 0600, root only.
        public var adminSocket: String
        public var maxConnections = 2_048
        public var idleTimeoutSeconds = 30.0
        /// The neighbour table nodes are recognised by.
        public var neighbourTable = "/proc/net/arp"
        /// dnsmasq's log (`log-dhcp`), read by the boot monitor for DHCP and TFTP.
        public var dnsmasqLog: String
        /// ql-mcastd's control address, polled by the boot monitor for the image stage (nil: not).
        public var imageServer: (host: String, port: Int)? = ("127.0.0.1", DaemonConfiguration.defaultPort)
        /// The cluster CA for ql-mcastd's TLS (nil: plain).
        public var imageServerCA: String?
        /// Prometheus text on http://HOST:PORT/metrics (nil: off).
        public var metrics: (host: String, port: Int)?
        /// The boot page's address (nil: no page) and the file holding its login token.
        public var web: (host: String, port: Int)?
        public var webToken: String
        /// The registry (`RegistryLocation`): nil for `$QLUSTAR_REGISTRY`, else the file below the root.
        public var registry: String?
        /// Seconds between looks at the registry to keep this head's dnsmasq and TFTP files in step
        /// with changes made on any head (`ProvisionFollower`); nil: off, `qluman provision` only.
        public var provisionInterval: Double?

        public init(root: Root, certificate: String, key: String) {
            self.root = root
            self.certificate = certificate
            self.key = key
            adminSocket = root.path(QlumanDefaults.adminSocket)
            dnsmasqLog = root.path(QlumanDefaults.dnsmasqLog)
            webToken = root.path(QlumanDefaults.webToken)
        }
    }

    public let settings: Settings
    public let source: NodeConfigSource
    public var registry: Registry { source.registry }
    let log: Logger
    private let control = NIOLockedValueBox<ControlServer?>(nil)
    private let web = NIOLockedValueBox<WebServer?>(nil)
    private let metrics = NIOLockedValueBox<MetricsServer?>(nil)
    private let admin = NIOLockedValueBox<ControlServer?>(nil)
    let agents = AgentHub()
    /// Every node's boot: `Boot/BootMonitor.swift`.
    public let boots: BootMonitor
    private let counters = NIOLockedValueBox(QlumandStatus())
    /// Who is a node; its verdicts are remembered for a registry outage.
    let admission: RegistryAdmission
    /// Each node as last read, and its last configure answer: what a head that lost its
    /// (PostgreSQL) registry keeps serving (docs/HA.md).
    private let lastRead = NIOLockedValueBox<[String: Node]>([:])
    private let rendered = NIOLockedValueBox<[String: (json: [UInt8], payload: [UInt8])]>([:])
    private let outageLogged = NIOLockedValueBox(false)
    private let stopping = NIOLockedValueBox(false)

    public init(settings: Settings, log: Logger) throws(QlustarError) {
        self.settings = settings
        self.log = log
        source = NodeConfigSource(
            root: settings.root, registry: try Registry(root: settings.root, option: settings.registry), log: log)
        boots = BootMonitor(registry: source.registry, log: log)
        admission = RegistryAdmission(registry: source.registry)
    }

    /// The port actually bound.
    public var port: Int { control.withLockedValue { $0?.port ?? 0 } }

    /// Listens.
    /// - Throws: `.configuration` when the certificate or key does not load, `.io` when the
    ///   address cannot be bound.
    public func start() throws(QlustarError) {
        var options = ControlServer.Options()
        do { options.tls = try ControlTLS.server(certificate: settings.certificate, key: settings.key) } catch {
            throw QlustarError(.configuration, error.message)
        }
        options.maxConnections = settings.maxConnections
        options.idleTimeout = .milliseconds(Int64(settings.idleTimeoutSeconds * 1_000))
        let server: ControlServer
        let admin: ControlServer
        try FileSystem.makeDirectories((settings.adminSocket as NSString).deletingLastPathComponent)
        do throws(ControlFailure) {
            server = try ControlServer.start(host: settings.listenHost, port: settings.listenPort, options: options) {
                [self] request, peer, loop in answer(request, peer, loop)
            }
            var adminOptions = ControlServer.Options()
            adminOptions.idleTimeout = .seconds(3_600)
            do {
                admin = try ControlServer.start(unixSocket: settings.adminSocket, options: adminOptions) {
                    [self] request, _, loop in administer(request, loop)
                }
            } catch {
                server.stop()
                throw error
            }
        } catch {
            throw QlustarError(.io, error.message)
        }
        control.withLockedValue { $0 = server }
        self.admin.withLockedValue { $0 = admin }
        try startBootMonitor()
        if let m = settings.metrics {
            do {
                let http = try MetricsServer.start(host: m.host, port: m.port) { [self] in metricsText() }
                metrics.withLockedValue { $0 = http }
                log.info("Prometheus metrics on http://\(m.host):\(http.port)/metrics")
            } catch {
                stop()
                throw error
            }
        }
        if let address = settings.web {
            // The page is a window on the boot, not the boot: without it nodes are still served.
            do { try startWeb(address) } catch {
                log.error("boot page: \(error.message); qlumand serves on without it")
            }
        }
        let nodes = (try? registry.nodes().count) ?? 0
        log.info(
            "qlumand listening on \(settings.listenHost):\(server.port) (TLS), administration on \(settings.adminSocket), registry \(registry.path) with \(nodes) nodes"
        )
    }

    /// The boot page's port (0: none).
    public var webPort: Int { web.withLockedValue { $0?.port ?? 0 } }
    /// The metrics port (0: none).
    public var metricsPort: Int { metrics.withLockedValue { $0?.port ?? 0 } }

    /// What `/metrics` answers: `Boot/QlumandMetrics.swift`.
    public func metricsText() -> String {
        let connected = Set(agents.monitor().filter(\.connected).map(\.node))
        return QlumandMetrics.render(
            status: status(), boot: boots.status(BootStatusRequest(nodes: nil, stuckSeconds: 60), connected: connected),
            durations: boots.stageDurations, monitor: boots.counters)
    }

    /// Whether `stop` was called (threads that serve beside the server end then).
    public var isStopping: Bool { stopping.withLockedValue { $0 } }

    public func stop() {
        stopping.withLockedValue { $0 = true }
        web.withLockedValue { $0?.stop() }
        metrics.withLockedValue { $0?.stop() }
        control.withLockedValue { $0?.stop() }
        admin.withLockedValue { $0?.stop() }
        boots.store()
        log.info("qlumand stopped")
    }

    /// The boot page, with the same certificate as the control port and the web token.
    private func startWeb(_ address: (host: String, port: Int)) throws(QlustarError) {
        let tls: ControlTLS
        do { tls = try ControlTLS.server(certificate: settings.certificate, key: settings.key) } catch {
            throw QlustarError(.configuration, error.message)
        }
        var web = WebServer.Settings(tls: tls, token: try WebServer.token(at: settings.webToken))
        web.host = address.host
        web.port = address.port
        let boots = self.boots
        let agents = self.agents
        let registry = self.registry
        let view = WebView(
            status: { stuck in
                let connected = Set(agents.monitor().filter(\.connected).map(\.node))
                return boots.status(BootStatusRequest(nodes: nil, stuckSeconds: stuck), connected: connected)
            },
            sessions: { boots.sessions },
            boots: { name in (try? registry.boots(of: name)) ?? [] })
        let server = try WebServer.start(settings: web, view: view, log: log)
        self.web.withLockedValue { $0 = server }
    }

    /// The boot monitor's two threads: one follows dnsmasq's log (every 250 ms) and stores what
    /// changed (every 500 ms); one polls ql-mcastd's status (every second; its answer may take
    /// seconds when ql-mcastd is down, which must not hold up the log).
    private func startBootMonitor() throws(QlustarError) {
        let boots = self.boots
        let logPath = settings.dnsmasqLog
        do {
            try DetachedThread.start(name: "boot-log") { [self] in
                var follower = LogFollower(path: logPath)
                var reader = DnsmasqBootEvents()
                var lastStore: UInt64 = 0
                while !stopping.withLockedValue({ $0 }) {
                    let (lines, tooLong) = follower.poll()
                    let now = BootMonitor.now()
                    for line in lines {
                        if let parsed = DnsmasqLogLine.parse(line) { reader.take(parsed, at: now, into: boots) }
                    }
                    boots.count {
                        $0.logLines += UInt64(lines.count)
                        $0.logLinesTooLong += UInt64(tooLong)
                    }
                    let t = MonotonicClock.nanoseconds()
                    if t.subtractingClamped(lastStore) >= 500_000_000 {
                        boots.store()
                        lastStore = t
                    }
                    if lines.isEmpty { usleep(250_000) }
                }
                follower.close()
            }
            if let server = settings.imageServer {
                let ca = settings.imageServerCA
                try DetachedThread.start(name: "boot-image") { [self] in
                    var watch = ImageServerWatch(host: server.host, port: server.port, ca: ca)
                    var lastFailure = ""
                    while !stopping.withLockedValue({ $0 }) {
                        do throws(ControlFailure) {
                            try watch.poll(into: boots)
                            boots.count { $0.imageServerPolls += 1 }
                            lastFailure = ""
                        } catch {
                            boots.count { $0.imageServerErrors += 1 }
                            // Each new reason once: ql-mcastd may simply not run on this head.
                            if error.message != lastFailure {
                                log.notice("boot monitor: ql-mcastd at \(server.host):\(server.port): \(error.message)")
                            }
                            lastFailure = error.message
                        }
                        usleep(1_000_000)
                    }
                }
            }
        } catch {
            throw QlustarError(.io, "cannot start the boot monitor: \(error)")
        }
        log.info(
            "boot monitor: dnsmasq log \(logPath), ql-mcastd \(settings.imageServer.map { "\($0.host):\($0.port)" } ?? "not watched")"
        )
    }

    public func status() -> QlumandStatus {
        var s = counters.withLockedValue { $0 }
        s.rootFSArchivesBuilt = source.archivesBuilt
        s.nodes = (try? registry.nodes().count) ?? 0
        if let c = control.withLockedValue({ $0?.counters }) {
            s.connections = c.connections
            s.framingErrors = c.framingErrors
            s.tlsErrors = c.tlsErrors
        }
        return s
    }

    // MARK: - Operations

    /// The TLS port: nodes (configure, the agent's operations) and counters.
    func answer(_ request: ControlRequest, _ peer: ControlPeer, _ loop: EventLoop) -> EventLoopFuture<ControlReply> {
        do throws(ControlFailure) {
            switch request.op {
            case QlumanOperation.configure:
                return loop.makeSucceededFuture(try configure(try request.arguments(ConfigureRequest.self), peer))
            case QlumanOperation.agentWait:
                let wait = try request.arguments(AgentWaitRequest.self)
                let node = try identify(wait.credentials.macs, wait.credentials.token, peer)
                boots.agentSeen(node.name)
                // A poll must end well before the connection counts as idle.
                let seconds = min(wait.seconds, settings.idleTimeoutSeconds * 0.8)
                return agents.wait(node: node.name, report: wait.report, seconds: seconds, loop: loop)
            case QlumanOperation.agentOutput:
                let output = try request.arguments(AgentOutput.self)
                let node = try identify(output.credentials.macs, output.credentials.token, peer)
                try agents.output(node: node.name, job: output.job, data: Array(output.data))
                return loop.makeSucceededFuture(.json(Array("{}".utf8)))
            case QlumanOperation.agentResult:
                let result = try request.arguments(AgentResult.self)
                let node = try identify(result.credentials.macs, result.credentials.token, peer)
                try agents.result(node: node.name, job: result.job, status: result.status, outcome: result.outcome)
                log.info("job \(result.job) on \(node.name): \(result.outcome)")
                return loop.makeSucceededFuture(.json(Array("{}".utf8)))
            case QlumanOperation.bootReport:
                let report = try request.arguments(BootReportRequest.self)
                let node = try identify(report.credentials.macs, report.credentials.token, peer)
                try recordBootReport(report, node: node.name)
                return loop.makeSucceededFuture(.json(Array("{}".utf8)))
            case QlumanOperation.status:
                return loop.makeSucceededFuture(.json(canonicalJSON(status())))
            default:
                throw ControlFailure(.unknownOperation, "qlumand has no operation '\(request.op.prefix(64))'")
            }
        } catch {
            return loop.makeFailedFuture(error)
        }
    }

    /// The administration socket: remote commands, reconfiguration, the nodes' reports.
    func administer(_ request: ControlRequest, _ loop: EventLoop) -> EventLoopFuture<ControlReply> {
        do throws(ControlFailure) {
            switch request.op {
            case QlumanOperation.exec:
                let exec = try request.arguments(ExecRequest.self)
                let node: Node
                do { node = try registry.node(exec.node) } catch { throw ControlFailure(.notFound, error.message) }
                guard exec.kind == .configure || !exec.argv.isEmpty else {
                    throw ControlFailure(.malformedRequest, "no command given")
                }
                let job = try agents.submit(
                    node: node.name, kind: exec.kind, argv: exec.argv, timeout: exec.timeoutSeconds)
                let what = exec.kind == .configure ? "reconfigure" : "run \(exec.argv.joined(separator: " "))"
                log.info("job \(job) on \(node.name): \(what)")
                return loop.makeSucceededFuture(.json(canonicalJSON(ExecStarted(job: job))))
            case QlumanOperation.execPoll:
                let poll = try request.arguments(ExecPollRequest.self)
                return agents.poll(job: poll.job, offset: poll.offset, loop: loop)
            case QlumanOperation.execPollMany:
                let polls = try request.arguments(ExecPollManyRequest.self).polls
                guard polls.count <= ExecPollRequest.maxPerRequest else {
                    throw ControlFailure(
                        .malformedRequest, "more than \(ExecPollRequest.maxPerRequest) jobs polled at once")
                }
                return agents.pollMany(polls, loop: loop)
            case QlumanOperation.nodes:
                return loop.makeSucceededFuture(.json(canonicalJSON(agents.monitor())))
            case QlumanOperation.bootStatus:
                let query = try request.arguments(BootStatusRequest.self)
                guard query.stuckSeconds > 0, query.stuckSeconds < 1e9 else {
                    throw ControlFailure(.malformedRequest, "stuck threshold \(query.stuckSeconds) s is not 0…1e9")
                }
                if let names = query.nodes {
                    guard names.count <= Hostlist.maxNames else {
                        throw ControlFailure(.malformedRequest, "more than \(Hostlist.maxNames) nodes asked for")
                    }
                    let known = Set(((try? registry.nodes()) ?? []).map(\.name))
                    let unknown = names.filter { !known.contains($0) }
                    guard unknown.isEmpty else {
                        throw ControlFailure(.notFound, "no registered node \(Hostlist.fold(unknown))")
                    }
                }
                let connected = Set(agents.monitor().filter(\.connected).map(\.node))
                return loop.makeSucceededFuture(.json(canonicalJSON(boots.status(query, connected: connected))))
            case QlumanOperation.status:
                return loop.makeSucceededFuture(.json(canonicalJSON(status())))
            default:
                throw ControlFailure(
                    .unknownOperation, "qlumand has no administration operation '\(request.op.prefix(64))'")
            }
        } catch {
            return loop.makeFailedFuture(error)
        }
    }

    /// The registered node that `peer` is: by its address, the MAC the kernel's neighbour table
    /// shows for that address (not the MACs the node reports, which anyone can claim), and its
    /// token when it has one. A peer on the head node itself (loopback, one of its addresses) has
    /// no neighbour entry: it is trusted and identified by the MACs it reports.
    /// - Throws: `.refused` (counted by reason, logged without the token) or `.internalError`.
    private func identify(_ reportedMACs: [String], _ token: String?, _ peer: ControlPeer) throws(ControlFailure)
        -> Node
    {
        let address = NeighbourTable.plainIPv4(peer.host)
        let observed: String?
        if NeighbourTable.isLocal(address) {
            let macs = reportedMACs.compactMap { try? NodeFields.mac($0) }
            let registered = (try? registry.node(ip: address))??.macs ?? []
            observed = macs.first(where: registered.contains) ?? macs.first
        } else {
            observed = NeighbourTable.mac(of: address, table: settings.neighbourTable)
        }
        switch admission.admit(address: address, mac: observed, token: token) {
        case .admitted(let name):
            // The registry just failed: what was read last, without waiting on it again.
            if admission.inOutage, let node = lastRead.withLockedValue({ $0[name] }) {
                registryOutage(admission.lastFailure)
                return node
            }
            do {
                let node = try registry.node(name)
                lastRead.withLockedValue { $0[name] = node }
                return node
            } catch {
                guard error.code == .io, let node = lastRead.withLockedValue({ $0[name] }) else {
                    throw failed("registry: \(error.message)")
                }
                registryOutage(error.message)
                return node
            }
        case .refused(let reason, let message):
            throw refuse(reason == "not-registered" ? "unknown-address" : reason, message, peer)
        }
    }

    private func configure(_ request: ConfigureRequest, _ peer: ControlPeer) throws(ControlFailure) -> ControlReply {
        let node = try identify(request.macs, request.token, peer)
        boots.record(node.name, BootEvent(at: BootMonitor.now(), stage: .configure, what: "configure requested"))
        if admission.inOutage, let last = rendered.withLockedValue({ $0[node.name] }) {
            counters.withLockedValue { $0.configuredFromMemory += 1 }
            log.info("configure \(node.name) (\(peer.host)): its last configuration, the registry being out of reach")
            return .bytes(json: last.json, payload: last.payload)
        }
        do {
            let (options, trees) = try source.resolve(node)
            let payload = trees.flatMap(\.bytes)
            try? registry.recordConfigure(node.name, facts: request.facts)
            counters.withLockedValue { $0.configured += 1 }
            let classes = options.sources.keys.sorted().joined(separator: " ").nonEmpty ?? "no config classes"
            let customization = payload.isEmpty ? "" : ", \(payload.count) bytes of Root FS Customization"
            log.info(
                "configure \(node.name) (\(peer.host), \(request.osFamily.rawValue), \(request.facts.timeDaemon.rawValue)): \(classes)\(customization)"
            )
            let json = canonicalJSON(ConfigureReply(options: options))
            rendered.withLockedValue { $0[node.name] = (json, payload) }
            if outageLogged.withLockedValue({ logged in
                defer { logged = false }
                return logged
            }) {
                log.notice("the node registry can be read again")
            }
            return .bytes(json: json, payload: payload)
        } catch {
            // The registry out of reach (not a configuration mistake): what this node got last time.
            if error.code == .io, let last = rendered.withLockedValue({ $0[node.name] }) {
                registryOutage(error.message)
                counters.withLockedValue { $0.configuredFromMemory += 1 }
                log.info(
                    "configure \(node.name) (\(peer.host)): its last configuration, the registry being out of reach")
                return .bytes(json: last.json, payload: last.payload)
            }
            throw failed("node \(node.name): \(error.message)")
        }
    }

    /// Logs a registry outage once.
    private func registryOutage(_ reason: String) {
        let first = outageLogged.withLockedValue { logged in
            defer { logged = true }
            return !logged
        }
        if first {
            log.error(
                "the node registry cannot be read (\(reason)): nodes get what they got last time until it is back"
            )
        }
    }

    /// A node's execd reports a boot step: configure begun, configured, init.d done — or failed.
    /// Only those stages: `up` is qlumand's own observation (the agent's poll), the earlier ones
    /// are dnsmasq's and ql-mcastd's.
    private func recordBootReport(_ report: BootReportRequest, node: String) throws(ControlFailure) {
        guard [.configure, .initd, .system].contains(report.stage) else {
            throw ControlFailure(
                .malformedRequest,
                "a node reports stages configure, initd and system only, not \(report.stage.rawValue)")
        }
        // The node's words, shown to administrators: printable, one line, bounded.
        let what = String(report.what.prefix(BootEvent.maxWhat)).printableLine
        boots.record(node, BootEvent(at: BootMonitor.now(), stage: report.stage, what: what, failed: report.failed))
    }

    private func refuse(_ reason: String, _ message: String, _ peer: ControlPeer) -> ControlFailure {
        counters.withLockedValue { $0.refused[reason, default: 0] += 1 }
        log.warning("refused \(peer.address): \(message)")
        return ControlFailure(.refused, message)
    }

    private func failed(_ message: String) -> ControlFailure {
        counters.withLockedValue { $0.failed += 1 }
        log.error("configure failed: \(message)")
        return ControlFailure(.internalError, message)
    }
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
