import FoundationEssentials
import NIOCore
import NIOPosix
import NIOSSL

#if canImport(Glibc)
    import Glibc
#endif

/// The control channel's client side: connect, then blocking request/response calls with a
/// timeout each. Safe to use from one thread at a time (the tools call it sequentially).
public final class ControlClient {
    private let channel: Channel
    private let handler: LoopConfined<ControlClientHandler>
    private var nextID: UInt32 = 1
    public let maxBody: Int

    /// Connects to `host:port` within `timeout` seconds.
    /// - Parameters:
    ///   - maxData: The largest data-frame payload accepted (see `fetch`); 0 refuses them.
    ///   - tls: TLS with the cluster CA (nil: plain TCP).
    /// - Throws: `ControlFailure(.connection)` naming the address and the reason.
    ///   - source: The local address to connect from (a multi-homed node's boot NIC); nil: routing picks.
    public convenience init(
        host: String, port: Int, timeout: Double = 5, maxBody: Int = ControlFrame.defaultMaxBody, maxData: Int = 0,
        tls: ControlTLS? = nil, source: String? = nil
    ) throws(ControlFailure) {
        var local: SocketAddress?
        if let source {
            do { local = try SocketAddress(ipAddress: source, port: 0) } catch {
                throw ControlFailure(.connection, "\(source) is not an address to connect from")
            }
        }
        try self.init(
            what: "the control port \(host):\(port)", timeout: timeout, maxBody: maxBody, maxData: maxData, tls: tls
        ) {
            bootstrap in (local.map { bootstrap.bind(to: $0) } ?? bootstrap).connect(host: host, port: port)
        }
    }

    /// Connects to the Unix socket `path` (a daemon's local administration socket).
    /// - Throws: `ControlFailure(.connection)` naming the socket and the reason.
    public convenience init(unixSocket path: String, timeout: Double = 5, maxBody: Int = ControlFrame.defaultMaxBody)
        throws(ControlFailure)
    {
        try self.init(what: "the socket \(path)", timeout: timeout, maxBody: maxBody, maxData: 0, tls: nil) {
            $0.connect(unixDomainSocketPath: path)
        }
    }

