import Platform

/// The NIS config class (optional): the domain and its servers; `nis` added to the nsswitch
/// entries. Nodes without it get nothing of NIS.
public struct NISConfig: Codable, Sendable, Equatable {
    public var domain: String
    public var servers: [String]

    public func validate() throws(QlustarError) {
        _ = try FieldCheck.name(domain, "NIS domain")
        guard !servers.isEmpty, servers.count <= 8 else { throw FieldCheck.fail("nis.servers", "give 1–8 servers") }
        for s in servers { _ = try FieldCheck.line(s, "nis.servers", limit: 253, allowSpaces: false) }
    }
}

extension ConfigClass {
    public static let nis = ConfigClass(declaring: "nis")
}

extension NISConfig: NodeConfigClass {
    public static var kind: ConfigClass { .nis }
    public static var optionsKey: String? { "nis" }
    public static var example: String { #"{"domain":"cluster","servers":["192.168.52.1"]}"# }

    /// `/etc/defaultdomain`, `/etc/yp.conf`, and `nis` for nsswitch.conf (netgroups too).
    public static func render(
        _ configs: [NodeOptions.Named<Self>], into plan: inout FilePlan, _ context: inout RenderContext
    ) {
        guard let nis = configs.last?.config else { return }
        let source = context.source(kind)
        plan.file("/etc/defaultdomain", nis.domain + "\n", origin: source)
        plan.file(
            "/etc/yp.conf", context.header(source) + nis.servers.map { "domain \(nis.domain) server \($0)\n" }.joined(),
            origin: source)
        context.nameServices.append((service: "nis", origin: source, netgroup: true))
    }
}
