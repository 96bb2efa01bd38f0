import FoundationEssentials
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Platform

#if canImport(Glibc)
    import Glibc
#endif

/// The control channel's server side: framed JSON requests over TCP, answered by a handler.
///
/// Every frame is validated before it is buffered (size limit, magic, version); a framing error
/// is answered with an error frame naming it and the connection closed; a malformed or unknown
/// request gets an error reply and the connection stays usable. Idle connections are closed
/// after the idle timeout; connections beyond the limit are refused with `busy`. Nothing a peer
/// sends can crash the server: it is counted.
public final class ControlServer: Sendable {
    /// Answers one request with JSON, or fails it. Runs on a network thread: keep it short.
    public typealias Handler = @Sendable (ControlRequest) throws(ControlFailure) -> [UInt8]
    /// Answers one request from `peer` (its address, for logs and policy) with a reply that may
    /// carry file data. Runs on a network thread: keep it short.
    public typealias ReplyHandler = @Sendable (ControlRequest, ControlPeer) throws(ControlFailure) -> ControlReply
    /// Answers later: the future completes (on any loop) with the reply or a `ControlFailure`.
    /// For requests that wait for an event (a long poll) without holding a network thread.
    public typealias AsyncReplyHandler =
        @Sendable (ControlRequest, ControlPeer, EventLoop) -> EventLoopFuture<ControlReply>

    public struct Options: Sendable {
        public var maxBody = ControlFrame.defaultMaxBody
        public var idleTimeout = TimeAmount.seconds(30)
        public var maxConnections = 1_024
        /// Connections one source address may hold at once: one host must not lock others out
        /// by opening `maxConnections` itself.
        public var maxConnectionsPerHost = 32
        /// A request frame begun must be complete within this (slowloris).
        public var frameDeadline = TimeAmount.seconds(10)
        /// Requests of one connection being answered at once; while this many are open, or its
        /// answers are not being read (the socket is not writable), nothing more is read from it.
        public var maxInFlight = 16
        /// TLS with the cluster CA's certificate (nil: plain TCP).
        public var tls: ControlTLS?
        public init() {}
    }

    /// What the server has seen; read with `counters`.
    public struct Counters: Sendable, Codable, Equatable {
        public var connections: UInt64 = 0
        public var refusedConnections: UInt64 = 0
        /// Of those, refused because their source already held `maxConnectionsPerHost`.
        public var refusedPerHost: UInt64 = 0
        /// Frames begun and not finished within `frameDeadline`.
        public var incompleteFrames: UInt64 = 0
        /// Requests answered `busy` because earlier answers on their connection were unread.
        public var unreadAnswers: UInt64 = 0
        public var activeConnections: Int = 0
        public var requests: UInt64 = 0
        public var failedRequests: UInt64 = 0
        public var framingErrors: UInt64 = 0
        public var idleTimeouts: UInt64 = 0
        /// Connections that failed below the framing (TLS handshake, resets).
        public var tlsErrors: UInt64 = 0
    }

    public let port: Int
    private let channel: Channel
    private let state: NIOLockedValueBox<Counters>

    public var counters: Counters { state.withLockedValue { $0 } }

    private init(channel: Channel, state: NIOLockedValueBox<Counters>) {
        self.channel = channel
        self.state = state
        port = channel.localAddress?.port ?? 0
    }

    /// Listens on `host:port` (port 0 picks a free one, see `port`).
    /// - Throws: `ControlFailure(.connection)` when the address cannot be bound.
    public static func start(
        host: String, port: Int, options: Options = Options(), handler: @escaping Handler
    ) throws(ControlFailure) -> ControlServer {
        try start(
            host: host, port: port, options: options,
            replyHandler: { request, _ throws(ControlFailure) in
                .json(try handler(request))
            })
    }

    /// Listens on `host:port` with a handler that sees the peer and may answer with file data.
    /// - Throws: `ControlFailure(.connection)` when the address cannot be bound.
    public static func start(
        host: String, port: Int, options: Options = Options(), replyHandler handler: @escaping ReplyHandler
    ) throws(ControlFailure) -> ControlServer {
        try start(host: host, port: port, options: options, asyncHandler: synchronous(handler))
    }

