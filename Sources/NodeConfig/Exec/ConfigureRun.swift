import Foundation
import Logging
import Platform
import Transport

#if canImport(Glibc)
    import Glibc
#endif

/// `qluman-execd --configure`: one run of the pre-systemd configuration of a node. Connects to
/// qlumand over TLS (only a server certificate signed by the cluster CA is accepted), identifies
/// the node (its address, MACs and, when it has one, its enrollment token), receives its
/// options and Root FS Customization archives, verifies each archive's SHA-256, renders the
/// plan with `NodeRenderer` (the same code as `qluman preview`) and writes it below the root.
public struct ConfigureRun {
    public struct Settings: Sendable {
        public var root: Root
        public var serverHost: String
        public var serverPort = QlumanDefaults.port
        /// qlumand on the other head nodes (`ql.server=A,B`), tried in order after the first.
        public var otherServers: [HeadNode] = []
        /// The cluster CA (PEM).
        public var ca: String
        public var macs: [String]
        public var token: String?
        /// Seconds to keep trying to reach qlumand (it may still be starting).
        public var serverTimeout = 30.0
        /// OS family; nil: detected from the root's os-release.
        public var osFamily: OSFamily?
        /// Set the clock from the server first (SNTP; stepped when more than 0.5 s off, as root).
        public var timeSync = true
        public var stepClock = true
        /// The local address to connect from (nil: routing picks); qlumand knows a node by it.
        public var sourceAddress: String?

        public init(root: Root, serverHost: String, ca: String, macs: [String], token: String?) {
            self.root = root
            self.serverHost = serverHost
            self.ca = ca
            self.macs = macs
            self.token = token
        }

        /// Every head in the order tried.
        public var servers: [HeadNode] { [HeadNode(host: serverHost, port: serverPort)] + otherServers }

        /// A TLS connection to qlumand on the first head that answers, trying them in order from
        /// `first`; returns it and that head's index. A head whose certificate the cluster CA
        /// did not sign is not tried again here: the TLS failure is thrown at once.
        /// - Throws: the last head's failure when none answers.
        public func connect(from first: Int = 0, timeout: Double, maxData: Int = 0) throws(ControlFailure) -> (
            client: ControlClient, head: Int
        ) {
            let heads = servers
            var last = ControlFailure(.connection, "no head node")
            for step in 0..<heads.count {
                let index = (first + step) % heads.count
                let tls = try ControlTLS.client(ca: ca, host: heads[index].host)
                do {
                    let client = try ControlClient(
                        host: heads[index].host, port: heads[index].port, timeout: timeout, maxData: maxData, tls: tls,
                        source: sourceAddress)
                    return (client, index)
                } catch {
                    if error.code == .tls { throw error }
                    last = error
                }
            }
            throw last
        }
    }

    public struct Report: Sendable, Codable {
        public var node: String
        public var files: Int
        public var ownersNotSet: Int
        public var classes: [String]
        public var actionsRun: Int
        public var actionsSkipped: Int
        public var actionsFailed: Int
        public var seconds: Double
    }

    public let settings: Settings
    let log: Logger

    public init(settings: Settings, log: Logger) {
        self.settings = settings
        self.log = log
    }

