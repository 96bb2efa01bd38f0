/// A failure in any of the Qlustar tools (image service, registry, node configuration, image
/// tooling, capture), with a stable code and a message that names the thing (image, path,
/// server, node) and what to do.
public struct QlustarError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let invalidArgument = Code(rawValue: "invalid-argument")
        public static let configuration = Code(rawValue: "configuration")
        public static let io = Code(rawValue: "io")
        public static let notFound = Code(rawValue: "not-found")
        /// The version being fetched is no longer served (the image was replaced): start over.
        public static let replaced = Code(rawValue: "replaced")
        /// The head node in use was lost mid-transfer: start over at the next one.
        public static let serverLost = Code(rawValue: "server-lost")
        public static let unreachable = Code(rawValue: "unreachable")
        public static let refused = Code(rawValue: "refused")
        public static let integrity = Code(rawValue: "integrity")
        public static let transfer = Code(rawValue: "transfer")
        public static let union = Code(rawValue: "union")
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