    /// Listens on `host:port` with a handler that may answer later.
    /// - Throws: `ControlFailure(.connection)` when the address cannot be bound.
    public static func start(
        host: String, port: Int, options: Options = Options(), asyncHandler handler: @escaping AsyncReplyHandler
    ) throws(ControlFailure) -> ControlServer {
        try bind("\(host):\(port)", options: options, handler: handler) { try $0.bind(host: host, port: port).wait() }
    }

    /// Listens on the Unix socket `path` (replacing a stale one), which gets mode 0600: only its
    /// owner (root on a head node) can connect — the credential of the administrator's tools.
    /// - Throws: `ControlFailure(.connection)` when the socket cannot be bound.
    public static func start(
        unixSocket path: String, options: Options = Options(), asyncHandler handler: @escaping AsyncReplyHandler
    ) throws(ControlFailure) -> ControlServer {
        let server = try bind(path, options: options, handler: handler) {
            try $0.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).wait()
        }
        guard (try? Posix.chmod(path, 0o600)) != nil else {
            server.stop()
            throw ControlFailure(.connection, "cannot restrict \(path) to its owner")
        }
        return server
    }

    private static func synchronous(_ handler: @escaping ReplyHandler) -> AsyncReplyHandler {
        { request, peer, loop in
            do throws(ControlFailure) { return loop.makeSucceededFuture(try handler(request, peer)) } catch {
                return loop.makeFailedFuture(error)
            }
        }
    }

    private static func bind(
        _ what: String, options: Options, handler: @escaping AsyncReplyHandler,
        _ bind: (ServerBootstrap) throws -> Channel
    ) throws(ControlFailure) -> ControlServer {
        let state = NIOLockedValueBox(Counters())
        let hosts = NIOLockedValueBox([String: Int]())
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // Answers queue up to 1 MiB per connection before it counts as not reading them.
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 256 << 10, high: 1 << 20))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls = options.tls { try channel.pipeline.syncOperations.addHandler(try tls.handler()) }
                    try channel.pipeline.syncOperations.addHandlers([
                        IdleStateHandler(readTimeout: options.idleTimeout),
                        ByteToMessageHandler(
                            ControlFrameDecoder(maxBody: options.maxBody, frameDeadline: options.frameDeadline)),
                        ControlServerHandler(handler: handler, state: state, hosts: hosts, options: options),
                    ])
                }
            }
        do {
            return ControlServer(channel: try bind(bootstrap), state: state)
        } catch {
            throw ControlFailure(.connection, "cannot listen on \(what): \(error)")
        }
    }

    /// Stops listening; open connections are closed.
    public func stop() {
        try? channel.close().wait()
    }
}

/// Who sent a request.
public struct ControlPeer: Sendable {
    /// The remote address as "IP:PORT" (empty when unknown).
    public var address: String
    /// The remote IP alone.
    public var host: String
}

/// What a request is answered with: JSON, or JSON followed by bytes of an open file, sent with
/// `sendfile` (no copy through user space). The descriptor is handed over: the server closes
/// it once written (so the answer never depends on who else holds the file open).
public enum ControlReply: Sendable {
    case json([UInt8])
    case file(json: [UInt8], descriptor: Int32, offset: Int, count: Int)
    /// JSON followed by bytes from memory (a data frame, like `.file`).
    case bytes(json: [UInt8], payload: [UInt8])

    /// A `.file` answer for a range of the open file `fd`, on a descriptor of its own.
    /// - Throws: `.internalError` when no descriptor is left.
    public static func file(json: [UInt8], duplicating fd: Int32, offset: Int, count: Int) throws(ControlFailure)
        -> ControlReply
    {
        do { return .file(json: json, descriptor: try SystemCalls.dup(fd), offset: offset, count: count) } catch {
            throw ControlFailure(.internalError, "cannot serve the file: \(error.message)")
        }
    }
}

/// Per-connection request handling (event-loop confined). Writes frames itself (as bytes, or
/// header bytes plus a file region), so no encoder sits in the pipeline.
final class ControlServerHandler: ChannelInboundHandler {
    typealias InboundIn = ControlFrame
    typealias OutboundOut = IOData

