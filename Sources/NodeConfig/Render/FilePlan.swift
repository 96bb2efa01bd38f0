/// What configure writes to a node: every file, directory and symbolic link with its owner,
/// group and mode, plus the commands it runs (IPMI). `qluman preview` prints or writes a plan;
/// `qluman-execd --configure` writes the same plan — one code path, so they cannot differ.
public struct FilePlan: Sendable, Equatable {
    public enum Content: Sendable, Equatable {
        case file([UInt8])
        case directory
        case symlink(String)
    }

    public struct Entry: Sendable, Equatable {
        /// Absolute path on the node.
        public var path: String
        public var content: Content
        public var mode: UInt32
        public var uid: UInt32
        public var gid: UInt32
        /// The config class (and config) that produced it, for the preview.
        public var origin: String

        public init(path: String, content: Content, mode: UInt32, uid: UInt32 = 0, gid: UInt32 = 0, origin: String) {
            self.path = path
            self.content = content
            self.mode = mode
            self.uid = uid
            self.gid = gid
            self.origin = origin
        }
    }

    /// A command configure runs on the node (when the program exists there; logged otherwise).
    public struct Action: Sendable, Equatable {
        public var description: String
        public var program: String
        public var arguments: [String]
    }

    /// A change to one line of a file the image already has (nsswitch.conf, a pam stack):
    /// the lines that start with `key` (after leading blanks) become `line`; when there is none,
    /// `line` is appended. Applying it twice changes nothing the second time.
    public struct LineEdit: Sendable, Equatable {
        public var path: String
        public var key: String
        public var line: String
        public var origin: String

        /// `text` with the edit applied.
        public func apply(to text: String) -> String {
            var lines =
                text.isEmpty ? [] : text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            if lines.last == "" { lines.removeLast() }
            var found = false
            for i in lines.indices where lines[i].drop(while: { $0 == " " || $0 == "\t" }).hasPrefix(key) {
                lines[i] = line
                found = true
            }
            if !found { lines.append(line) }
            return lines.map { $0 + "\n" }.joined()
        }
    }

    public var entries: [Entry] = []
    public var edits: [LineEdit] = []
    public var actions: [Action] = []

    public init() {}

    mutating func file(_ path: String, _ text: String, mode: UInt32 = 0o644, origin: String) {
        entries.append(Entry(path: path, content: .file(Array(text.utf8)), mode: mode, origin: origin))
    }

    mutating func directory(_ path: String, mode: UInt32 = 0o755, origin: String) {
        entries.append(Entry(path: path, content: .directory, mode: mode, origin: origin))
    }

    mutating func edit(_ path: String, key: String, line: String, origin: String) {
        edits.append(LineEdit(path: path, key: key, line: line, origin: origin))
    }

    mutating func symlink(_ path: String, to target: String, origin: String) {
        entries.append(Entry(path: path, content: .symlink(target), mode: 0o777, origin: origin))
    }
}
