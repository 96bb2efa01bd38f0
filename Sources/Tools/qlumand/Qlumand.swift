import ArgumentParser
import Foundation
import ImageService
import Logging
import NodeConfig
import Platform
import Provisioning
import QlumanServer
import ServiceLifecycle
import Transport
import UnixSignals

struct Qlumand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qlumand",
        abstract: "The QluMan server on the head node: hands every booting node its configuration.",
        discussion: HelpText.paragraphs(
            """
            Serves the node registry (<root>/var/lib/qlustar/qluman.db, managed with qluman) to the
            nodes' qluman-execd --configure, over TLS with a certificate signed by the cluster CA
            (scripts/cluster-ca /etc/qlustar/ssl qlumand HEAD-ADDRESS). A node is recognised by the
            address it connects from, must report one of its registered MACs, and must present its
            enrollment token when it has one (qluman node set NODE --token-file F). It receives
            only its own configuration: the config classes assigned to it (else to its group) and
            the Root FS Customization trees below <root>/var/lib/qlustar/root-fs/NAME.

              qlumand --listen 192.168.52.1                          serve (port \(QlumanDefaults.port))
              qlumand status --server 192.168.52.1 --ca /etc/qlustar/ssl/ca.crt

            Signals: SIGTERM/SIGINT stop, SIGHUP reopens the log (logrotate).
            Log: <root>/var/log/qlustar/qlumand.log.

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
        commandName: "serve", abstract: "Run qlumand (the default subcommand).",
        discussion: HelpText.paragraphs(
            """
            Every option is also a key of the configuration file (--config FILE: 'key = value' lines,
            '#' comments, keys named like the options without dashes; the packaged unit reads
            /etc/qlustar/qlumand.conf); options given here win.
            """))

    @Option(help: "Root prefix for every path (default: $QLUSTAR_ROOT or /).") var root: String?
    @Option(help: "Configuration file ('key = value' lines).") var config: String?
    @Option(help: "Address ADDR[:PORT] to listen on (default 0.0.0.0:\(QlumanDefaults.port)).") var listen: String?
    @Option(
        help:
            "This head node's certificate (PEM, signed by the cluster CA; default <root>/etc/qlustar/ssl/qlumand.crt).")
    var tlsCertificate: String?
    @Option(help: "The certificate's private key (PEM; default <root>/etc/qlustar/ssl/qlumand.key).") var tlsKey:
        String?
    @Option(help: "Most open connections (booting nodes at once; default 2048).") var maxConnections: String?
    @Option(help: "Seconds before a silent connection is closed (default 30).") var idleTimeout: String?
    @Option(
        help:
            "dnsmasq's log, which the boot monitor follows for DHCP and TFTP (dnsmasq --log-facility=PATH with log-dhcp; default <root>\(QlumanDefaults.dnsmasqLog))."
    )
    var dnsmasqLog: String?
    @Option(
        help:
            "ql-mcastd's control address HOST[:PORT], polled for the image stage of each boot (default 127.0.0.1; none: do not)."
    )
    var imageServer: String?
    @Option(
        help:
            "The cluster CA to verify ql-mcastd's TLS with (default <root>\(QlumanDefaults.ca) when ql-mcastd has a certificate; none: plain)."
    )
    var imageServerCa: String?
    @Option(
        help:
            "The boot page's address ADDR[:PORT] (HTTPS with this certificate; default 127.0.0.1:\(QlumanDefaults.webPort), reach it with ssh -L; none: no page)."
    )
    var web: String?
    @Option(help: "Serve Prometheus text on http://ADDR:PORT/metrics (boot stages, configure counters; default: off).")
    var metrics: String?
    @Option(
        help:
            "The file holding the boot page's login token (made, 0600, when missing; default <root>\(QlumanDefaults.webToken))."
    )
    var webToken: String?
    @Option(
        help: ArgumentHelp(
            "The node registry: a file (SQLite) or postgresql://USER@HOST[,HOST]/DATABASE shared with a second "
                + "head node (default: $QLUSTAR_REGISTRY, else <root>/var/lib/qlustar/qluman.db).",
            valueName: "PATH|URL"))
    var registry: String?
    @Option(
        help: ArgumentHelp(
            "Seconds between looks at the registry that keep this head's dnsmasq and TFTP files in step (0: off, the default).",
            discussion:
                "For two head nodes on one registry (5 is a good value): a change made on either head (qluman node add, boot set, …) is provisioned on this one within that time, as 'qluman provision' would, and dnsmasq reloaded. A registry out of reach leaves the files as they are.",
            valueName: "SECONDS"))
    var provisionInterval: String?
    @Option(help: "Log level: trace, debug, info (default; or $QL_LOG_LEVEL), notice, warning, error, critical.")
    var logLevel: String?

    func configuration() throws(QlustarError) -> QlumandConfiguration {
        var c = QlumandConfiguration()
        if let config { try c.apply(file: config) }
        let flags: [(String, String?)] = [
            ("root", root), ("listen", listen), ("tls-certificate", tlsCertificate), ("tls-key", tlsKey),
            ("max-connections", maxConnections), ("idle-timeout", idleTimeout), ("dnsmasq-log", dnsmasqLog),
            ("image-server", imageServer), ("image-server-ca", imageServerCa), ("web", web),
            ("metrics", metrics), ("web-token", webToken), ("log-level", logLevel), ("registry", registry),
            ("provision-interval", provisionInterval),
        ]
        for (key, value) in flags { if let value { try c.set(key, value) } }
        return c
    }

    func run() async throws {
        // A configuration error is one line naming the key (and file line), exit status 1.
        let c = try configuration()
        let settings = try c.settings()
        let log = Logger(root: settings.root, name: "qlumand", level: try c.logLevel())
        let server = try QlumanServer(settings: settings, log: log)
        try server.start()
        if let interval = settings.provisionInterval {
            let registry = server.registry
            let provisioner = Provisioner(root: settings.root, log: log)
            try DetachedThread.start(name: "provision") {
                var follower = ProvisionFollower(provisioner: provisioner, log: log)
                follower.run(registry, every: interval) { server.isStopping }
            }
        }
        // The service group's own lines (start, shutdown) only when something goes wrong.
        var logger = log
        logger.logLevel = max(.warning, log.logLevel)
        let group = ServiceGroup(
            services: [DaemonService(server: server)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }
}

/// qlumand as a service: reopens its log on SIGHUP (after logrotate moved it) until graceful
/// shutdown, then stops listening.
struct DaemonService: Service {
    let server: QlumanServer

    func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        for await _ in hangups.cancelOnGracefulShutdown() { LogFile.reopenAll() }
        server.stop()
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a running qlumand's counters.")

    @Option(help: "qlumand's address HOST[:PORT].") var server = "127.0.0.1"
    @Option(help: "The cluster CA (PEM).") var ca = QlumanDefaults.ca
    @Option(help: "Seconds to wait.") var timeout = 5.0
    @Flag(help: "Print the raw JSON.") var json = false

    func run() throws {
        let (host, port) = try DaemonConfiguration.hostPort(server, defaultPort: QlumanDefaults.port)
        let client = try ControlClient(
            host: host, port: port, timeout: timeout, tls: try ControlTLS.client(ca: ca, host: host))
        let body = try client.call(ControlRequest(op: QlumanOperation.status), timeout: timeout)
        if json {
            print(String(decoding: body, as: UTF8.self))
            return
        }
        let s = try JSONDecoder().decode(QlumandStatus.self, from: Data(body))
        print("nodes registered   \(s.nodes)")
        print("configured         \(s.configured)  (\(s.configuredFromMemory) from memory: the registry out of reach)")
        print(
            "refused            \(s.refused.values.reduce(0, +))"
                + (s.refused.isEmpty
                    ? ""
                    : "  ("
                        + s.refused.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                        + ")"))
        print("failed             \(s.failed)")
        print("root-fs archives   \(s.rootFSArchivesBuilt) built")
        print("connections        \(s.connections)  (TLS errors \(s.tlsErrors), framing errors \(s.framingErrors))")
    }
}
