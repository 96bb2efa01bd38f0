import ImageService
import Logging
import NodeConfig
import Platform

/// qlumand's settings as an administrator writes them: `/etc/qlustar/qlumand.conf` (the
/// `ConfigFile` syntax ql-mcastd's file has, keys named like the options) and the command line,
/// whose options win. Values are checked when the settings are made, each error naming its key.
public struct QlumandConfiguration: Sendable {
    /// Every key, as `qlumand serve --KEY` spells it.
    public static let keys = [
        "root", "listen", "tls-certificate", "tls-key", "max-connections", "idle-timeout", "dnsmasq-log",
        "image-server", "image-server-ca", "web", "web-token", "metrics", "log-level", "registry",
        "provision-interval",
    ]

    private var values: [String: String] = [:]

    public init() {}

    /// Sets one key (a later value replaces an earlier one).
    /// - Throws: `.configuration` for a key qlumand does not know, listing the known ones.
    public mutating func set(_ key: String, _ value: String) throws(QlustarError) {
        guard Self.keys.contains(key) else {
            throw QlustarError(.configuration, "unknown key '\(key)' (known: \(Self.keys.joined(separator: ", ")))")
        }
        values[key] = value
    }

    /// Applies a configuration file.
    /// - Throws: `.configuration` naming the file and line.
    public mutating func apply(file path: String) throws(QlustarError) {
        try ConfigFile.read(path) { (key, value) throws(QlustarError) in try set(key, value) }
    }

    /// The log level, when one is set.
    public func logLevel() throws(QlustarError) -> Logger.Level? {
        guard let text = values["log-level"] else { return nil }
        do { return try Logger.level(parsing: text) } catch { throw bad("log-level", error.message) }
    }

    /// The server's settings: every key checked, defaults below the root for what is not set.
    /// - Throws: `.configuration` naming the key and what it expects.
    public func settings() throws(QlustarError) -> QlumanServer.Settings {
        let root = Root(values["root"])
        var s = QlumanServer.Settings(
            root: root, certificate: values["tls-certificate"] ?? root.path("/etc/qlustar/ssl/qlumand.crt"),
            key: values["tls-key"] ?? root.path("/etc/qlustar/ssl/qlumand.key"))
        guard let listen = try address("listen", default: "0.0.0.0", port: QlumanDefaults.port) else {
            throw bad("listen", "'none': qlumand needs an address to listen on")
        }
        (s.listenHost, s.listenPort) = listen
        if let text = values["max-connections"] {
            guard let n = Int(text), (1...1_000_000).contains(n) else {
                throw bad("max-connections", "'\(text)': expected a whole number in 1…1000000")
            }
            s.maxConnections = n
        }
        if let text = values["idle-timeout"] {
            guard let seconds = Double(text), (0.1...86_400).contains(seconds) else {
                throw bad("idle-timeout", "'\(text)': expected seconds in 0.1…86400")
            }
            s.idleTimeoutSeconds = seconds
        }
        if let path = values["dnsmasq-log"] { s.dnsmasqLog = path }
        if let path = values["web-token"] { s.webToken = path }
        if let registry = values["registry"], !registry.isEmpty { s.registry = registry }
        if let text = values["provision-interval"] {
            guard let seconds = Double(text), seconds == 0 || (0.5...3_600).contains(seconds) else {
                throw bad("provision-interval", "'\(text)': expected seconds in 0.5…3600, or 0 (off)")
            }
            s.provisionInterval = seconds > 0 ? seconds : nil
        }
        s.web = try address("web", default: "127.0.0.1", port: QlumanDefaults.webPort)
        s.metrics = try address("metrics", default: "none", port: 9_780)
        s.imageServer = try address("image-server", default: "127.0.0.1", port: DaemonConfiguration.defaultPort)
        switch values["image-server-ca"] {
        case "none"?: s.imageServerCA = nil
        case let ca?: s.imageServerCA = ca
        case nil:
            // ql-mcastd speaks TLS when it has its certificate on this head node.
            let hasCertificate = FileSystem.isRegularFile(root.path("/etc/qlustar/ssl/ql-mcastd.crt"))
            s.imageServerCA = hasCertificate ? root.path(QlumanDefaults.ca) : nil
        }
        return s
    }

    /// `ADDR[:PORT]` of `key` (its default when unset); nil for `none`.
    private func address(_ key: String, default fallback: String, port: Int) throws(QlustarError) -> (
        host: String, port: Int
    )? {
        let text = values[key] ?? fallback
        if text == "none" { return nil }
        do { return try DaemonConfiguration.hostPort(text, defaultPort: port) } catch {
            throw bad(key, "'\(text)': \(error.message)")
        }
    }

    private func bad(_ key: String, _ message: String) -> QlustarError {
        QlustarError(.configuration, "\(key) = \(message)")
    }
}
