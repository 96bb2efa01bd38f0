import FoundationEssentials
import Logging
import Platform
import Transport

/// Everything ql-mcastd runs with. Every field is a command-line flag and a key of the
/// configuration file (same name); flags win over the file. See docs/IMAGE-SERVICE.md.
public struct DaemonConfiguration: Sendable {
    /// The control port when `--listen` gives none.
    public static let defaultPort = 7799

    public var root = Root()
    public var listenHost = "0.0.0.0"
    public var listenPort = DaemonConfiguration.defaultPort
    /// Address of the interface the sessions are sent from (cannot be guessed on a head node
    /// with several networks).
    public var interface: IPv4Address?
    public var groupPool = "239.255.1.0/24"
    public var portRange = "30000-30999"
    /// Requests for one image within this many seconds share a session.
    public var windowSeconds = 2.0
    /// Total sending rate, shared by the running sessions (unpaced: each adapts to its receivers).
    public var rate = Rate.unpaced
    public var maxSessions = 8
    /// Most clients in sessions at once; beyond it a request is told to retry.
    public var maxClients = 512
    public var maxConnections = 1_024
    /// Control connections one source address may hold at once.
    public var maxConnectionsPerHost = 32
    public var idleTimeoutSeconds = 30.0
    /// Bytes per symbol; nil: fill a 1,500-byte MTU (1,440, or 1,424 with `authenticate`, whose
    /// tag takes 16 bytes of every datagram).
    public var symbolSize: Int?
    /// The symbol size sessions use.
    public var streamSymbolSize: Int { symbolSize ?? SenderConfiguration.defaultSymbolSize(authenticated: sessionKeys) }
    public var blockSymbols = 128
    public var parity = 0.0
    /// Hand out a session key and tag every datagram (HMAC-SHA256).
    public var authenticate = false
    /// Seal the symbols of every session (AES-128-GCM, `PacketSealer`); nil: yes when the control
    /// port has TLS (the session key is then handed out to admitted nodes only).
    public var encrypt: Bool?
    /// Whether sessions are encrypted.
    public var encryptsSessions: Bool { encrypt ?? (tlsCertificate != nil) }
    /// Whether sessions get a key (tagged, and sealed when `encryptsSessions`).
    public var sessionKeys: Bool { authenticate || encryptsSessions }
    /// Deliver sessions to clients on the head node itself as well.
    public var loopback = false
    /// Seconds to let running sessions finish on SIGTERM before aborting them.
    public var shutdownGraceSeconds = 10.0
    /// Seeded loss applied to what the daemon sends (testing aid).
    public var simulateLoss = LossModel.none
    /// Largest range one `fetch` returns.
    public var maxFetchBytes = 8 << 20
    /// TLS on the control port: the head node's certificate (signed by the cluster CA) and key,
    /// PEM. Both set: TLS on; neither: plain TCP.
    public var tlsCertificate: String?
    public var tlsKey: String?
    /// Serve Prometheus text on http://HOST:PORT/metrics (nil: off).
    public var metrics: (host: String, port: Int)?
    /// The node registry that decides who is served: nil means `<root>/var/lib/qlustar/qluman.db`
    /// when it exists (the head node's), else nobody is checked; "none" turns checking off.
    public var registry: String?
    /// The neighbour table admission reads (tests point it elsewhere).
    public var neighbourTable = "/proc/net/arp"
    /// The registry file to use, or nil for none.
    public var registryPath: String? {
        switch registry {
        case "none": return nil
        case let path?: return path
        case nil:
            let path = root.path("/var/lib/qlustar/qluman.db")
            return FileSystem.exists(path) ? path : nil
        }
    }
    var registryDescription: String { registryPath ?? "none" }
    /// The file holding the secret the head nodes share (`peer-token`): a request carrying it is
    /// the other head's (`list-images`, `fetch`, `fetch-file`: `qlustar-image replicate`). nil:
    /// `fetch-file` is refused to everyone.
    public var peerToken: String?
    /// ql-mcastd on the other head node (`peer`): watched so that this head serves no image version
    /// the other does not have (`PeerWatch`), unless `holdBack` is off. Needs `peerToken`.
    public var peer: HeadNode?
    public var holdBack = true
    /// Finished sessions stay visible in `status` this long.
    public var keepFinishedSeconds = 60.0
    /// The log's level (`log-level`); nil: `QL_LOG_LEVEL`, else info.
    public var logLevel: Logger.Level?

    public init() {}

    /// The keys a configuration file may set.
    public static let keys = [
        "root", "listen", "interface", "group-pool", "port-range", "window", "rate", "max-sessions", "max-clients",
        "max-connections", "max-connections-per-host", "idle-timeout", "symbol-size", "block-symbols", "parity",
        "authenticate", "encrypt", "loopback",
        "shutdown-grace", "simulate-loss", "metrics", "tls-certificate", "tls-key", "registry", "log-level",
        "peer-token", "peer", "hold-back",
    ]

