import ArgumentParser
import Foundation
import ImageService
import Logging
import NodeConfig
import Platform

#if canImport(Glibc)
    import Glibc
#endif

@main
struct QlumanExecd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qluman-execd",
        abstract: "QluMan's agent on a node: writes the node's configuration from qlumand, runs its init.d scripts.",
        discussion: HelpText.paragraphs(
            """
            Run twice by /sbin/init.qlustar before systemd starts (boot step 5), then as a service:

              qluman-execd --configure --server 192.168.52.1
                  fetch this node's options, write them, exit
              qluman-execd --init-disks
                  initialise and mount the local disks of
                  /etc/qlustar/options.d/disk-config (--dry-run: print)
              qluman-execd --run-initd
                  run /lib/qlustar/init.d/* in order, exit
              qluman-execd --daemon --server 192.168.52.1
                  serve qlumand: remote commands, reconfigure, monitoring
                  reports (systemd: qluman-execd.service)

            In daemon mode execd connects out to qlumand and opens no port: commands reach the node only
            from the qlumand whose certificate the cluster CA signed ('qluman exec NODE -- CMD' on the head).

            --configure trusts only a qlumand certificate signed by the cluster CA (--ca). It writes
            /etc/hostname, option files in /etc/qlustar/options.d, the network configuration
            (/etc/network/interfaces.d/qluman on Debian/Ubuntu, ifcfg files on RHEL, by the node's
            /etc/os-release), systemd mount units, /root/.ssh/authorized_keys and the Root FS
            Customization trees — exactly what 'qluman preview NODE' shows on the head node.
            Paths hang below --root, and nothing is ever written outside it.

            Exit status: 0 done; 1 bad arguments or configuration; 2 qlumand refused this node;
            3 a Root FS archive failed its SHA-256; 4 qlumand unreachable; 5 writing failed;
            6 (--run-initd) at least one script failed (all others still ran);
            7 (--init-disks) a configured disk could not be initialised or mounted (the others were).
            Log: <root>/var/log/qlustar/qluman-execd.log; script output: <root>/var/log/qlustar/init.d/NAME.log.
            """))

    @Flag(help: "Fetch this node's configuration from qlumand and write it (one-shot).") var configure = false
    @Flag(help: "Run the executables in <root>/lib/qlustar/init.d in alphanumeric order (one-shot).") var runInitd =
        false
    @Flag(
        help: "Initialise and mount the local disks of <root>/etc/qlustar/options.d/disk-config (only those; one-shot)."
    )
    var initDisks = false
    @Flag(help: "With --init-disks: print what would be done, touch nothing.") var dryRun = false
    @Flag(help: "Serve qlumand until stopped: run its commands, report load, memory, uptime and disk.") var daemon =
        false
    @Option(help: "Daemon mode: seconds between monitoring reports.") var reportInterval = 30.0
    @Option(help: "Root prefix for every path (default: $QLUSTAR_ROOT or /).") var root: String?
    @Option(
        help:
            "qlumand's address HOST[:PORT], or HOST[:PORT],HOST[:PORT] with two head nodes: the first that answers is used (default: qluman.server= or ql.server= on the kernel command line)."
    )
    var server: String?
    @Option(help: "The cluster CA (PEM) (default <root>\(QlumanDefaults.ca)).") var ca: String?
    @Option(help: "File holding this node's enrollment token (default <root>\(QlumanDefaults.tokenFile) when present).")
    var tokenFile: String?
    @Option(help: "This node's MAC address (repeatable; default: every NIC in /sys/class/net).") var mac: [String] = []
    @Option(help: "debian or redhat (default: from <root>/etc/os-release).") var osFamily: String?
    @Option(help: "Connect from this local address (the node's registered one, on a multi-homed node).") var source:
        String?
    @Option(help: "Seconds to keep trying to reach qlumand.") var serverTimeout = 30.0
    @Flag(help: "Do not check (and step) the clock against the server's NTP before configuring.") var noTimeSync = false
    @Option(help: "Seconds an init.d script may run before it is killed.") var scriptTimeout = 600.0
    @Flag(help: "Verbose log (as with the kernel parameter debug).") var debug = false
    @Option(help: "Log level: trace, debug, info (default; or $QL_LOG_LEVEL), notice, warning, error, critical.")
    var logLevel: String?

    func validate() throws {
        guard configure || runInitd || daemon || initDisks else {
            throw ValidationError("say what to do: --configure, --init-disks, --run-initd or --daemon")
        }
        guard !dryRun || initDisks else { throw ValidationError("--dry-run goes with --init-disks") }
        guard !daemon || !(configure || runInitd || initDisks) else {
            throw ValidationError("--daemon runs alone (configure and init.d come first, at boot)")
        }
        guard reportInterval >= 1 else { throw ValidationError("--report-interval must be at least 1 s") }
        if let osFamily, OSFamily(rawValue: osFamily) == nil {
            throw ValidationError("--os-family must be debian or redhat")
        }
        if let logLevel {
            do { _ = try Logger.level(parsing: logLevel) } catch { throw ValidationError(error.message) }
        }
    }

    func run() throws {
        let root = Root(root)
        let log = Logger(
            root: root, name: "qluman-execd", verbose: debug || Self.kernelParameter("debug") != nil,
            level: logLevel.flatMap { try? Logger.level(parsing: $0) })
        if daemon {
            var settings = ExecAgent.Settings(configure: try configureSettings(root: root))
            settings.interval = reportInterval
            ExecAgent(settings: settings, log: log).run()
        }
        // What the boot monitor on the head node hears of this boot (nil: no qlumand known).
        let reporter = (try? configureSettings(root: root)).map { BootReporter(settings: $0, log: log) }
        if configure {
            // qlumand records the configure stage itself when it answers the request.
            do {
                let report = try ConfigureRun(settings: try configureSettings(root: root), log: log).run()
                print("configured \(report.node): \(report.files) entries (\(report.classes.joined(separator: " ")))")
                reporter?.report(
                    .initd,
                    "configured: \(report.files) entries (\(report.classes.joined(separator: " ")))"
                        + (report.actionsFailed > 0 ? ", \(report.actionsFailed) actions failed" : ""))
            } catch let error as QlustarError {
                log.error("configure: \(error.message)")
                // Refused or unreachable: qlumand knows (or cannot be told); anything else it must hear.
                if error.code != .refused, error.code != .unreachable {
                    reporter?.report(.configure, "configure failed: \(error.message)", failed: true)
                }
                throw ExitCode(Self.exitCode(error.code))
            }
        }
        if initDisks {
            let file = root.path(NodeRenderer.optionsDirectory + "/disk-config")
            if FileSystem.isRegularFile(file) {
                let config = try DiskConfig.parse(
                    String(decoding: try FileSystem.readFile(file, limit: 1 << 20), as: UTF8.self))
                var disks = DiskInitializer(root: root, log: log)
                disks.dryRun = dryRun
                let steps = disks.run(config)
                if dryRun { for s in steps { print("\(s.device): \(s.detail)") } }
                let refused = steps.filter { $0.action == "refused" }
                if !dryRun {
                    // The boot monitor's "disks" line (the node is configured; init.d comes next).
                    reporter?.report(
                        .initd,
                        refused.isEmpty
                            ? "disks: "
                                + (steps.map { "\($0.device) \($0.action)" }.joined(separator: ", ").nonEmpty ?? "none")
                            : "disks: " + refused.map { "\($0.device): \($0.detail)" }.joined(separator: "; "),
                        failed: !refused.isEmpty)
                }
                if !refused.isEmpty { throw ExitCode(7) }
            } else {
                log.info("disks: no \(file): no local disks to initialise")
            }
        }
        if runInitd {
            var runner = InitDRunner(root: root, log: log)
            runner.timeoutSeconds = scriptTimeout
            let results = runner.run()
            let failed = results.filter { $0.outcome != "ok" && $0.outcome != "skipped" }
            if failed.isEmpty {
                reporter?.report(.system, "init.d done: \(results.count) scripts")
            } else {
                reporter?.report(
                    .initd, "init.d: " + failed.map { "\($0.script) \($0.outcome)" }.joined(separator: ", "),
                    failed: true)
                throw ExitCode(6)
            }
        }
    }

    private func configureSettings(root: Root) throws -> ConfigureRun.Settings {
        // ql.server= names ql-mcastd on each head (HOST[:PORT],…): qlumand runs on the same head
        // nodes, on its own port.
        let imageServers = Self.kernelParameter("ql.server").map {
            $0.split(separator: ",").map { String($0.split(separator: ":").first ?? "") }.joined(separator: ",")
        }
        guard let address = server ?? Self.kernelParameter("qluman.server") ?? imageServers, !address.isEmpty else {
            throw QlustarError(
                .configuration, "no qlumand address: give --server or qluman.server= on the kernel command line")
        }
        let heads = try HeadNode.list(address, defaultPort: QlumanDefaults.port)
        let macs = mac.isEmpty ? Self.localMACs() : mac
        guard !macs.isEmpty else { throw QlustarError(.configuration, "no network interface with a MAC address found") }
        let tokenPath = tokenFile ?? root.path(QlumanDefaults.tokenFile)
        var token: String?
        if tokenFile != nil || FileSystem.isRegularFile(tokenPath) {
            token = String(decoding: try FileSystem.readFile(tokenPath, limit: 4_096), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        var settings = ConfigureRun.Settings(
            root: root, serverHost: heads[0].host, ca: ca ?? root.path(QlumanDefaults.ca), macs: macs, token: token)
        settings.serverPort = heads[0].port
        settings.otherServers = Array(heads.dropFirst())
        settings.serverTimeout = serverTimeout
        settings.osFamily = osFamily.flatMap(OSFamily.init(rawValue:))
        settings.sourceAddress = source
        settings.timeSync = !noTimeSync
        return settings
    }

    static func exitCode(_ code: QlustarError.Code) -> Int32 {
        switch code {
        case .invalidArgument, .configuration: 1
        case .refused, .notFound: 2
        case .integrity: 3
        case .unreachable: 4
        default: 5
        }
    }

    /// `NAME=value` (or `NAME` alone: "") from the kernel command line: /proc/cmdline, or the file
    /// `QL_CMDLINE` names (a virtual node's, as the boot scripts read it).
    static func kernelParameter(_ name: String) -> String? {
        let file = ProcessInfo.processInfo.environment["QL_CMDLINE"] ?? "/proc/cmdline"
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return nil }
        for word in text.split(whereSeparator: \.isWhitespace) {
            if word == name { return "" }
            if word.hasPrefix(name + "=") { return String(word.dropFirst(name.count + 1)) }
        }
        return nil
    }

    /// The MACs of this host's NICs (loopback and all-zero addresses left out).
    static func localMACs() -> [String] {
        let base = "/sys/class/net"
        let names = (try? FileSystem.list(base)) ?? []
        return names.sorted().compactMap { name in
            guard let text = try? String(contentsOfFile: "\(base)/\(name)/address", encoding: .utf8) else { return nil }
            let mac = text.trimmingCharacters(in: .whitespacesAndNewlines)
            return mac.count == 17 && mac != "00:00:00:00:00:00" ? mac : nil
        }
    }
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
