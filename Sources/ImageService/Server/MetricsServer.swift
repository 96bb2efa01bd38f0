import NIOCore
import NIOHTTP1
import NIOPosix

/// A minimal HTTP endpoint for Prometheus: `GET /metrics` answers the text exposition format,
/// anything else 404 (405 for other methods). Off unless `metrics = ADDR:PORT` is configured.
public final class MetricsServer: Sendable {
    public typealias Render = @Sendable () -> String
    private let channel: Channel
    public var port: Int { channel.localAddress?.port ?? 0 }

    private init(channel: Channel) { self.channel = channel }

    /// Listens on `host:port` (0 picks a port).
    /// - Throws: `.io` when the address cannot be bound.
    public static func start(host: String, port: Int, render: @escaping Render) throws(ServiceError) -> MetricsServer {
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(MetricsHandler(render: render)) }
                }
            }
        do {
            return MetricsServer(channel: try bootstrap.bind(host: host, port: port).wait())
        } catch {
            throw ServiceError(.io, "cannot serve metrics on \(host):\(port): \(error)")
        }
    }

    public func stop() { try? channel.close().wait() }
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
                h.method != .GET ? (.methodNotAllowed, "only GET\n")
                : h.uri.split(separator: "?").first == "/metrics" ? (.ok, render()) : (.notFound, "try /metrics\n")
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: status == .ok ? "text/plain; version=0.0.4" : "text/plain")
            headers.add(name: "Content-Length", value: "\(body.utf8.count)")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
            let keepAlive = h.isKeepAlive
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                if !keepAlive { context.close(promise: nil) }
            }
        }
    }
}