    private init(
        what: String, timeout: Double, maxBody: Int, maxData: Int, tls: ControlTLS?,
        connect: (ClientBootstrap) -> EventLoopFuture<Channel>
    ) throws(ControlFailure) {
        self.maxBody = maxBody
        let group = MultiThreadedEventLoopGroup.singleton
        let loop = group.next()
        let clientHandler = LoopConfined(ControlClientHandler())
        handler = clientHandler
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.milliseconds(Int64(timeout * 1_000)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(try tls.handler()) }
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(ControlFrameDecoder(maxBody: maxBody, maxData: maxData)),
                        MessageToByteHandler(ControlFrameEncoder()),
                        clientHandler.value,
                    ])
                }
            }
        do {
            channel = try connect(bootstrap).wait()
        } catch {
            throw ControlFailure(.connection, "cannot reach \(what): \(Self.reason(error))")
        }
    }

    deinit { channel.close(promise: nil) }

    /// A connect failure in an administrator's words ("Connection refused", "timed out").
    static func reason(_ error: Error) -> String {
        if let e = error as? NIOConnectionError,
            let first = e.connectionErrors.first?.error ?? e.dnsAAAAError ?? e.dnsAError
        {
            return reason(first)
        }
        if let io = error as? IOError { return String(cString: strerror(io.errnoCode)) }
        if case ChannelError.connectTimeout = error { return "timed out" }
        return "\(error)"
    }

    /// Sends `request` and waits for its answer.
    /// - Returns: The response's JSON bytes.
    /// - Throws: The server's `ControlFailure`, `.timedOut`, or `.connection` if the link breaks.
    public func call(_ request: ControlRequest, timeout: Double = 10) throws(ControlFailure) -> [UInt8] {
        let reply = try exchange(request, timeout: timeout)
        guard reply.kind == .response else {
            throw ControlFailure(.internalError, "'\(request.op)' was answered with a \(reply.kind) frame")
        }
        return reply.body
    }

    /// Sends `request` and waits for a data answer (JSON, then bulk bytes).
    /// - Returns: The JSON and the payload.
    /// - Throws: The server's `ControlFailure`, `.timedOut`, `.connection`, or `.internalError`
    ///   when the answer is not a well-formed data frame.
    public func fetch(_ request: ControlRequest, timeout: Double = 30) throws(ControlFailure)
        -> (json: ArraySlice<UInt8>, payload: ArraySlice<UInt8>)
    {
        let reply = try exchange(request, timeout: timeout)
        guard reply.kind == .data, reply.body.count >= 4 else {
            throw ControlFailure(.internalError, "'\(request.op)' was not answered with data")
        }
        let jsonLength = reply.body.prefix(4).reduce(0) { $0 << 8 | Int($1) }
        guard 4 + jsonLength <= reply.body.count else {
            throw ControlFailure(.internalError, "data answer to '\(request.op)' is malformed")
        }
        return (reply.body[4..<(4 + jsonLength)], reply.body[(4 + jsonLength)...])
    }

    private func exchange(_ request: ControlRequest, timeout: Double) throws(ControlFailure) -> ControlFrame {
        let id = nextID
        nextID &+= 1
        let frame = ControlFrame(kind: .request, requestID: id, body: request.encoded())
        guard frame.body.count <= maxBody else {
            throw ControlFailure(.malformedRequest, "request of \(frame.body.count) bytes exceeds \(maxBody)")
        }
        let loop = channel.eventLoop
        let promise = loop.makePromise(of: ControlFrame.self)
        let handler = self.handler
        let channel = self.channel
        loop.execute {
            if let failure = handler.value.terminal { return promise.fail(failure) }
            handler.value.pending[id] = promise
            channel.writeAndFlush(frame).whenFailure { error in
                // The server may have closed with a reason (busy, framing, idle) that is still
                // being read: report that reason once the channel is down.
                channel.closeFuture.whenComplete { _ in
                    promise.fail(handler.value.terminal ?? ControlFailure(.connection, "\(error)"))
                }
            }
        }
        let timer = loop.scheduleTask(in: .milliseconds(Int64(timeout * 1_000))) {
            promise.fail(ControlFailure(.timedOut, "no answer to '\(request.op)' within \(timeout) s"))
        }
        defer {
            timer.cancel()
            loop.execute { handler.value.pending[id] = nil }
        }
        let reply: ControlFrame
        do {
            reply = try promise.futureResult.wait()
        } catch let failure as ControlFailure {
            throw failure
        } catch {
            throw ControlFailure(.connection, "control connection failed during '\(request.op)': \(error)")
        }
        if reply.kind == .error {
            throw (try? JSONDecoder().decode(ControlFailure.self, from: Data(reply.body)))
                ?? ControlFailure(.internalError, "unreadable error reply")
        }
        return reply
    }

    /// Calls `op` with `Encodable` arguments and decodes the answer.
    public func call<A: Encodable, R: Decodable>(_ op: String, _ args: A, as: R.Type, timeout: Double = 10)
        throws(ControlFailure) -> R
    {
        let request: ControlRequest
        do { request = try ControlRequest(op: op, arguments: args) } catch {
            throw ControlFailure(.malformedRequest, "cannot encode arguments of '\(op)': \(error)")
        }
        let body = try call(request, timeout: timeout)
        do { return try JSONDecoder().decode(R.self, from: Data(body)) } catch {
            throw ControlFailure(.internalError, "answer to '\(op)' does not decode: \(error)")
        }
    }

    public func close() { try? channel.close().wait() }

    /// Whether the connection is still up (NIO keeps `isActive` in an atomic: any thread may ask).
    public var isOpen: Bool { channel.isActive }
}

/// Matches responses to waiting calls by request id (event-loop confined).
final class ControlClientHandler: ChannelInboundHandler {
    typealias InboundIn = ControlFrame
    var pending: [UInt32: EventLoopPromise<ControlFrame>] = [:]
    /// Why the connection ended, once it has.
    var terminal: ControlFailure?

    private func failAll(_ failure: ControlFailure) {
        if terminal == nil { terminal = failure }
        pending.values.forEach { $0.fail(terminal!) }
        pending.removeAll()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if let p = pending.removeValue(forKey: frame.requestID) {
            p.succeed(frame)
        } else if frame.kind == .error, frame.requestID == 0 {
            // A connection-level error (framing, busy, idle): fail everything waiting.
            failAll(
                (try? JSONDecoder().decode(ControlFailure.self, from: Data(frame.body)))
                    ?? ControlFailure(.connection, "connection refused by the server"))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(ControlFailure(.connection, "control connection closed by the server"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if error is NIOSSLError || error is NIOSSLExtraError {
            failAll(
                ControlFailure(
                    .tls,
                    "TLS with the server failed: \(error) (is it the cluster CA, and the server's certificate for this address?)"
                ))
        } else {
            failAll(ControlFailure(.connection, "control connection error: \(ControlClient.reason(error))"))
        }
        context.close(promise: nil)
    }
}

/// Carries a value to closures that run on one event loop. `@unchecked Sendable`: after
/// construction the value is touched only on the channel's event loop (pipeline callbacks and
/// `loop.execute` blocks), never concurrently.
final class LoopConfined<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