    private let handler: ControlServer.AsyncReplyHandler
    private let state: NIOLockedValueBox<ControlServer.Counters>
    /// Connections per source address (shared by every connection of the server).
    private let hosts: NIOLockedValueBox<[String: Int]>
    private let options: ControlServer.Options
    /// Under TLS file data cannot bypass user space: it is read into a buffer and encrypted.
    private var tls: Bool { options.tls != nil }
    private var counted = false
    private var host = ""
    /// Requests read and not yet answered.
    private var inFlight = 0
    private var reading = true

    init(
        handler: @escaping ControlServer.AsyncReplyHandler, state: NIOLockedValueBox<ControlServer.Counters>,
        hosts: NIOLockedValueBox<[String: Int]>, options: ControlServer.Options
    ) {
        self.handler = handler
        self.state = state
        self.hosts = hosts
        self.options = options
    }

    func channelActive(context: ChannelHandlerContext) {
        host = context.channel.remoteAddress?.ipAddress ?? ""
        let (limit, perHost) = (options.maxConnections, options.maxConnectionsPerHost)
        // Both tables under one order (hosts, then counters), so two connections cannot both pass.
        let refusal = hosts.withLockedValue { h -> String? in
            state.withLockedValue { c -> String? in
                guard c.activeConnections < limit else {
                    c.refusedConnections += 1
                    return "too many control connections (\(limit)); retry later"
                }
                // Unix-socket peers (the administrator's tools) have no address and no per-host bound.
                guard host.isEmpty || h[host, default: 0] < perHost else {
                    c.refusedConnections += 1
                    c.refusedPerHost += 1
                    return "too many control connections from \(host) (\(perHost)); close some, or retry later"
                }
                h[host, default: 0] += 1
                c.connections += 1
                c.activeConnections += 1
                return nil
            }
        }
        if let refusal {
            reply(context, error: ControlFailure(.busy, refusal), id: 0, close: true)
            return
        }
        counted = true
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if counted {
            hosts.withLockedValue { h in
                h[host, default: 1] -= 1
                if h[host] == 0 { h[host] = nil }
            }
            state.withLockedValue { $0.activeConnections -= 1 }
        }
        counted = false
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        updateReading(context)
        context.fireChannelWritabilityChanged()
    }

    /// Back-pressure: read further requests only while few are open and answers are being read.
    private func updateReading(_ context: ChannelHandlerContext) {
        let read = inFlight < options.maxInFlight && context.channel.isWritable
        guard read != reading else { return }
        reading = read
        context.channel.setOption(.autoRead, value: read).whenFailure { _ in }
        if read { context.read() }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        state.withLockedValue { $0.requests += 1 }
        guard context.channel.isWritable else {
            // Frames already read when the peer stopped reading: a short refusal, not the answer.
            state.withLockedValue { $0.unreadAnswers += 1 }
            return fail(
                context, ControlFailure(.busy, "earlier answers on this connection are still unread; read them first"),
                id: frame.requestID)
        }
        guard frame.kind == .request else {
            return fail(context, ControlFailure(.malformedRequest, "expected a request frame"), id: frame.requestID)
        }
        let request: ControlRequest
        do throws(ControlFailure) { request = try ControlRequest.decode(frame.body) } catch {
            return fail(context, error, id: frame.requestID)
        }
        let remote = context.channel.remoteAddress
        let peer = ControlPeer(
            address: remote.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "", host: remote?.ipAddress ?? "")
        let id = frame.requestID
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        inFlight += 1
        if inFlight >= options.maxInFlight { updateReading(context) }
        handler(request, peer, context.eventLoop).hop(to: context.eventLoop).whenComplete { result in
            let (me, context) = bound.value
            me.inFlight -= 1
            defer { me.updateReading(context) }
            do throws(ControlFailure) {
                switch result {
                case .success(.json(let body)):
                    me.write(context, ControlFrame(kind: .response, requestID: id, body: body))
                case .success(.file(let json, let descriptor, let offset, let count)):
                    try me.writeFile(context, id: id, json: json, descriptor: descriptor, offset: offset, count: count)
                case .success(.bytes(let json, let payload)):
                    guard context.channel.isWritable else {
                        throw ControlFailure(
                            .busy, "earlier answers on this connection are still unread; read them first")
                    }
                    var buffer = context.channel.allocator.buffer(
                        capacity: ControlFrame.headerSize + 4 + json.count + payload.count)
                    me.writeDataHeader(&buffer, id: id, json: json, count: payload.count)
                    buffer.writeBytes(payload)
                    context.writeAndFlush(me.wrapOutboundOut(.byteBuffer(buffer)), promise: nil)
                case .failure(let failure as ControlFailure):
                    throw failure
                case .failure(let error):
                    throw ControlFailure(.internalError, "\(error)")
                }
            } catch {
                me.fail(context, error, id: id)
            }
        }
    }

