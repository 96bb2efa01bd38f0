/// One head node's address as a node knows it: `HOST[:PORT]`. A site with two heads gives a
/// list, `ql.server=A,B` on the kernel command line or `--server A,B`: the node takes the first
/// that answers and goes on at the next when the one it uses is lost (docs/HA.md).
public struct HeadNode: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// The most heads one list may name: a list is a handful of heads, never a scan.
    public static let maxCount = 8

    public var description: String { "\(host):\(port)" }

    /// Parses `HOST[:PORT]` (`defaultPort` when the port is omitted).
    /// - Throws: `.invalidArgument` naming the text, for an empty host or a port outside 1…65535.
    public init(parsing text: String, defaultPort: Int) throws(QlustarError) {
        guard let colon = text.lastIndex(of: ":") else {
            guard !text.isEmpty else { throw QlustarError(.invalidArgument, "empty address") }
            self.init(host: text, port: defaultPort)
            return
        }
        guard let port = Int(text[text.index(after: colon)...]), (1...65_535).contains(port), colon != text.startIndex
        else {
            throw QlustarError(.invalidArgument, "'\(text)' is not HOST[:PORT]")
        }
        self.init(host: String(text[..<colon]), port: port)
    }

    /// Parses `HOST[:PORT][,HOST[:PORT]…]`: the heads in the order a node tries them.
    /// - Throws: `.invalidArgument` for an empty entry, a bad port, a head named twice or more
    ///   than `maxCount` heads.
    public static func list(_ text: String, defaultPort: Int) throws(QlustarError) -> [HeadNode] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count <= maxCount else {
            throw QlustarError(.invalidArgument, "'\(text.prefix(200))' names more than \(maxCount) head nodes")
        }
        var heads: [HeadNode] = []
        for part in parts {
            let head = try HeadNode(parsing: String(part), defaultPort: defaultPort)
            guard !heads.contains(head) else {
                throw QlustarError(.invalidArgument, "'\(text)' names head node \(head) twice")
            }
            heads.append(head)
        }
        return heads
    }
}
