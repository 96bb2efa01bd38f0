import Platform

/// An error of the engine: a stable code for programs and a message for the administrator
/// that names the thing concerned (object, block, path, address) and what to do.
public struct TransportError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let invalidArgument = Code(rawValue: "invalid-argument")
        public static let systemCall = Code(rawValue: "system-call")
        public static let malformed = Code(rawValue: "malformed")
        public static let decodeFailed = Code(rawValue: "decode-failed")
        public static let repairExhausted = Code(rawValue: "repair-exhausted")
        public static let integrity = Code(rawValue: "integrity")
        public static let timedOut = Code(rawValue: "timed-out")
        public static let dropped = Code(rawValue: "dropped")
        /// The caller gave the session up (`Receiver.shouldAbandon`: its server is known gone).
        public static let abandoned = Code(rawValue: "abandoned")
        public static let io = Code(rawValue: "io")
    }

    public let code: Code
    public let message: String
    /// errno for `.systemCall` errors.
    public let errno: Int32?

    public init(_ code: Code, _ message: String, errno: Int32? = nil) {
        self.code = code
        self.message = message
        self.errno = errno
    }

    /// A failed system call of the engine (`.systemCall`, with its errno).
    public init(_ failure: SystemCallError) {
        self.init(.systemCall, failure.description, errno: failure.errno)
    }

    public var description: String { message }
}
