import Platform

/// The time synchronisation config class: the NTP servers (the head nodes) the node's time
/// daemon follows after boot — chrony or systemd-timesyncd, whichever the image has. At
/// configure time the clock is first set once from the head node execd talks to (`TimeSync`).
public struct TimeConfig: Codable, Sendable, Equatable {
    public var servers: [String]

    public init(servers: [String]) { self.servers = servers }

    public func validate() throws(QlustarError) {
        guard !servers.isEmpty, servers.count <= 8 else { throw FieldCheck.fail("time.servers", "give 1–8 servers") }
        for s in servers {
            let name = try FieldCheck.line(s, "time.servers", limit: 253, allowSpaces: false)
            guard
                name.utf8.allSatisfy({
                    ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2E
                        || $0 == 0x2D || $0 == 0x3A
                })
            else { throw FieldCheck.fail("time.servers", "\(ImageName.quoted(s)) is not a host name or address") }
        }
    }
}

/// Which time daemon a node's image has, from its files.
public enum TimeDaemon: String, Codable, Sendable, CaseIterable {
    case chrony
    case timesyncd
    case none

    /// chrony when `chronyd` is installed below `root`, else systemd-timesyncd when it is, else none.
    public static func detect(root: Root) -> TimeDaemon {
        let has = { (paths: [String]) in paths.contains { FileSystem.isRegularFile(root.path($0)) } }
        if has(["/usr/sbin/chronyd", "/sbin/chronyd"]) { return .chrony }
        if has(["/lib/systemd/systemd-timesyncd", "/usr/lib/systemd/systemd-timesyncd"]) { return .timesyncd }
        return .none
    }
}

extension ConfigClass {
    public static let time = ConfigClass(declaring: "time")
}

extension TimeConfig: NodeConfigClass {
    public static var kind: ConfigClass { .time }
    public static var optionsKey: String? { "time" }
    public static var example: String { #"{"servers":["192.168.52.1","192.168.52.2"]}"# }

    /// The servers for the node's time daemon: a chrony `conf.d` file or a timesyncd drop-in;
    /// nothing for an image with neither.
    public static func render(
        _ configs: [NodeOptions.Named<Self>], into plan: inout FilePlan, _ context: inout RenderContext
    ) {
        guard let time = configs.last?.config else { return }
        let source = context.source(kind)
        switch context.facts.timeDaemon {
        case .chrony:
            plan.file(
                "/etc/chrony/conf.d/qluman.conf",
                context.header(source) + time.servers.map { "server \($0) iburst\n" }.joined() + "makestep 1 3\n",
                origin: source)
        case .timesyncd:
            plan.file(
                "/etc/systemd/timesyncd.conf.d/qluman.conf",
                context.header(source) + "[Time]\nNTP=\(time.servers.joined(separator: " "))\n", origin: source)
        case .none:
            break
        }
    }
}