    /// Sets `key` (a flag name without dashes) from `text`.
    /// - Throws: `.configuration` naming the key, the value, and what it should be.
    public mutating func set(_ key: String, _ text: String) throws(QlustarError) {
        func bad(_ expected: String) -> QlustarError {
            QlustarError(.configuration, "\(key) = '\(text)': expected \(expected)")
        }
        func int(_ range: ClosedRange<Int>) throws(QlustarError) -> Int {
            guard let v = Int(text), range.contains(v) else {
                throw bad("a whole number in \(range.lowerBound)…\(range.upperBound)")
            }
            return v
        }
        func seconds(_ range: ClosedRange<Double>) throws(QlustarError) -> Double {
            guard let v = Double(text), range.contains(v) else {
                throw bad("seconds in \(range.lowerBound)…\(range.upperBound)")
            }
            return v
        }
        func bool() throws(QlustarError) -> Bool {
            switch text.lowercased() {
            case "yes", "true", "on", "1": return true
            case "no", "false", "off", "0": return false
            default: throw bad("yes or no")
            }
        }
        switch key {
        case "root": root = Root(text)
        case "listen":
            let (h, p) = try DaemonConfiguration.hostPort(text, defaultPort: DaemonConfiguration.defaultPort)
            listenHost = h
            listenPort = p
        case "interface":
            // A name (eth0) or an address, as every tool's --interface.
            let address = IPv4Address(text) ?? (try? NetworkInterface.resolve(text)).flatMap { IPv4Address($0.address) }
            guard let a = address, !a.isMulticast, a != .any else {
                throw bad("the name or IPv4 address of a local interface")
            }
            interface = a
        case "group-pool":
            do { _ = try GroupPool(cidr: text, ports: portRange) } catch {
                throw bad("a multicast CIDR like 239.255.1.0/24 (\(error.message))")
            }
            groupPool = text
        case "port-range":
            do { _ = try GroupPool(cidr: groupPool, ports: text) } catch {
                throw bad("a port range like 30000-30999 (\(error.message))")
            }
            portRange = text
        case "window": windowSeconds = try seconds(0...60)
        case "rate":
            do { rate = try Rate(parsing: text) } catch { throw bad("a bit rate like 2g or 500m, or unlimited") }
        case "max-sessions": maxSessions = try int(1...1_024)
        case "max-clients": maxClients = try int(1...65_536)
        case "max-connections": maxConnections = try int(1...100_000)
        case "max-connections-per-host": maxConnectionsPerHost = try int(1...100_000)
        case "idle-timeout": idleTimeoutSeconds = try seconds(1...3_600)
        case "symbol-size": symbolSize = try int(512...8_960)
        case "block-symbols": blockSymbols = try int(1...254)
        case "parity":
            guard let v = Double(text), (0...1).contains(v) else {
                throw bad("a fraction of the block in 0…1, like 0.05")
            }
            parity = v
        case "authenticate": authenticate = try bool()
        case "encrypt": encrypt = try bool()
        case "loopback": loopback = try bool()
        case "metrics":
            guard text != "off", text != "no" else {
                metrics = nil
                return
            }
            do { metrics = try DaemonConfiguration.hostPort(text, defaultPort: 9_779) } catch {
                throw bad("ADDR[:PORT] or off")
            }
        case "tls-certificate": tlsCertificate = text.isEmpty ? nil : text
        case "tls-key": tlsKey = text.isEmpty ? nil : text
        case "registry": registry = text.isEmpty || text == "auto" ? nil : text
        case "peer-token": peerToken = text.isEmpty || text == "none" ? nil : text
        case "peer":
            guard !text.isEmpty, text != "none" else {
                peer = nil
                return
            }
            do { peer = try HeadNode(parsing: text, defaultPort: DaemonConfiguration.defaultPort) } catch {
                throw bad("HOST[:PORT] of the other head node's ql-mcastd, or none")
            }
        case "hold-back": holdBack = try bool()
        case "shutdown-grace": shutdownGraceSeconds = try seconds(0...3_600)
        case "log-level":
            do { logLevel = try Logger.level(parsing: text) } catch {
                throw bad("trace, debug, info, notice, warning, error or critical")
            }
        case "simulate-loss":
            do { simulateLoss = try LossModel(parsing: text) } catch {
                throw bad("none, random:P or burst:P:LENGTH (\(error.message))")
            }
        default:
            throw QlustarError(
                .configuration, "unknown key '\(key)' (known: \(DaemonConfiguration.keys.joined(separator: ", ")))")
        }
    }

    /// Applies a configuration file: `key = value` lines, `#` comments, blank lines ignored.
    /// - Throws: `.configuration` naming the file and line.
    public mutating func apply(file path: String) throws(QlustarError) {
        try ConfigFile.read(path) { (key, value) throws(QlustarError) in try set(key, value) }
    }

    /// Checks what cannot be defaulted and that the pool is usable.
    public func validate() throws(QlustarError) {
        guard interface != nil else {
            throw QlustarError(
                .configuration, "no --interface: give the address of the head node's interface to the compute nodes")
        }
        do { _ = try GroupPool(cidr: groupPool, ports: portRange) } catch {
            throw QlustarError(.configuration, "group pool: \(error.message)")
        }
        guard peer == nil || peerToken != nil else {
            throw QlustarError(.configuration, "peer needs peer-token (the secret both head nodes share)")
        }
        guard (tlsCertificate == nil) == (tlsKey == nil) else {
            throw QlustarError(.configuration, "TLS needs both tls-certificate and tls-key (or neither)")
        }
    }

    /// The control port's TLS, when configured.
    public func controlTLS() throws(QlustarError) -> ControlTLS? {
        guard let tlsCertificate, let tlsKey else { return nil }
        do { return try ControlTLS.server(certificate: tlsCertificate, key: tlsKey) } catch {
            throw QlustarError(.configuration, error.message)
        }
    }

    /// Splits `HOST[:PORT]`.
    public static func hostPort(_ text: String, defaultPort: Int) throws(QlustarError) -> (String, Int) {
        let head = try HeadNode(parsing: text, defaultPort: defaultPort)
        return (head.host, head.port)
    }
}
