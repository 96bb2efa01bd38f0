import FoundationEssentials

/// A request on the control channel: an operation name and its JSON arguments.
public struct ControlRequest: Sendable {
    public var op: String
    /// The `args` object, as JSON bytes ("{}" when absent).
    public var args: [UInt8]

    public init(op: String, args: [UInt8] = Array("{}".utf8)) {
        self.op = op
        self.args = args
    }

    /// A request whose arguments are an `Encodable` value.
    public init<A: Encodable>(op: String, arguments: A) throws {
        self.op = op
        args = Array(try JSONEncoder().encode(arguments))
    }

    /// Decodes the arguments into `A`, or fails with `malformed-request` naming the operation.
    public func arguments<A: Decodable>(_: A.Type) throws(ControlFailure) -> A {
        do { return try JSONDecoder().decode(A.self, from: Data(args)) } catch {
            throw ControlFailure(.malformedRequest, "arguments of '\(op)' do not fit: \(error)")
        }
    }

    func encoded() -> [UInt8] {
        let argsText = String(decoding: args, as: UTF8.self)
        let opJSON = String(decoding: (try? JSONEncoder().encode(op)) ?? Data("\"\"".utf8), as: UTF8.self)
        return Array("{\"op\":\(opJSON),\"args\":\(argsText)}".utf8)
    }

    static func decode(_ body: [UInt8]) throws(ControlFailure) -> ControlRequest {
        guard case .object(let members)? = try? JSONDecoder().decode(JSONValue.self, from: Data(body)) else {
            throw ControlFailure(.malformedRequest, "request body is not a JSON object")
        }
        guard case .string(let op)? = members["op"], !op.isEmpty, op.utf8.count <= 64 else {
            throw ControlFailure(.malformedRequest, "request has no 'op' string (1–64 bytes)")
        }
        let args = members["args"] ?? .object([:])
        guard case .object = args, let data = try? JSONEncoder().encode(args) else {
            throw ControlFailure(.malformedRequest, "'args' of '\(op)' must be a JSON object")
        }
        return ControlRequest(op: op, args: Array(data))
    }
}

/// A failed request: a stable code and a message for the administrator. Sent as an error frame.
public struct ControlFailure: Error, Sendable, Equatable, Codable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let malformedRequest = Code(rawValue: "malformed-request")
        public static let unknownOperation = Code(rawValue: "unknown-operation")
        public static let notFound = Code(rawValue: "not-found")
        public static let busy = Code(rawValue: "busy")
        public static let timedOut = Code(rawValue: "timed-out")
        public static let internalError = Code(rawValue: "internal-error")
        public static let framing = Code(rawValue: "framing")
        public static let connection = Code(rawValue: "connection")
        /// The TLS handshake failed: wrong CA, a certificate not for this address, or no TLS.
        public static let tls = Code(rawValue: "tls")
        /// The server will not serve this peer (not registered, wrong credentials).
        public static let refused = Code(rawValue: "refused")
        /// ql-mcastd serves registered nodes only, and this peer is none (or not with this MAC or token).
        public static let notRegistered = Code(rawValue: "not-registered")
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
