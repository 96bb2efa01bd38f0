import Foundation
import ImageService
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NodeConfig
import Platform
import Transport

/// qlumand's boot page: every node's boot live in a browser (`docs/QLUMAN.md`, "Boot page").
///
/// HTTPS only, with qlumand's own certificate (the cluster CA signed it), and a login: the
/// administrator gives the web token (a 0600 file only root reads) once and gets a session
/// cookie (HttpOnly, Secure, SameSite=Strict, 12 h). The page shows node state — which nodes
/// exist, their addresses' boot progress, errors — to nobody else: the LAN is not trusted, and on
/// the head node not every user is an administrator. By default it listens on loopback only
/// (reach it with `ssh -L 7880:127.0.0.1:7880 head`); `--web ADDR:PORT` opens it elsewhere.
///
/// Plain SwiftNIO HTTP/1.1 (already in the build for Prometheus), not a web framework: five
/// routes, server-sent events for the live part, the page itself three files written here.
public final class WebServer: Sendable {
    public struct Settings: Sendable {
        public var host = "127.0.0.1"
        public var port = 7880
        public var tls: ControlTLS
        /// What the login form must be given (compared in constant time).
        public var token: String
        /// Seconds between pushes to each open page.
        public var pushInterval = 1.0

        public init(tls: ControlTLS, token: String) {
            self.tls = tls
            self.token = token
        }
    }

    public static let maxConnections = 64
    /// Sessions (logins) kept at once; the oldest goes first.
    static let maxSessions = 256
    static let sessionSeconds = 12 * 3_600.0
    /// A connection is closed after this long (a page's event stream reconnects by itself).
    static let lifetime = TimeAmount.minutes(10)

    private let channel: Channel
    let settings: Settings
    public var port: Int { channel.localAddress?.port ?? 0 }

    private init(channel: Channel, settings: Settings) {
        self.channel = channel
        self.settings = settings
    }

    /// Listens.
    /// - Parameters:
    ///   - view: What the page shows now (boot status, sessions) and a node's boots.
    /// - Throws: `.io` when the address cannot be bound.
    public static func start(settings: Settings, view: WebView, log: Logger) throws(QlustarError) -> WebServer {
        let open = NIOLockedValueBox(0)
        let sessions = WebSessions()
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                guard MetricsServer.admit(channel, open: open, most: maxConnections, lifetime: lifetime) else {
                    return channel.close()
                }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(try settings.tls.handler())
                }.flatMap {
                    channel.pipeline.configureHTTPServerPipeline()
                }.flatMap {
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            WebHandler(settings: settings, view: view, sessions: sessions))
                    }
                }
            }
        do {
            let channel = try bootstrap.bind(host: settings.host, port: settings.port).wait()
            let server = WebServer(channel: channel, settings: settings)
            log.info("boot page on https://\(settings.host):\(server.port)/ (login with the web token)")
            return server
        } catch {
            throw QlustarError(.io, "cannot serve the boot page on \(settings.host):\(settings.port): \(error)")
        }
    }

    public func stop() { try? channel.close().wait() }

    /// The web token in `path`: made (32 random bytes, hex, mode 0600) when the file is missing.
    /// - Throws: `.io` when it can be neither read nor made.
    public static func token(at path: String) throws(QlustarError) -> String {
        if let bytes = try? FileSystem.readFile(path, limit: 4_096) {
            let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard text.count >= 16 else {
                throw QlustarError(.configuration, "web token \(path) is shorter than 16 characters")
            }
            return text
        }
        var random = [UInt8](repeating: 0, count: 32)
        for i in random.indices { random[i] = UInt8.random(in: 0...255) }
        let token = random.map { String(printf: "%02x", $0) }.joined()
        try FileSystem.makeDirectories((path as NSString).deletingLastPathComponent)
        try FileSystem.writeAtomically(path, Array((token + "\n").utf8), mode: 0o600)
        return token
    }
}

/// What the page reads: `BootMonitor` and the agents, without the page knowing either.
public struct WebView: Sendable {
    public var status: @Sendable (Double) -> BootStatus
    public var sessions: @Sendable () -> [SessionSummary]
    public var boots: @Sendable (String) -> [BootRecord]

    public init(
        status: @escaping @Sendable (Double) -> BootStatus, sessions: @escaping @Sendable () -> [SessionSummary],
        boots: @escaping @Sendable (String) -> [BootRecord]
    ) {
        self.status = status
        self.sessions = sessions
        self.boots = boots
    }
}

/// The logins: random session ids with their expiry. `Sendable`: behind a lock.
final class WebSessions: Sendable {
    private let ids = NIOLockedValueBox<[String: Double]>([:])

    func create() -> String {
        var random = [UInt8](repeating: 0, count: 24)
        for i in random.indices { random[i] = UInt8.random(in: 0...255) }
        let id = random.map { String(printf: "%02x", $0) }.joined()
        let now = Date().timeIntervalSince1970
        ids.withLockedValue { s in
            s = s.filter { $0.value > now }
            if s.count >= WebServer.maxSessions, let oldest = s.min(by: { $0.value < $1.value }) {
                s[oldest.key] = nil
            }
            s[id] = now + WebServer.sessionSeconds
        }
        return id
    }

    func valid(_ id: String?) -> Bool {
        guard let id else { return false }
        let now = Date().timeIntervalSince1970
        return ids.withLockedValue { ($0[id] ?? 0) > now }
    }

    func remove(_ id: String?) {
        guard let id else { return }
        ids.withLockedValue { $0[id] = nil }
    }
}
