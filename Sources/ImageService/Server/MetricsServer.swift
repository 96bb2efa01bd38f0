import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Platform

/// A minimal HTTP endpoint for Prometheus: `GET /metrics` answers the text exposition format,
/// anything else 404 (405 for other methods). Off unless `metrics = ADDR:PORT` is configured.
///
/// Whoever reaches the port is a stranger: at most `maxConnections` at once (more are closed at
/// once), and a connection that sends nothing for `idleTimeout`, or is open longer than
/// `lifetime`, is closed — a scraper needs one request a few times a minute.
public final class MetricsServer: Sendable {
    public typealias Render = @Sendable () -> String
    private let channel: Channel
    public var port: Int { channel.localAddress?.port ?? 0 }

    public static let maxConnections = 64
    public static let idleTimeout = TimeAmount.seconds(10)
    public static let lifetime = TimeAmount.seconds(60)

    private init(channel: Channel) { self.channel = channel }

    /// Listens on `host:port` (0 picks a port).
    /// - Throws: `.io` when the address cannot be bound.
    public static func start(host: String, port: Int, render: @escaping Render) throws(QlustarError) -> MetricsServer {
        let open = NIOLockedValueBox(0)
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                guard admit(channel, open: open, most: maxConnections, lifetime: lifetime) else {
                    return channel.close()
                }
                return channel.pipeline.addHandler(IdleStateHandler(readTimeout: idleTimeout)).flatMap {
                    channel.pipeline.configureHTTPServerPipeline()
                }.flatMap {
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(MetricsHandler(render: render))
                    }
                }
            }
        do {
            return MetricsServer(channel: try bootstrap.bind(host: host, port: port).wait())
        } catch {
            throw QlustarError(.io, "cannot serve metrics on \(host):\(port): \(error)")
        }
    }

    public func stop() { try? channel.close().wait() }

    /// Counts `channel` among the `open` connections of a server that takes `most` at once and
    /// closes each after `lifetime`. Returns false (the caller closes it) when the server is full.
    public static func admit(_ channel: Channel, open: NIOLockedValueBox<Int>, most: Int, lifetime: TimeAmount) -> Bool
    {
        let admitted = open.withLockedValue { n -> Bool in
            guard n < most else { return false }
            n += 1
            return true
        }
        guard admitted else { return false }
        channel.closeFuture.whenComplete { _ in open.withLockedValue { $0 -= 1 } }
        channel.eventLoop.scheduleTask(in: lifetime) { channel.close(promise: nil) }
        return true
    }
}

/// Answers one request per head (event-loop confined).
final class MetricsHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let render: MetricsServer.Render
    private var head: HTTPRequestHead?

    init(render: @escaping MetricsServer.Render) { self.render = render }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body: break
        case .end:
            guard let h = head else { return }
            head = nil
            let (status, body): (HTTPResponseStatus, String) =
                h.method != .GET
                ? (.methodNotAllowed, "only GET\n")
                : h.uri.split(separator: "?").first == "/metrics" ? (.ok, render()) : (.notFound, "try /metrics\n")
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: status == .ok ? "text/plain; version=0.0.4" : "text/plain")
            headers.add(name: "Content-Length", value: "\(body.utf8.count)")
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: status, headers: headers))),
                promise: nil)
            context.write(
                wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
            let keepAlive = h.isKeepAlive
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                if !keepAlive { context.close(promise: nil) }
            }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { return context.close(promise: nil) }
        context.fireUserInboundEventTriggered(event)
    }
}