    /// Runs configure.
    /// - Throws: `.unreachable` when qlumand cannot be reached in time, `.refused` when it
    ///   refuses this node, `.integrity` for an archive that does not match its digest,
    ///   `.invalidArgument`/`.io` when the plan cannot be written.
    public func run() throws(QlustarError) -> Report {
        let started = MonotonicClock.nanoseconds()
        var family = OSFamily.debian
        if let chosen = settings.osFamily { family = chosen } else { family = try OSFamily.detect(root: settings.root) }
        let facts = NodeFacts(osFamily: family, timeDaemon: TimeDaemon.detect(root: settings.root))
        if settings.timeSync { syncClock() }
        let request = ConfigureRequest(
            macs: settings.macs, token: settings.token, facts: facts, hostname: ProcessInfo.processInfo.hostName)
        let (reply, payload, head) = try fetch(request)
        let options = reply.options
        var trees: [RootFSArchive] = []
        var offset = payload.startIndex
        for reference in options.rootFS {
            guard reference.size >= 0, payload.endIndex - offset >= reference.size else {
                throw QlustarError(.integrity, "Root FS Customization \(reference.name): archive truncated")
            }
            let archive = RootFSArchive(name: reference.name, bytes: Array(payload[offset..<(offset + reference.size)]))
            guard archive.sha256 == reference.sha256 else {
                throw QlustarError(
                    .integrity, "Root FS Customization \(reference.name): SHA-256 does not match; nothing written")
            }
            trees.append(archive)
            offset += reference.size
        }
        let plan = try NodeRenderer.plan(options, facts: facts, trees: trees)
        let outcome = try plan.write(below: settings.root.prefix)
        if outcome.ownersNotSet > 0 {
            log.warning("not running as root: owners of \(outcome.ownersNotSet) entries left as they are")
        }
        var (run, skipped, failed) = (0, 0, 0)
        for action in plan.actions {
            let program = Subprocess.locate(Self.searchPath(action.program))
            guard program.hasPrefix("/") else {
                log.info(
                    "\(action.program) not present: \(action.description) not set (\(action.program) \(action.arguments.joined(separator: " ")))"
                )
                skipped += 1
                continue
            }
            do {
                try Subprocess.run(program, action.arguments, step: action.description)
                log.info("\(action.description): done")
                run += 1
            } catch {
                log.error("\(error.message)")
                failed += 1
            }
        }
        let classes = options.sources.keys.sorted()
        let seconds = Double(MonotonicClock.nanoseconds() - started) / 1e9
        let classList = classes.isEmpty ? "none" : classes.joined(separator: " ")
        log.info(
            "configured node \(options.node.name) from \(head.host): \(outcome.written) entries, classes \(classList)\(String(format: ", %.2f s", seconds))"
        )
        return Report(
            node: options.node.name, files: outcome.written, ownersNotSet: outcome.ownersNotSet, classes: classes,
            actionsRun: run, actionsSkipped: skipped, actionsFailed: failed, seconds: seconds)
    }

    /// Sets the clock once from the head node (before TLS, whose certificates have dates), the
    /// next head when one does not answer; without an NTP answer the boot goes on with the clock
    /// as it is.
    private func syncClock() {
        var failures: [String] = []
        for head in settings.servers {
            var sync = TimeSync(server: head.host)
            sync.mayStep = settings.stepClock
            do {
                let r = try sync.run()
                let measured = String(
                    format: "time: offset %+.6f s from %@ (stratum %d, delay %.1f ms)", r.offset, head.host,
                    r.stratum, r.delay * 1_000)
                log.info("\(measured)\(r.stepped ? "; clock stepped" : "; not stepped")")
                return
            } catch {
                failures.append(error.message)
            }
        }
        log.warning("\(failures.joined(separator: "; ")); the clock stays as it is")
    }

    /// Asks qlumand — on the first head that answers — retrying while none can be reached (not
    /// when one refuses).
    private func fetch(_ request: ConfigureRequest) throws(QlustarError) -> (
        ConfigureReply, ArraySlice<UInt8>, HeadNode
    ) {
        let body: ControlRequest
        do { body = try ControlRequest(op: QlumanOperation.configure, arguments: request) } catch {
            throw QlustarError(.invalidArgument, "cannot encode the request: \(error)")
        }
        let deadline = MonotonicClock.nanoseconds() + UInt64(settings.serverTimeout * 1e9)
        let heads = settings.servers.map(\.description).joined(separator: ", ")
        var backoff = Backoff(first: 0.5, cap: 4)
        while true {
            do throws(ControlFailure) {
                let (client, head) = try settings.connect(timeout: 5, maxData: RootFSArchive.maxUnpackedSize)
                defer { client.close() }
                if head > 0 {
                    log.warning(
                        "qlumand on \(settings.servers[0]) not reachable: configured by \(settings.servers[head])")
                }
                let (json, payload) = try client.fetch(body, timeout: 60)
                do {
                    return (
                        try JSONDecoder().decode(ConfigureReply.self, from: Data(json)), payload, settings.servers[head]
                    )
                } catch {
                    throw ControlFailure(
                        .internalError, "qlumand's answer does not decode: \(ConfigClass.describe(error))")
                }
            } catch {
                switch error.code {
                case .connection, .timedOut, .busy:
                    guard MonotonicClock.nanoseconds() < deadline else {
                        throw QlustarError(.unreachable, "cannot reach qlumand at \(heads): \(error.message)")
                    }
                    log.debug("qlumand (\(heads)) not reachable yet: \(error.message)")
                    backoff.wait()
                    continue
                case .tls:
                    throw QlustarError(.refused, "qlumand failed TLS verification: \(error.message)")
                default:
                    throw QlustarError(.refused, "qlumand refused this node: \(error.message)")
                }
            }
        }
    }

    /// Where `program` may be: every directory of PATH.
    static func searchPath(_ program: String) -> [String] {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin"
        return path.split(separator: ":").map { "\($0)/\(program)" } + [program]
    }
}
