import Foundation
import NIOCore
import NIOHTTP1
import NodeConfig
import Platform

/// A multicast session as the page shows it (from ql-mcastd's status).
public struct SessionSummary: Codable, Sendable, Equatable {
    public var id: String
    public var image: String
    public var state: String
    public var members: Int
    public var rate: String
    /// Megabytes per second on the wire since the session started.
    public var wireMBps: Double
    /// Mean of the receivers' recent loss, in percent.
    public var lossPercent: Double
    public var repairSymbols: UInt64
    public var passes: UInt64
}

/// What `/api/status` answers: every node's boot line, and the sessions.
struct WebStatus: Codable {
    var boot: BootStatus
    var sessions: [SessionSummary]
}

/// One connection of the boot page (event-loop confined): the routes, the login, and for
/// `/api/events` a stream that pushes what changed every `pushInterval`.
final class WebHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let settings: WebServer.Settings
    let view: WebView
    let sessions: WebSessions
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var streaming: RepeatedTask?
    /// Each node's line as last pushed to this page.
    private var pushed: [String: String] = [:]

    static let maxBody = 4_096
    /// The page thinks a node stuck after this long in one stage.
    static let stuckSeconds = 60.0

    init(settings: WebServer.Settings, view: WebView, sessions: WebSessions) {
        self.settings = settings
        self.view = view
        self.sessions = sessions
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body = []
        case .body(var buffer):
            // Refused already (too large): the rest of it is not read.
            guard head != nil else { return }
            guard body.count + buffer.readableBytes <= Self.maxBody else {
                head = nil
                return respond(context, .payloadTooLarge, "request too large\n", keepAlive: false)
            }
            body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            guard let h = head, streaming == nil else { return }
            head = nil
            route(context, h)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        streaming?.cancel()
        streaming = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A TLS handshake from a stranger, a reset: nothing to answer.
        context.close(promise: nil)
    }

    // MARK: - Routes

    private func route(_ context: ChannelHandlerContext, _ h: HTTPRequestHead) {
        let parts = h.uri.split(separator: "?", maxSplits: 1)
        let path = parts.first.map(String.init) ?? "/"
        let query = parts.count > 1 ? Self.form(String(parts[1])) : [:]
        let session = Self.cookie("ql_session", in: h.headers)
        let loggedIn = sessions.valid(session)
        switch (h.method, path) {
        case (.GET, "/app.css"):
            respond(context, .ok, WebAssets.css, type: "text/css; charset=utf-8", keepAlive: h.isKeepAlive)
        case (.GET, "/app.js"):
            respond(context, .ok, WebAssets.js, type: "text/javascript; charset=utf-8", keepAlive: h.isKeepAlive)
        case (.GET, "/"):
            respond(
                context, .ok, loggedIn ? WebAssets.page : WebAssets.login, type: "text/html; charset=utf-8",
                keepAlive: h.isKeepAlive)
        case (.POST, "/login"):
            let given = Self.form(String(decoding: body, as: UTF8.self))["token"] ?? ""
            guard Self.constantTimeEqual(given, settings.token) else {
                return respond(
                    context, .forbidden,
                    WebAssets.login.replacingOccurrences(of: "<!--error-->", with: "<p class=error>wrong token</p>"),
                    type: "text/html; charset=utf-8", keepAlive: false)
            }
            var headers = HTTPHeaders()
            headers.add(
                name: "Set-Cookie",
                value:
                    "ql_session=\(sessions.create()); Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=\(Int(WebServer.sessionSeconds))"
            )
            headers.add(name: "Location", value: "/")
            respond(context, .seeOther, "", headers: headers, keepAlive: false)
        case (.POST, "/logout"):
            sessions.remove(session)
            var headers = HTTPHeaders()
            headers.add(name: "Set-Cookie", value: "ql_session=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0")
            headers.add(name: "Location", value: "/")
            respond(context, .seeOther, "", headers: headers, keepAlive: false)
        case (.GET, "/api/status"):
            guard loggedIn else { return respond(context, .unauthorized, "log in first\n", keepAlive: false) }
            respond(
                context, .ok, json(WebStatus(boot: view.status(Self.stuckSeconds), sessions: view.sessions())),
                type: "application/json", keepAlive: h.isKeepAlive)
        case (.GET, "/api/node"):
            guard loggedIn else { return respond(context, .unauthorized, "log in first\n", keepAlive: false) }
            let name = query["name"] ?? ""
            guard (try? NodeFieldsCheck.hostname(name)) != nil else {
                return respond(context, .badRequest, "no such node\n", keepAlive: h.isKeepAlive)
            }
            respond(context, .ok, json(view.boots(name)), type: "application/json", keepAlive: h.isKeepAlive)
        case (.GET, "/api/events"):
            guard loggedIn else { return respond(context, .unauthorized, "log in first\n", keepAlive: false) }
            startStream(context, h)
        case (_, "/"), (_, "/login"), (_, "/api/status"), (_, "/api/node"), (_, "/api/events"):
            respond(context, .methodNotAllowed, "method not allowed\n", keepAlive: false)
        default:
            respond(context, .notFound, "not found\n", keepAlive: h.isKeepAlive)
        }
    }

    /// Server-sent events: `nodes` (the lines that changed: all at first), `summary` (counts and
    /// sessions), every `pushInterval`.
    private func startStream(_ context: ChannelHandlerContext, _ h: HTTPRequestHead) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/event-stream")
        headers.add(name: "Cache-Control", value: "no-store")
        context.writeAndFlush(
            wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: .ok, headers: headers))), promise: nil)
        let interval = TimeAmount.milliseconds(Int64(settings.pushInterval * 1_000))
        streaming = context.eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: interval) { [weak self] _ in
            self?.push(context)
        }
    }

    private func push(_ context: ChannelHandlerContext) {
        let status = view.status(Self.stuckSeconds)
        var changed: [String] = []
        for line in status.nodes {
            let text = json(line)
            if pushed[line.node] != text {
                pushed[line.node] = text
                changed.append(text)
            }
        }
        var out = ""
        if !changed.isEmpty { out += "event: nodes\ndata: [" + changed.joined(separator: ",") + "]\n\n" }
        let summary = WebSummary(
            at: status.at, waveStartedAt: status.waveStartedAt, counts: status.counts, sessions: view.sessions())
        out += "event: summary\ndata: " + json(summary) + "\n\n"
        context.writeAndFlush(
            wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: out)))), promise: nil)
    }

    // MARK: - Helpers

    private func respond(
        _ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ text: String, type: String = "text/plain",
        headers extra: HTTPHeaders = HTTPHeaders(), keepAlive: Bool
    ) {
        var headers = extra
        headers.add(name: "Content-Type", value: type)
        headers.add(name: "Content-Length", value: "\(text.utf8.count)")
        headers.add(name: "Cache-Control", value: "no-store")
        headers.add(name: "X-Content-Type-Options", value: "nosniff")
        headers.add(name: "Content-Security-Policy", value: "default-src 'self'; frame-ancestors 'none'")
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: text)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }

    private func json<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
    }

    /// `a=1&b=x%20y` → ["a": "1", "b": "x y"] (form and query encoding; `+` is a space).
    static func form(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for pair in text.split(separator: "&").prefix(32) {
            let kv = pair.split(separator: "=", maxSplits: 1)
            let key = String(kv[0]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
            let value =
                kv.count > 1
                ? (String(kv[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "") : ""
            out[key] = value
        }
        return out
    }

    static func cookie(_ name: String, in headers: HTTPHeaders) -> String? {
        for line in headers["Cookie"] {
            for part in line.split(separator: ";") {
                let kv = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
                if kv.count == 2, kv[0] == name { return String(kv[1]) }
            }
        }
        return nil
    }

    /// Compares without stopping at the first difference: the time taken says nothing of the token.
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool { SecretFile.equal(a, b) }
}

/// The `summary` event.
struct WebSummary: Codable {
    var at: Double
    var waveStartedAt: Double?
    var counts: [String: Int]
    var sessions: [SessionSummary]
}

/// Which names may be asked for (`/api/node?name=`): a host name, nothing else.
enum NodeFieldsCheck {
    static func hostname(_ name: String) throws -> String {
        guard (1...64).contains(name.count),
            name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") })
        else { throw QlustarError(.invalidArgument, "not a host name") }
        return name
    }
}
