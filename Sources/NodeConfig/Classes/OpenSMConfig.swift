import Platform

/// The OpenSM config class: whether the node runs the InfiniBand subnet manager.
public struct OpenSMConfig: Codable, Sendable, Equatable {
    public var enabled: Bool
    /// SM priority 0–15 (the highest wins mastership).
    public var priority: Int?
    /// Port GUIDs to bind (0x…); all ports when absent.
    public var ports: [String]?

    public func validate() throws(QlustarError) {
        if let p = priority, !(0...15).contains(p) { throw FieldCheck.fail("opensm.priority", "must be 0–15") }
        for g in ports ?? [] {
            guard g.hasPrefix("0x"), (3...18).contains(g.count), UInt64(g.dropFirst(2), radix: 16) != nil else {
                throw FieldCheck.fail(
                    "opensm.ports", "\(ImageName.quoted(g)) is not a port GUID like 0x0002c903000e0b21")
            }
        }
    }
}

extension ConfigClass {
    public static let openSM = ConfigClass(declaring: "opensm")
}

extension OpenSMConfig: NodeConfigClass {
    public static var kind: ConfigClass { .openSM }
    public static var optionsKey: String? { "openSM" }
    public static var example: String { #"{"enabled":true,"priority":10}"# }

    /// `options.d/opensm`, and opensm.service enabled when the node runs the subnet manager.
    public static func render(
        _ configs: [NodeOptions.Named<Self>], into plan: inout FilePlan, _ context: inout RenderContext
    ) {
        guard let sm = configs.last?.config else { return }
        context.optionsFile("opensm", of: kind, into: &plan) { o in
            o.set("QLUMAN_OPENSM", sm.enabled)
            if let p = sm.priority { o.set("QLUMAN_OPENSM_PRIORITY", String(p)) }
            if let ports = sm.ports { o.set("QLUMAN_OPENSM_PORTS", ports.joined(separator: " ")) }
        }
        if sm.enabled {
            plan.symlink(
                "/etc/systemd/system/multi-user.target.wants/opensm.service", to: "/lib/systemd/system/opensm.service",
                origin: context.source(kind))
        }
    }
}
