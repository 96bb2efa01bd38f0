import Platform

/// The address each configured interface gets on one node: `boot` is the registered address,
/// a network gets the node's host number in it.
struct NetworkAddresses {
    /// "A.B.C.D/P" per interface with a static address.
    private(set) var byInterface: [String: String] = [:]

    init(_ network: NetworkConfig, node: NodeOptions.Identity) throws(QlustarError) {
        let host = try FieldCheck.ipv4(node.ip, "node address")
        for interface in network.interfaces {
            switch interface.address {
            case "boot": byInterface[interface.name] = "\(node.ip)/\(node.prefix)"
            case "dhcp", "manual": break
            default:
                let net = try FieldCheck.network(interface.address, "interface \(interface.name)")
                let address = try net.address(forHost: host, hostPrefix: node.prefix, node: node.name)
                byInterface[interface.name] = "\(IPv4Network.format(address))/\(net.prefix)"
            }
        }
    }
}

/// The network config class as ifupdown stanzas (Debian/Ubuntu) or ifcfg files (RHEL).
enum InterfacesWriter {
    static func debian(_ network: NetworkConfig, _ addresses: NetworkAddresses) -> String {
        var out = ""
        let masters = Dictionary(
            network.interfaces.flatMap { i in (i.slaves ?? []).map { ($0, i.name) } }, uniquingKeysWith: { a, _ in a })
        for i in network.interfaces {
            out += "\nauto \(i.name)\n"
            let method = i.address == "dhcp" ? "dhcp" : (i.address == "manual" ? "manual" : "static")
            out += "iface \(i.name) inet \(method)\n"
            if let address = addresses.byInterface[i.name] { out += "    address \(address)\n" }
            if let g = i.gateway { out += "    gateway \(g)\n" }
            if let mtu = i.mtu { out += "    mtu \(mtu)\n" }
            if let master = masters[i.name] { out += "    bond-master \(master)\n" }
            switch i.kind {
            case .bond:
                out += "    bond-slaves \((i.slaves ?? []).joined(separator: " "))\n"
                out += "    bond-mode \(i.bondMode ?? "active-backup")\n    bond-miimon 100\n"
            case .vlan:
                out += "    vlan-raw-device \(i.parent ?? "")\n"
            case .ipoib:
                out +=
                    "    pre-up echo \(i.connectedMode == true ? "connected" : "datagram") > /sys/class/net/\(i.name)/mode\n"
            case .ethernet: break
            }
            if i.address == "boot" {
                if let ns = network.nameservers, !ns.isEmpty {
                    out += "    dns-nameservers \(ns.joined(separator: " "))\n"
                }
                if let sd = network.searchDomains, !sd.isEmpty {
                    out += "    dns-search \(sd.joined(separator: " "))\n"
                }
            }
        }
        return out
    }

    /// One `ifcfg-NAME` text per interface, in the order configured.
    static func redhat(_ network: NetworkConfig, _ addresses: NetworkAddresses) -> [(String, String)] {
        let masters = Dictionary(
            network.interfaces.flatMap { i in (i.slaves ?? []).map { ($0, i.name) } }, uniquingKeysWith: { a, _ in a })
        return network.interfaces.map { i in
            var o = ShellOptions(header: "")
            o.set("DEVICE", i.name)
            o.set("NAME", i.name)
            o.set("ONBOOT", true)
            o.set("BOOTPROTO", i.address == "dhcp" ? "dhcp" : "none")
            if let address = addresses.byInterface[i.name] {
                let parts = address.split(separator: "/")
                o.set("IPADDR", String(parts[0]))
                o.set("PREFIX", String(parts[1]))
            }
            if let g = i.gateway { o.set("GATEWAY", g) }
            if let mtu = i.mtu { o.set("MTU", String(mtu)) }
            if let master = masters[i.name] {
                o.set("MASTER", master)
                o.set("SLAVE", true)
            }
            switch i.kind {
            case .bond:
                o.set("TYPE", "Bond")
                o.set("BONDING_MASTER", true)
                o.set("BONDING_OPTS", "mode=\(i.bondMode ?? "active-backup") miimon=100")
            case .vlan:
                o.set("VLAN", true)
                o.set("PHYSDEV", i.parent ?? "")
            case .ipoib:
                o.set("TYPE", "InfiniBand")
                o.set("CONNECTED_MODE", i.connectedMode == true)
            case .ethernet:
                o.set("TYPE", "Ethernet")
            }
            if i.address == "boot" {
                for (n, server) in (network.nameservers ?? []).enumerated() { o.set("DNS\(n + 1)", server) }
                if let sd = network.searchDomains, !sd.isEmpty { o.set("DOMAIN", sd.joined(separator: " ")) }
            }
            return (i.name, o.text)
        }
    }
}
