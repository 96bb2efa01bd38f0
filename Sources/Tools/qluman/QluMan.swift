import ArgumentParser
import Foundation
import Logging
import NodeRegistry
import Platform
import Provisioning

struct QluMan: ParsableCommand {
    /// `qluman --root R node add …`: the shared options are taken before the subcommand too.
    static func main() {
        main(
            LeadingOptions.hoist(
                Array(CommandLine.arguments.dropFirst()), valued: ["--root", "--socket", "--registry"],
                flags: ["--json"]))
    }

    static let configuration = CommandConfiguration(
        commandName: "qluman",
        abstract:
            "Manage the cluster's node registry: nodes, groups, config classes, boot configurations, provisioning.",
        discussion: HelpText.paragraphs(
            """
            The registry is an SQLite database in <root>/var/lib/qlustar/qluman.db, or the PostgreSQL
            database that two head nodes share (--registry or $QLUSTAR_REGISTRY:
            postgresql://USER@HOST[:PORT][,HOST…]/DATABASE, the password in a file only root reads,
            /etc/qlustar/registry.password). Every change is one transaction, safe with several
            administrators at once, on one head or on two.

              qluman group add compute
              qluman node add 'beo-[001-100]' --mac 52:54:00:12:34:56 \\
                  --ip 192.168.52.11 --image compute --group compute
              qluman node list --json

            Exit status: 0 done; 1 an error, named in the message — or, for power, exec and reconfigure
            on several nodes, any node failing; 2 boot status or watch found a node failed, stuck or silent;
            64 a mistake in the command line. exec on one node exits with the command's own status (125
            when it was killed or could not start).
            """),
        subcommands: [
            NodeCommand.self, GroupCommand.self, ConfigCommand.self, Preview.self, BootConfigCommand.self,
            Provision.self, Exec.self,
            Reconfigure.self, Nodes.self, BootCommand.self, PowerCommand.self,
        ]
    )
}

struct Common: ParsableArguments {
    @Option(help: "Root prefix for every path (default: $QLUSTAR_ROOT or /).") var root: String?
    @Option(
        name: .customLong("registry"),
        help: ArgumentHelp(
            "The registry: a file (SQLite) or postgresql://USER@HOST[,HOST]/DATABASE "
                + "(default: $QLUSTAR_REGISTRY, else registry = in <root>/etc/qlustar/qlumand.conf, "
                + "else <root>/var/lib/qlustar/qluman.db).", valueName: "PATH|URL"))
    var registryLocation: String?
    @Flag(help: "Print JSON for scripts.") var json = false

    func registry() throws -> Registry { try Registry(root: Root(root), option: registryLocation) }

    func print<T: Encodable>(_ value: T, text: () -> String) throws {
        try JSONOutput.print(value, json: json, text: text)
    }
}

func describe(_ n: Node) -> String {
    "\(n.name)  \(n.ip)/\(n.prefix)  \(n.macs.joined(separator: ","))  image \(n.image ?? "-")  group \(n.group ?? "-")"
        + "  boot \(n.bootConfig ?? "-")  bmc \(n.bmc ?? "-")\n"
}

struct GroupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "group", abstract: "Node groups.", subcommands: [Add.self, List.self, Remove.self, GroupSet.self])

    struct Add: ParsableCommand {
        @OptionGroup var common: Common
        @Argument(help: "Group name.") var name: String
        func run() throws {
            try common.registry().addGroup(name)
            try common.print(["added": name]) { "added group \(name)\n" }
        }
    }

    struct List: ParsableCommand {
        @OptionGroup var common: Common
        func run() throws {
            let groups = try common.registry().groups()
            try common.print(groups) { groups.map { $0 + "\n" }.joined() }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm")
        @OptionGroup var common: Common
        @Argument(help: "Group name.") var name: String
        func run() throws {
            try common.registry().removeGroup(name)
            try common.print(["removed": name]) { "removed group \(name)\n" }
        }
    }
}

struct GroupSet: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "set", abstract: "Set the group's boot configuration.")
    @OptionGroup var common: Common
    @Argument(help: "Group name.") var name: String
    @Option(help: "Boot configuration of the group's nodes ('none': default).") var bootConfig: String
    func run() throws {
        try common.registry().setGroupBootConfig(name, bootConfig == "none" ? nil : bootConfig)
        try common.print(["group": name, "bootConfig": bootConfig]) {
            "group \(name): boot configuration \(bootConfig)\n"
        }
    }
}

struct BootConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "boot-config",
        abstract: "Named boot configurations (kernel, initrd, kernel parameters) for pxelinux.",
        subcommands: [Add.self, List.self, Remove.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Define (or redefine) a boot configuration; 'default' is used by nodes without one.")
        @OptionGroup var common: Common
        @Argument(help: "Name.") var name: String
        @Option(help: "Kernel, below the TFTP root (e.g. qlustar/images/compute.vmlinuz).") var kernel: String
        @Option(help: "Initrd, below the TFTP root (e.g. qlustar/images/compute.initrd).") var initrd: String
        @Option(help: "Kernel parameters: ql.server=HEAD ql.image=IMG, early-shell, debug …") var append = ""
        @Option(help: "What UEFI nodes load instead of --kernel (default: the same).") var uefiKernel: String?
        @Option(help: "What UEFI nodes load instead of --initrd (default: the same).") var uefiInitrd: String?
        @Option(help: "UEFI nodes' kernel parameters instead of --append (default: the same).") var uefiAppend: String?
        func run() throws {
            let config = BootConfig(
                name: name, kernel: kernel, initrd: initrd, append: append, uefiKernel: uefiKernel,
                uefiInitrd: uefiInitrd, uefiAppend: uefiAppend)
            try common.registry().putBootConfig(config)
            try common.print(config) { "boot configuration \(name): \(kernel) \(initrd) \(append)\n" }
        }
    }

    struct List: ParsableCommand {
        @OptionGroup var common: Common
        func run() throws {
            let configs = try common.registry().bootConfigs()
            try common.print(configs) {
                configs.map { "\($0.name)  \($0.kernel)  \($0.initrd)  \($0.append)\n" }.joined()
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm")
        @OptionGroup var common: Common
        @Argument(help: "Name.") var name: String
        func run() throws {
            try common.registry().removeBootConfig(name)
            try common.print(["removed": name]) { "removed boot configuration \(name)\n" }
        }
    }
}

struct Provision: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Regenerate the dnsmasq configuration, the TFTP tree and pxelinux.cfg from the registry.",
        discussion: HelpText.paragraphs(
            """
            Writes <root>/etc/qlustar/dnsmasq/{qlustar.conf,dhcp-hosts} (DHCP for registered MACs only,
            TFTP from <root>/var/lib/tftpboot), the TFTP links (pxelinux.0, pxelinux.cfg, qlustar),
            <root>/etc/qlustar/pxelinux.cfg/default and a Hostid link per node with a custom boot
            configuration. Each file is replaced in one rename; a dnsmasq whose pid is in
            <root>/run/qlustar/dnsmasq.pid gets SIGHUP to re-read the hosts.
            """))
    @OptionGroup var common: Common
    func run() throws {
        let root = Root(common.root)
        let report = try Provisioner(root: root, log: Logger(root: root, name: "qluman", echo: false)).provision(
            common.registry())
        try common.print(report) {
            "provisioned \(report.nodes) nodes, \(report.hostidLinks.count) custom boot links"
                + (report.removedLinks.isEmpty ? "" : ", removed \(report.removedLinks.joined(separator: " "))")
                + (report.reloaded ? ", dnsmasq reloaded" : "") + "\n"
        }
    }
}
