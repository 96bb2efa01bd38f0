import Platform

/// Turns a node's options into the files configure writes (`FilePlan`). The one place that
/// decides what a node gets: `qluman preview` and `qluman-execd --configure` both call it.
public enum NodeRenderer {
    public static let optionsDirectory = "/etc/qlustar/options.d"

    /// The plan for `options` on a node with `facts` (OS family, time daemon), with the Root FS
    /// Customization trees in `trees` (in the order of `options.rootFS`).
    /// - Throws: `.invalidArgument` when a value cannot be applied to this node (a host number
    ///   that does not fit a network), or a tree entry that would leave its tree.
    public static func plan(_ options: NodeOptions, facts: NodeFacts, trees: [RootFSArchive]) throws(QlustarError) -> FilePlan {
        var plan = FilePlan()
        let family = facts.osFamily
        let node = options.node
        let header = { (what: String) in
            "# Written by qluman-execd for node \(node.name) from qlumand (\(what)).\n"
                + "# Generated at every boot: changes made here are lost.\n"
        }
        func source(_ cls: ConfigClass) -> String {
            "\(cls.rawValue) " + (options.sources[cls.rawValue] ?? []).joined(separator: ",")
        }

        plan.file("/etc/hostname", node.name + "\n", origin: "node")
        var identity = ShellOptions(header: header("node identity"))
        identity.set("QLUMAN_NODE", node.name)
        identity.set("QLUMAN_IP", node.ip)
        identity.set("QLUMAN_PREFIX", String(node.prefix))
        identity.set("QLUMAN_MACS", node.macs.joined(separator: " "))
        plan.file(optionsDirectory + "/node", identity.text, origin: "node")

        if let network = options.network {
            let addresses = try NetworkAddresses(network, node: node)
            switch family {
            case .debian:
                plan.file(
                    "/etc/network/interfaces.d/qluman", header(source(.network)) + InterfacesWriter.debian(network, addresses),
                    origin: source(.network))
            case .redhat:
                for (name, text) in InterfacesWriter.redhat(network, addresses) {
                    plan.file("/etc/sysconfig/network-scripts/ifcfg-\(name)", header(source(.network)) + text, origin: source(.network))
                }
            }
        }

        if let time = options.time {
            switch facts.timeDaemon {
            case .chrony:
                plan.file(
                    "/etc/chrony/conf.d/qluman.conf",
                    header(source(.time)) + time.servers.map { "server \($0) iburst\n" }.joined() + "makestep 1 3\n", origin: source(.time))
            case .timesyncd:
                plan.file(
                    "/etc/systemd/timesyncd.conf.d/qluman.conf",
                    header(source(.time)) + "[Time]\nNTP=\(time.servers.joined(separator: " "))\n", origin: source(.time))
            case .none:
                break
            }
        }

        if let disk = options.disk {
            plan.file(optionsDirectory + "/disk-config", header(source(.disk)) + disk.text, origin: source(.disk))
        }

        for named in options.networkFS {
            for mount in named.config.mounts {
                let origin = "network-fs \(named.name)"
                let unit = SystemdUnitName.escape(path: mount.path)
                let description = "Description=QluMan network file system \(mount.path) (\(named.name))\n"
                var text = header(origin) + "[Unit]\n" + description
                text += "After=network-online.target\nWants=network-online.target\n\n"
                text += "[Mount]\nWhat=\(mount.source)\nWhere=\(mount.path)\nType=\(mount.type)\n"
                if let o = mount.options { text += "Options=\(o)\n" }
                let automount = mount.automount ?? false
                if !automount { text += "\n[Install]\nWantedBy=remote-fs.target\n" }
                plan.file("/etc/systemd/system/\(unit).mount", text, origin: origin)
                let enabled = automount ? "\(unit).automount" : "\(unit).mount"
                if automount {
                    plan.file(
                        "/etc/systemd/system/\(unit).automount",
                        header(origin) + "[Unit]\n" + description + "\n[Automount]\nWhere=\(mount.path)\nTimeoutIdleSec=600\n\n"
                            + "[Install]\nWantedBy=remote-fs.target\n", origin: origin)
                }
                plan.symlink("/etc/systemd/system/remote-fs.target.wants/\(enabled)", to: "/etc/systemd/system/\(enabled)", origin: origin)
            }
        }

        if let sm = options.openSM {
            var o = ShellOptions(header: header(source(.openSM)))
            o.set("QLUMAN_OPENSM", sm.enabled)
            if let p = sm.priority { o.set("QLUMAN_OPENSM_PRIORITY", String(p)) }
            if let ports = sm.ports { o.set("QLUMAN_OPENSM_PORTS", ports.joined(separator: " ")) }
            plan.file(optionsDirectory + "/opensm", o.text, origin: source(.openSM))
            if sm.enabled {
                plan.symlink(
                    "/etc/systemd/system/multi-user.target.wants/opensm.service", to: "/lib/systemd/system/opensm.service",
                    origin: source(.openSM))
            }
        }

        if let ipmi = options.ipmi {
            let network = try FieldCheck.network(ipmi.network, "ipmi.network")
            let host = try FieldCheck.ipv4(node.ip, "node address")
            let address = IPv4Network.format(try network.address(forHost: host, hostPrefix: node.prefix, node: node.name))
            let channel = String(ipmi.channel ?? 1)
            var o = ShellOptions(header: header(source(.ipmi)))
            o.set("QLUMAN_IPMI_ADDRESS", address)
            o.set("QLUMAN_IPMI_NETMASK", network.netmask)
            if let g = ipmi.gateway { o.set("QLUMAN_IPMI_GATEWAY", g) }
            o.set("QLUMAN_IPMI_CHANNEL", channel)
            plan.file(optionsDirectory + "/ipmi", o.text, origin: source(.ipmi))
            let lan = ["lan", "set", channel]
            plan.actions.append(.init(description: "IPMI address source static", program: "ipmitool", arguments: lan + ["ipsrc", "static"]))
            plan.actions.append(.init(description: "IPMI address \(address)", program: "ipmitool", arguments: lan + ["ipaddr", address]))
            plan.actions.append(.init(description: "IPMI netmask", program: "ipmitool", arguments: lan + ["netmask", network.netmask]))
            if let g = ipmi.gateway {
                plan.actions.append(.init(description: "IPMI gateway \(g)", program: "ipmitool", arguments: lan + ["defgw", "ipaddr", g]))
            }
        }

        if let chroot = options.chroot {
            var o = ShellOptions(header: header(source(.chroot)))
            o.set("QLUMAN_CHROOT", chroot.chroot)
            plan.file(optionsDirectory + "/chroot", o.text, origin: source(.chroot))
        }

        if !options.sshKeys.isEmpty {
            let origin = source(.sshKeys)
            plan.directory("/root/.ssh", mode: 0o700, origin: origin)
            var text = header(origin)
            for named in options.sshKeys { text += named.config.keys.map { $0 + "\n" }.joined() }
            plan.file("/root/.ssh/authorized_keys", text, mode: 0o600, origin: origin)
        }

        if let misc = options.misc {
            var o = ShellOptions(header: header(source(.misc)))
            o.set("QLUMAN_MAIL_RELAY", misc.mailRelay ?? "")
            o.set("QLUMAN_SSH_SLURM_ONLY", misc.sshSlurmOnly ?? false)
            plan.file(optionsDirectory + "/misc", o.text, origin: source(.misc))
            if misc.sshSlurmOnly == true {
                plan.file(PamRules.slurmJobCheck, "#!/bin/sh\n" + header(source(.misc)) + PamRules.slurmJobCheckText, mode: 0o755, origin: source(.misc))
                plan.edit("/etc/pam.d/sshd", key: PamRules.slurmAccountLine, line: PamRules.slurmAccountLine, origin: source(.misc))
            }
        }

        if let sssd = options.sssd {
            plan.file("/etc/sssd/sssd.conf", header(source(.sssd)) + PamRules.sssdConf(sssd), mode: 0o600, origin: source(.sssd))
            if sssd.createHomes == true {
                plan.edit("/etc/pam.d/common-session", key: PamRules.mkhomedirKey, line: PamRules.mkhomedirLine, origin: source(.sssd))
            }
        }

        if let nis = options.nis {
            plan.file("/etc/defaultdomain", nis.domain + "\n", origin: source(.nis))
            plan.file("/etc/yp.conf", header(source(.nis)) + nis.servers.map { "domain \(nis.domain) server \($0)\n" }.joined(), origin: source(.nis))
        }
        if options.sssd != nil || options.nis != nil {
            let extra = (options.sssd != nil ? " sss" : "") + (options.nis != nil ? " nis" : "")
            let origin = [options.sssd != nil ? source(.sssd) : nil, options.nis != nil ? source(.nis) : nil].compactMap { $0 }.joined(separator: ", ")
            for (database, base) in [("passwd", "files systemd"), ("group", "files systemd"), ("shadow", "files")] {
                plan.edit("/etc/nsswitch.conf", key: database + ":", line: "\(database):".padding(toLength: 16, withPad: " ", startingAt: 0) + base + extra, origin: origin)
            }
            if options.nis != nil {
                plan.edit("/etc/nsswitch.conf", key: "netgroup:", line: "netgroup:".padding(toLength: 16, withPad: " ", startingAt: 0) + "nis", origin: source(.nis))
            }
        }

        if !options.rootFS.isEmpty {
            var o = ShellOptions(header: header(source(.rootFS)))
            o.set("QLUMAN_ROOT_FS", options.rootFS.map(\.name).joined(separator: " "))
            plan.file(optionsDirectory + "/root-fs", o.text, origin: source(.rootFS))
            guard trees.count == options.rootFS.count else {
                throw QlustarError(.invalidArgument, "\(options.rootFS.count) Root FS Customizations announced, \(trees.count) received")
            }
            for tree in trees { plan.entries += try tree.entries(origin: "root-fs \(tree.name)") }
        }
        return plan
    }
}
