import ArgumentParser
import Foundation
import ImageService
import Logging
import NodeRegistry
import Platform
import ServiceLifecycle
import Transport
import UnixSignals

struct QLMcastd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ql-mcastd",
        abstract:
            "The Qlustar multicast image server: streams node OS images to every node that asks at the same time.",
        discussion: HelpText.paragraphs(
            """
            Serves the images in <root>/var/lib/qlustar/images (image NAME is the file NAME.img). Nodes
            (ql-mcast-client, run by the initrd) ask on the control port for an image; requests for
            the same image within --window seconds share one multicast session on a group:port from
            the pool, a request while that session runs joins it late, and a node that multicast does
            not reach fetches the missing ranges over the control connection.

              ql-mcastd --interface eth0             serve (port \(DaemonConfiguration.defaultPort), pool 239.255.1.0/24)
              ql-mcastd status --server 127.0.0.1   sessions, members, progress

            Signals: SIGTERM/SIGINT let running sessions finish (--shutdown-grace), then abort them;
            SIGHUP re-reads the image directory and reopens the log. Log: <root>/var/log/qlustar/ql-mcastd.log.

            Exit status: 0 after a clean shutdown (SIGTERM, SIGINT); 1 a configuration it cannot serve
            with or a fatal error, named in the message; 64 a mistake in the command line. 'status': 0
            answered, 1 not reachable.
            """),
        subcommands: [Serve.self, Status.self],
        defaultSubcommand: Serve.self
    )
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Run the image server (the default subcommand).",
        discussion: HelpText.paragraphs(
            """
            Every option is also a key of the configuration file (--config FILE: 'key = value' lines,
            '#' comments, keys named like the options without dashes); options given here win.
            """))

    @Option(help: "Root prefix for every path (default: $QLUSTAR_ROOT or /).") var root: String?
    @Option(help: "Configuration file ('key = value' lines).") var config: String?
    @Option(help: "Control address ADDR[:PORT] to listen on (default 0.0.0.0:\(DaemonConfiguration.defaultPort)).")
    var listen: String?
    @Option(help: "Address of the head node's interface toward the nodes; sessions are sent from it. Required.")
    var interface: String?
    @Option(help: "Multicast groups to allocate sessions from, as CIDR (default 239.255.1.0/24).") var groupPool:
        String?
    @Option(help: "UDP ports to allocate sessions from, A-B (default 30000-30999).") var portRange: String?
    @Option(help: "Seconds during which requests for one image share a session (default 2).") var window: String?
    @Option(help: "Total sending rate shared by all sessions, e.g. 5g, or unlimited (default).") var rate: String?
    @Option(help: "Most sessions at once; beyond it nodes get the unicast path (default 8).") var maxSessions: String?
    @Option(help: "Most nodes in sessions at once; beyond it nodes are told to retry (default 512).") var maxClients:
        String?
    @Option(help: "Most open control connections (default 1024).") var maxConnections: String?
    @Option(help: "Most control connections from one address, so no host locks the others out (default 32).")
    var maxConnectionsPerHost: String?
    @Option(help: "Seconds before a silent control connection is closed (default 30).") var idleTimeout: String?
    @Option(help: "Bytes per symbol: default fills MTU 1500 (1440, or 1424 with a session key); 8900 suits MTU 9000.")
    var symbolSize: String?
    @Option(help: "Source symbols per FEC block (default 128).") var blockSymbols: String?
    @Option(help: "Proactive parity as a fraction of a block (default 0; adapts to reported loss).") var parity: String?
    @Option(help: "yes: tag every datagram with a per-session key (HMAC-SHA256) handed out with the ticket.")
    var authenticate: String?
    @Option(
        help: """
            yes: encrypt every session's symbols (AES-128-GCM under the session key, given to admitted \
            nodes only); default yes with TLS (--tls-certificate), no without.
            """)
    var encrypt: String?
    @Option(help: "yes: also deliver sessions to clients on this host (multicast loopback).") var loopback: String?
    @Option(help: "Seconds running sessions get to finish on SIGTERM before they are aborted (default 10).")
    var shutdownGrace: String?
    @Option(
        help: "TLS on the control port: this head node's certificate (PEM, signed by the cluster CA; needs --tls-key).")
    var tlsCertificate: String?
    @Option(help: "TLS on the control port: the certificate's private key (PEM).") var tlsKey: String?
    @Option(help: "Serve Prometheus text on http://ADDR[:PORT]/metrics (port 9779 if omitted); off by default.")
    var metrics: String?
    @Option(
        help: """
            Node registry deciding who is served: PATH, postgresql://USER@HOST[,HOST]/DATABASE (the \
            registry two head nodes share), 'none', or 'auto' (default: $QLUSTAR_REGISTRY, else \
            'registry =' in <root>/etc/qlustar/qlumand.conf, else <root>/var/lib/qlustar/qluman.db \
            when it exists: what qluman on this head uses). With one, only registered nodes, \
            recognised by the MAC the kernel's neighbour table shows for their address (and their \
            enrollment token where set), can list and fetch images and get session keys; others get \
            'not-registered'. Without one, any host on the network can.
            """)
    var registry: String?
    @Option(
        help: ArgumentHelp(
            "File holding the secret the head nodes share (mode 0600, at least 16 characters; default: none).",
            discussion:
                "A request carrying it is the other head node's: it may list and fetch images and fetch-file their initrd, kernel and manifest (qlustar-image replicate --from THIS-HEAD). Without it, fetch-file is refused to everyone.",
            valueName: "FILE"))
    var peerToken: String?
    @Option(
        help: ArgumentHelp(
            "ql-mcastd on the other head node, HOST[:PORT] (needs --peer-token; default: none).",
            discussion:
                "Its images are looked at every 5 s: an image version it does not have is not served here (the previous version is, if it has that one) until it does — nodes that fail over between the heads find the version they were fetching. An answer older than 30 s counts as none: a head whose peer is gone serves what it has."
        ))
    var peer: String?
    @Option(
        help: "With --peer: hold back image versions the other head does not have (yes, the default; no: serve them).")
    var holdBack: String?
    @Option(help: "Testing aid: drop own datagrams with the engine's seeded model: \(LossModel.syntax).")
    var simulateLoss: String?
    @Option(help: "Log level: trace, debug, info (default; or $QL_LOG_LEVEL), notice, warning, error, critical.")
    var logLevel: String?

    func configuration() throws -> DaemonConfiguration {
        var c = DaemonConfiguration()
        if let config { try c.apply(file: config) }
        let flags: [(String, String?)] = [
            ("root", root), ("listen", listen), ("interface", interface), ("group-pool", groupPool),
            ("port-range", portRange),
            ("window", window), ("rate", rate), ("max-sessions", maxSessions), ("max-clients", maxClients),
            ("max-connections", maxConnections), ("max-connections-per-host", maxConnectionsPerHost),
            ("idle-timeout", idleTimeout), ("symbol-size", symbolSize),
            ("block-symbols", blockSymbols), ("parity", parity), ("authenticate", authenticate),
            ("encrypt", encrypt), ("loopback", loopback),
            ("shutdown-grace", shutdownGrace), ("simulate-loss", simulateLoss), ("metrics", metrics),
            ("tls-certificate", tlsCertificate), ("tls-key", tlsKey), ("registry", registry), ("log-level", logLevel),
            ("peer-token", peerToken), ("peer", peer), ("hold-back", holdBack),
        ]
        for (key, value) in flags { if let value { try c.set(key, value) } }
        try c.validate()
        return c
    }

    func run() async throws {
        // A configuration error is one line naming the key (and file line), exit status 1.
        var c = try configuration()
        let log = Logger(root: c.root, name: "ql-mcastd", level: c.logLevel)
        var admission: RegistryAdmission?
        // Not configured: the registry qluman on this head uses ($QLUSTAR_REGISTRY, `registry =` in
        // qlumand.conf), else the head node's file when it exists.
        if c.registry == nil { c.registry = try RegistryLocation.given(root: c.root) }
        if let path = c.registryPath {
            let location = try RegistryLocation.parse(path, root: c.root)
            if case .sqlite = location, !FileSystem.exists(path) {
                throw QlustarError(
                    .configuration, "registry \(path) does not exist (create it with qluman, or give --registry none)")
            }
            do { admission = RegistryAdmission(registry: try Registry(location: location)) } catch {
                throw QlustarError(.configuration, "registry \(location): \(error.message)")
            }
        }
        let server = try ImageServer(configuration: c, log: log, admission: admission)
        try server.start()
        // The service group's own lines (start, shutdown) only when something goes wrong.
        var logger = log
        logger.logLevel = max(.warning, log.logLevel)
        let group = ServiceGroup(
            services: [DaemonService(server: server)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }
}

/// The daemon as a service: on SIGHUP re-reads the image directory and reopens the log (after
/// logrotate moved it) until graceful shutdown, then stops the server.
struct DaemonService: Service {
    let server: ImageServer

    func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        for await _ in hangups.cancelOnGracefulShutdown() {
            LogFile.reopenAll()
            server.reload()
        }
        // Blocking by design: the sessions get their grace period, then the process ends.
        server.stop()
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a running ql-mcastd: sessions, members, progress, rates, loss and repair.")

    @Option(help: "The server's control address HOST[:PORT].") var server = "127.0.0.1"
    @Flag(help: "Print the raw JSON.") var json = false
    @Flag(help: "Print Prometheus text exposition format.") var prometheus = false
    @Option(help: "Seconds to wait for an answer.") var timeout = 5.0
    @Option(help: "The cluster CA (PEM), when ql-mcastd speaks TLS.") var ca: String?

    func run() throws {
        let (host, port) = try DaemonConfiguration.hostPort(server, defaultPort: DaemonConfiguration.defaultPort)
        let tls = try ca.map { try ControlTLS.client(ca: $0, host: host) }
        let client = try ControlClient(host: host, port: port, timeout: timeout, tls: tls)
        let body = try client.call(ControlRequest(op: ImageOperation.status), timeout: timeout)
        if json {
            print(String(decoding: body, as: UTF8.self))
            return
        }
        let s = try JSONDecoder().decode(ServerStatus.self, from: Data(body))
        if prometheus {
            print(s.prometheusText(), terminator: "")
            return
        }
        print(StatusText.table(s), terminator: "")
    }
}
