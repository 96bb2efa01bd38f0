import Platform

/// The IPMI config class: the BMC's address follows the node's host number in `network`.
public struct IPMIConfig: Codable, Sendable, Equatable {
    public var network: String
    public var gateway: String?
    /// The LAN channel (default 1).
    public var channel: Int?

    public func validate() throws(QlustarError) {
        _ = try FieldCheck.network(network, "ipmi.network")
        if let g = gateway { _ = try FieldCheck.ipv4(g, "ipmi.gateway") }
        if let c = channel, !(1...15).contains(c) { throw FieldCheck.fail("ipmi.channel", "must be 1–15") }
    }

    /// The BMC address of the node `name` at `ip`/`prefix`: its host number in `network`.
    /// - Throws: `.invalidArgument` when the host number does not fit the IPMI network.
    public func address(ofNode name: String, ip: String, prefix: Int) throws(QlustarError) -> String {
        let network = try FieldCheck.network(self.network, "ipmi.network")
        let host = try FieldCheck.ipv4(ip, "node address")
        return IPv4Network.format(try network.address(forHost: host, hostPrefix: prefix, node: name))
    }
}

extension ConfigClass {
    public static let ipmi = ConfigClass(declaring: "ipmi")
}

extension IPMIConfig: NodeConfigClass {
    public static var kind: ConfigClass { .ipmi }
    public static var optionsKey: String? { "ipmi" }
    public static var example: String { #"{"network":"10.2.0.0/16","gateway":"10.2.0.1"}"# }

    /// `options.d/ipmi` and the `ipmitool lan set` commands that give the BMC its address.
    /// - Throws: `.invalidArgument` when the node's host number does not fit the IPMI network.
    public static func render(
        _ configs: [NodeOptions.Named<Self>], into plan: inout FilePlan, _ context: inout RenderContext
    )
        throws(QlustarError)
    {
        guard let ipmi = configs.last?.config else { return }
        let node = context.node
        let network = try FieldCheck.network(ipmi.network, "ipmi.network")
        let address = try ipmi.address(ofNode: node.name, ip: node.ip, prefix: node.prefix)
        let channel = String(ipmi.channel ?? 1)
        context.optionsFile("ipmi", of: kind, into: &plan) { o in
            o.set("QLUMAN_IPMI_ADDRESS", address)
            o.set("QLUMAN_IPMI_NETMASK", network.netmask)
            if let g = ipmi.gateway { o.set("QLUMAN_IPMI_GATEWAY", g) }
            o.set("QLUMAN_IPMI_CHANNEL", channel)
        }
        let lan = ["lan", "set", channel]
        plan.actions.append(
            .init(description: "IPMI address source static", program: "ipmitool", arguments: lan + ["ipsrc", "static"]))
        plan.actions.append(
            .init(description: "IPMI address \(address)", program: "ipmitool", arguments: lan + ["ipaddr", address]))
        plan.actions.append(
            .init(description: "IPMI netmask", program: "ipmitool", arguments: lan + ["netmask", network.netmask]))
        if let g = ipmi.gateway {
            plan.actions.append(
                .init(description: "IPMI gateway \(g)", program: "ipmitool", arguments: lan + ["defgw", "ipaddr", g]))
        }
    }
}
