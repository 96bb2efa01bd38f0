import ArgumentParser
import Foundation
import ImageService
import NodeRegistry

@main
struct QluMan: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qluman",
        abstract: "Manage the cluster's node registry (nodes, their MACs, IPs, images and groups).",
        discussion: """
            The registry is an SQLite database in <root>/var/lib/qlustar/qluman.db; every change is
            one transaction, safe with several administrators at once.

              qluman group add compute
              qluman node add beo-01 --mac 52:54:00:12:34:56 --ip 192.168.52.11 --image compute --group compute
              qluman node list --json
            """,
        subcommands: [NodeCommand.self, GroupCommand.self]
    )
}

struct Common: ParsableArguments {
    @Option(help: "Root prefix for every path (default: $QLUSTAR_ROOT or /).") var root: String?
    @Flag(help: "Print JSON for scripts.") var json = false

    func registry() throws -> Registry { try Registry(root: Root(root)) }

    func print<T: Encodable>(_ value: T, text: () -> String) throws {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            Swift.print(String(decoding: try encoder.encode(value), as: UTF8.self))
        } else {
            Swift.print(text(), terminator: "")
        }
    }
}

func describe(_ n: Node) -> String {
    "\(n.name)  \(n.ip)/\(n.prefix)  \(n.macs.joined(separator: ","))  image \(n.image ?? "-")  group \(n.group ?? "-")\n"
}

struct NodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node", abstract: "Register, list, show, change and remove nodes.",
        subcommands: [Add.self, List.self, Show.self, Set.self, Remove.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a node (DHCP will answer its MACs).")
        @OptionGroup var common: Common
        @Argument(help: "Host name.") var name: String
        @Option(help: "MAC address of a NIC (repeat for several).") var mac: [String] = []
        @Option(help: "IPv4 address, optionally with prefix length (default /24).") var ip: String
        @Option(help: "Image the node boots.") var image: String?
        @Option(help: "Group the node belongs to.") var group: String?

        func run() throws {
            let node = try common.registry().addNode(name: name, macs: mac, ip: ip, image: image, group: group)
            try common.print(node) { "registered " + describe(node) }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the registered nodes.")
        @OptionGroup var common: Common
        func run() throws {
            let nodes = try common.registry().nodes()
            try common.print(nodes) { nodes.map(describe).joined() }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one node.")
        @OptionGroup var common: Common
        @Argument(help: "Node name.") var name: String
        func run() throws {
            let node = try common.registry().node(name)
            try common.print(node) { describe(node) }
        }
    }

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change a node; what is not given stays.")
        @OptionGroup var common: Common
        @Argument(help: "Node name.") var name: String
        @Option(help: "New IPv4 address[/prefix].") var ip: String?
        @Option(help: "Image to boot ('none' to clear).") var image: String?
        @Option(help: "Group ('none' to clear).") var group: String?
        @Option(help: "Add a MAC address.") var addMac: [String] = []
        @Option(help: "Remove a MAC address.") var removeMac: [String] = []

        func run() throws {
            let node = try common.registry().setNode(
                name, ip: ip, image: image.map { $0 == "none" ? nil : $0 }, group: group.map { $0 == "none" ? nil : $0 },
                addMACs: addMac, removeMACs: removeMac)
            try common.print(node) { "changed " + describe(node) }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a node from the registry.")
        @OptionGroup var common: Common
        @Argument(help: "Node name.") var name: String
        func run() throws {
            try common.registry().removeNode(name)
            try common.print(["removed": name]) { "removed \(name)\n" }
        }
    }
}

struct GroupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "group", abstract: "Node groups.", subcommands: [Add.self, List.self, Remove.self])

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
