import NIOCore

/// One frame of the control channel (TCP), big-endian:
///
/// ```
/// u32 magic "QLCC"   u8 version (1)   u8 kind   u16 flags (0)
/// u32 request id     u32 body length  body (UTF-8 JSON, ≤ the receiver's maximum frame size)
/// ```
/// Requests carry `{"op": …, "args": {…}}`, responses the operation's JSON result, errors
/// `{"code": …, "message": …}`; a response or error echoes its request's id. A data response
/// (kind 4) carries bulk bytes after its JSON: `u32 JSON length, JSON, payload`; the server
/// writes the payload straight from a file (`sendfile`), and a client accepts data frames up
/// to its separate data limit.
public struct ControlFrame: Sendable, Equatable {
    public static let magic: UInt32 = 0x514C_4343  // "QLCC"
    public static let version: UInt8 = 1
    public static let headerSize = 16
    /// Default upper bound for a frame's body.
    public static let defaultMaxBody = 1 << 20

    public enum Kind: UInt8, Sendable {
        case request = 1
        case response = 2
        case error = 3
        case data = 4
    }

    public var kind: Kind
    public var requestID: UInt32
    public var body: [UInt8]

    public init(kind: Kind, requestID: UInt32, body: [UInt8]) {
        self.kind = kind
        self.requestID = requestID
        self.body = body
    }

    func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(ControlFrame.magic)
        buffer.writeInteger(ControlFrame.version)
        buffer.writeInteger(kind.rawValue)
        buffer.writeInteger(UInt16(0))
        buffer.writeInteger(requestID)
        buffer.writeInteger(UInt32(body.count))
        buffer.writeBytes(body)
    }
}

/// Why a byte stream is not a control-channel frame. The connection is answered with an error
/// frame and closed: after a framing error the stream cannot be trusted to resynchronise.
public enum ControlFramingError: Error, Sendable, Equatable, CustomStringConvertible {
    case badMagic
    case unsupportedVersion(UInt8)
    case badKind(UInt8)
    case badFlags
    case tooLarge(Int, limit: Int)
    /// A frame begun and not finished within the deadline (a peer holding the connection by
    /// trickling bytes).
    case incomplete(seconds: Int64)

    public var code: String {
        switch self {
        case .badMagic: "bad-magic"
        case .unsupportedVersion: "unsupported-version"
        case .badKind: "bad-kind"
        case .badFlags: "bad-flags"
        case .tooLarge: "frame-too-large"
        case .incomplete: "frame-incomplete"
        }
    }

    public var description: String {
        switch self {
        case .badMagic: "not a ql-mcast control frame (bad magic)"
        case .unsupportedVersion(let v): "control protocol version \(v) is not supported (this side speaks 1)"
        case .badKind(let k): "unknown frame kind \(k)"
        case .badFlags: "reserved frame flags are set"
        case .tooLarge(let n, let limit): "frame body of \(n) bytes exceeds the limit of \(limit)"
        case .incomplete(let s): "a frame was begun and not finished within \(s) s; closed"
        }
    }
}

/// Splits the TCP stream into frames, validating the header before buffering any body.
///
/// With a `frameDeadline`, a frame whose first byte has arrived must be complete within it, else
/// the connection fails with `ControlFramingError.incomplete`: an idle timeout alone is reset by
/// every byte, so one byte every few seconds would hold a connection (and a slot) for ever.
struct ControlFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ControlFrame
    let maxBody: Int
    /// Largest payload of a data frame (beyond `maxBody` for its JSON); 0 refuses data frames.
    var maxData = 0
    var frameDeadline: TimeAmount?
    private var deadline: Scheduled<Void>?

    init(maxBody: Int, maxData: Int = 0, frameDeadline: TimeAmount? = nil) {
        self.maxBody = maxBody
        self.maxData = maxData
        self.frameDeadline = frameDeadline
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let state = try decodeFrame(context: context, buffer: &buffer)
        switch state {
        case .continue:
            deadline?.cancel()
            deadline = nil
        case .needMoreData:
            if buffer.readableBytes == 0 {
                deadline?.cancel()
                deadline = nil
            } else if deadline == nil, let limit = frameDeadline {
                let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
                deadline = context.eventLoop.scheduleTask(in: limit) {
                    bound.value.fireErrorCaught(
                        ControlFramingError.incomplete(seconds: limit.nanoseconds / 1_000_000_000))
                }
            }
        }
        return state
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws
        -> DecodingState
    {
        deadline?.cancel()
        deadline = nil
        return try decodeFrame(context: context, buffer: &buffer)
    }

    private func decodeFrame(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard buffer.readableBytes >= ControlFrame.headerSize else { return .needMoreData }
        let start = buffer.readerIndex
        // Fields are read in place; the header is checked before we wait for a body.
        guard buffer.getInteger(at: start, as: UInt32.self) == ControlFrame.magic else {
            throw ControlFramingError.badMagic
        }
        let version = buffer.getInteger(at: start + 4, as: UInt8.self)!
        guard version == ControlFrame.version else { throw ControlFramingError.unsupportedVersion(version) }
        let rawKind = buffer.getInteger(at: start + 5, as: UInt8.self)!
        guard let kind = ControlFrame.Kind(rawValue: rawKind) else { throw ControlFramingError.badKind(rawKind) }
        guard buffer.getInteger(at: start + 6, as: UInt16.self) == 0 else { throw ControlFramingError.badFlags }
        let id = buffer.getInteger(at: start + 8, as: UInt32.self)!
        let length = Int(buffer.getInteger(at: start + 12, as: UInt32.self)!)
        let limit = kind == .data ? maxBody + maxData : maxBody
        guard kind != .data || maxData > 0 else { throw ControlFramingError.badKind(rawKind) }
        guard length <= limit else { throw ControlFramingError.tooLarge(length, limit: limit) }
        guard buffer.readableBytes >= ControlFrame.headerSize + length else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: ControlFrame.headerSize)
        let body = buffer.readBytes(length: length)!
        context.fireChannelRead(wrapInboundOut(ControlFrame(kind: kind, requestID: id, body: body)))
        return .continue
    }
}

struct ControlFrameEncoder: MessageToByteEncoder {
    typealias OutboundIn = ControlFrame
    func encode(data: ControlFrame, out: inout ByteBuffer) throws { data.write(to: &out) }
}
