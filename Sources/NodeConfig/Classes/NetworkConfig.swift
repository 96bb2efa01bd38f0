import Platform

/// The network config class: the node's interfaces (Ethernet, bonds, VLANs, IPoIB), written as
/// `/etc/network/interfaces.d/qluman` on Debian/Ubuntu nodes or `ifcfg-*` files on RHEL nodes.
///
/// An interface's `address` is `boot` (the node's registered address and prefix), `dhcp`,
/// `manual` (up without an address: bond slaves, VLAN parents), or a network `A.B.C.D/P`:
/// the node gets the host number of its boot address in that network, so one config serves
/// every node of a group (as QluMan's networks do).
public struct NetworkConfig: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable { case ethernet, bond, vlan, ipoib }

    public struct Interface: Codable, Sendable, Equatable {
        public var name: String
        public var type: Kind?
        public var address: String
        public var gateway: String?
        public var mtu: Int?
        /// Bonds: the enslaved interfaces and the bonding mode (default `active-backup`).
        public var slaves: [String]?
        public var bondMode: String?
        /// VLANs: the tag and the parent interface.
        public var vlan: Int?
        public var parent: String?
        /// IPoIB: connected mode (default datagram).
        public var connectedMode: Bool?

        public var kind: Kind { type ?? .ethernet }
    }

    public var interfaces: [Interface]
    public var nameservers: [String]?
    public var searchDomains: [String]?

    static let bondModes: Set<String> = [
        "balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb", "balance-alb",
    ]

    public func validate() throws(QlustarError) {
        guard !interfaces.isEmpty else { throw FieldCheck.fail("network", "needs at least one interface") }
        var names = Set<String>()
        for (i, interface) in interfaces.enumerated() {
            let what = "interfaces[\(i)]"
            let name = try FieldCheck.interface(interface.name, what + ".name")
            guard names.insert(name).inserted else { throw FieldCheck.fail(what, "interface \(name) is listed twice") }
            switch interface.address {
            case "boot", "dhcp", "manual": break
            default:
                _ = try FieldCheck.network(
                    interface.address, what + ".address (boot, dhcp, manual or a network A.B.C.D/P)")
            }
            if let g = interface.gateway { _ = try FieldCheck.ipv4(g, what + ".gateway") }
            if let mtu = interface.mtu, !(576...65_520).contains(mtu) {
                throw FieldCheck.fail(what + ".mtu", "must be 576–65520")
            }
            switch interface.kind {
            case .bond:
                guard let slaves = interface.slaves, !slaves.isEmpty else {
                    throw FieldCheck.fail(what, "a bond needs slaves")
                }
                for s in slaves { _ = try FieldCheck.interface(s, what + ".slaves") }
                if let m = interface.bondMode, !Self.bondModes.contains(m) {
                    throw FieldCheck.fail(
                        what + ".bondMode",
                        "\(ImageName.quoted(m)) is not one of \(Self.bondModes.sorted().joined(separator: ", "))")
                }
            case .vlan:
                guard let tag = interface.vlan, (1...4094).contains(tag) else {
                    throw FieldCheck.fail(what, "a VLAN needs a tag 1–4094")
                }
                guard let parent = interface.parent else {
                    throw FieldCheck.fail(what, "a VLAN needs a parent interface")
                }
                _ = try FieldCheck.interface(parent, what + ".parent")
            case .ethernet, .ipoib:
                guard interface.slaves == nil, interface.vlan == nil else {
                    throw FieldCheck.fail(what, "slaves and vlan belong to bond and vlan interfaces")
                }
            }
        }
        let enslaved = interfaces.flatMap { $0.slaves ?? [] }
        guard Set(enslaved).count == enslaved.count else {
            throw FieldCheck.fail("network", "an interface is the slave of two bonds")
        }
        for slave in enslaved where interfaces.contains(where: { $0.name == slave && $0.address != "manual" }) {
            throw FieldCheck.fail("network", "bond slave \(slave) must have address manual")
        }
        guard interfaces.filter({ $0.address == "boot" }).count <= 1 else {
            throw FieldCheck.fail("network", "only one interface can carry the boot address")
        }
        for n in nameservers ?? [] { _ = try FieldCheck.ipv4(n, "nameservers") }
        for d in searchDomains ?? [] { _ = try FieldCheck.line(d, "searchDomains", limit: 253, allowSpaces: false) }
    }
}

extension ConfigClass {
    public static let network = ConfigClass(declaring: "network")
}

extension NetworkConfig: NodeConfigClass {
    public static var kind: ConfigClass { .network }
    public static var optionsKey: String? { "network" }
    public static var example: String {
        #"{"interfaces":[{"name":"eth0","address":"boot","gateway":"192.168.52.1"},{"name":"ib0","type":"ipoib","address":"10.1.0.0/16"}]}"#
    }

    /// `interfaces.d/qluman` on Debian and Ubuntu, an `ifcfg-*` file per interface on RHEL.
    /// - Throws: `.invalidArgument` when the node's host number does not fit a network.
    public static func render(
        _ configs: [NodeOptions.Named<Self>], into plan: inout FilePlan, _ context: inout RenderContext
    )
        throws(QlustarError)
    {
        guard let network = configs.last?.config else { return }
        let source = context.source(kind)
        let addresses = try NetworkAddresses(network, node: context.node)
        switch context.facts.osFamily {
        case .debian:
            plan.file(
                "/etc/network/interfaces.d/qluman",
                context.header(source) + InterfacesWriter.debian(network, addresses), origin: source)
        case .redhat:
            for (name, text) in InterfacesWriter.redhat(network, addresses) {
                plan.file("/etc/sysconfig/network-scripts/ifcfg-\(name)", context.header(source) + text, origin: source)
            }
        }
    }
}