    @discardableResult
    private func write(_ context: ChannelHandlerContext, _ frame: ControlFrame) -> EventLoopFuture<Void> {
        var buffer = context.channel.allocator.buffer(capacity: ControlFrame.headerSize + frame.body.count)
        frame.write(to: &buffer)
        return context.writeAndFlush(wrapOutboundOut(.byteBuffer(buffer)))
    }

    /// A data frame: header and JSON from memory, then the file range — by `sendfile` on plain
    /// TCP; under TLS read into the buffer (it must be encrypted in user space).
    ///
    /// Refused with `busy` while earlier answers still wait in the outgoing queue: a client that
    /// asks without reading must not make the server buffer image data without bound.
    private func writeFile(
        _ context: ChannelHandlerContext, id: UInt32, json: [UInt8], descriptor: Int32, offset: Int, count: Int
    ) throws(ControlFailure) {
        let handle = NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: descriptor)
        guard context.channel.isWritable else {
            try? handle.close()
            throw ControlFailure(.busy, "earlier answers on this connection are still unread; read them first")
        }
        if tls {
            var buffer = context.channel.allocator.buffer(capacity: ControlFrame.headerSize + 4 + json.count + count)
            writeDataHeader(&buffer, id: id, json: json, count: count)
            let read = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { out in
                (try? SystemCalls.pread(descriptor, out.baseAddress!, count, offset: offset)) ?? 0
            }
            try? handle.close()
            guard read == count else {
                throw ControlFailure(.internalError, "cannot read \(count) bytes at \(offset) of the file")
            }
            context.writeAndFlush(wrapOutboundOut(.byteBuffer(buffer)), promise: nil)
            return
        }
        var buffer = context.channel.allocator.buffer(capacity: ControlFrame.headerSize + 4 + json.count)
        writeDataHeader(&buffer, id: id, json: json, count: count)
        context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: nil)
        let region = FileRegion(fileHandle: handle, readerIndex: offset, endIndex: offset + count)
        context.writeAndFlush(wrapOutboundOut(.fileRegion(region))).whenComplete { _ in try? handle.close() }
    }

    private func fail(_ context: ChannelHandlerContext, _ failure: ControlFailure, id: UInt32) {
        state.withLockedValue { $0.failedRequests += 1 }
        reply(context, error: failure, id: id, close: false)
    }

    private func reply(_ context: ChannelHandlerContext, error: ControlFailure, id: UInt32, close: Bool) {
        let body = (try? JSONEncoder.control.encode(error)).map(Array.init) ?? []
        let done = write(context, ControlFrame(kind: .error, requestID: id, body: body))
        if close {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    private func writeDataHeader(_ buffer: inout ByteBuffer, id: UInt32, json: [UInt8], count: Int) {
        buffer.writeInteger(ControlFrame.magic)
        buffer.writeInteger(ControlFrame.version)
        buffer.writeInteger(ControlFrame.Kind.data.rawValue)
        buffer.writeInteger(UInt16(0))
        buffer.writeInteger(id)
        buffer.writeInteger(UInt32(4 + json.count + count))
        buffer.writeInteger(UInt32(json.count))
        buffer.writeBytes(json)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let framing = error as? ControlFramingError {
            state.withLockedValue {
                $0.framingErrors += 1
                if case .incomplete = framing { $0.incompleteFrames += 1 }
            }
            reply(context, error: ControlFailure(.framing, framing.description), id: 0, close: true)
        } else {
            // TLS failures (wrong CA, plain text on a TLS port) and resets: count, close.
            state.withLockedValue { $0.tlsErrors += 1 }
            context.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            state.withLockedValue { $0.idleTimeouts += 1 }
            reply(context, error: ControlFailure(.timedOut, "connection idle too long; closed"), id: 0, close: true)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}

extension JSONEncoder {
    static var control: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }
}
