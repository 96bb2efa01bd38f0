import ArgumentParser
import Foundation
import NodeConfig
import NodeRegistry
import Platform
import Transport

struct NodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node", abstract: "Register, list, show, change, remove, import and export nodes.",
        discussion: HelpText.paragraphs(
            """
            Wherever a command takes nodes it takes a hostlist in Slurm's syntax: beo-[001-100,105],
            rack[1-2]-n[01-16], or names separated by commas. Lists of nodes are printed folded the
            same way.
            """),
        subcommands: [
            Add.self, List.self, Show.self, Set.self, Remove.self, Import.self, Export.self,
        ])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register nodes (DHCP will answer their MACs); addresses count up from the first.",
            discussion: HelpText.paragraphs(
                """
                With a hostlist of several names, the n-th node gets the given IP, MACs and BMC
                address plus n: 'qluman node add beo-[001-100] --ip 10.1.0.1/16 --mac
                52:54:00:01:00:01 --bmc 10.2.0.1' registers beo-001 with 10.1.0.1, 52:54:00:01:00:01,
                BMC 10.2.0.1 up to beo-100 with 10.1.0.100, 52:54:00:01:00:64, BMC 10.2.0.100. The
                whole batch is one transaction: all nodes are registered, or none and every
                conflict is listed.

                  qluman node add beo-01 --mac 52:54:00:12:34:56 --ip 192.168.52.11
                  qluman node add 'beo-[001-100]' --ip 10.1.0.1/16 \\
                      --mac 52:54:00:01:00:01 --bmc 10.2.0.1 --group compute
                """))
        @OptionGroup var common: Common
        @Argument(help: "Host name or hostlist (beo-[001-100]).") var names: String
        @Option(help: "MAC address of a NIC (repeat for several); counts up across a hostlist.") var mac: [String] = []
        @Option(help: "IPv4 address, optionally with prefix length (default /24); counts up across a hostlist.")
        var ip: String
        @Option(help: "Address of the node's BMC (IPv4[:port]); counts up across a hostlist.") var bmc: String?
        @Option(help: "Image the nodes boot.") var image: String?
        @Option(help: "Group the nodes belong to.") var group: String?
        @Option(help: "Custom boot configuration of the nodes.") var bootConfig: String?

        func run() throws {
            let specs = try NodeSpec.counting(
                names: Hostlist.expand(names), ip: ip, macs: mac, bmc: bmc, image: image, group: group,
                bootConfig: bootConfig)
            let nodes = try common.registry().addNodes(specs)
            try common.print(nodes.count == 1 ? AnyEncodable(nodes[0]) : AnyEncodable(nodes)) {
                nodes.count == 1
                    ? "registered " + describe(nodes[0])
                    : "registered \(nodes.count) nodes: \(Hostlist.fold(nodes.map(\.name)))\n"
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List registered nodes with their state: up, down (since when), never booted.",
            discussion: HelpText.paragraphs(
                """
                State comes from qlumand (its socket, root only): up when the node's qluman-execd is
                connected, down when it was seen or booted before and is silent now. Without
                qlumand the state is 'unknown'. Columns (-o): \(NodeListing.columns.joined(separator: ", ")).

                  qluman node list 'beo-[001-040]' --group compute -o name,state,last-boot
                """))
        @OptionGroup var common: Common
        @Argument(help: "Only these nodes (a hostlist).") var hosts: String?
        @Option(help: "Only the nodes of this group.") var group: String?
        @Option(help: "Only the nodes that boot this image.") var image: String?
        @Option(name: .shortAndLong, help: "Columns, separated by commas.")
        var output = "name,ip,mac,group,image,state,last-boot"
        @Option(help: "qlumand's administration socket (default <root>\(QlumanDefaults.adminSocket)).")
        var socket: String?

        func validate() throws {
            for column in output.split(separator: ",") where !NodeListing.columns.contains(String(column)) {
                throw ValidationError(
                    "unknown column '\(column)'; columns: \(NodeListing.columns.joined(separator: ", "))")
            }
        }

        func run() throws {
            let registry = try common.registry()
            var nodes = try hosts.map { try registry.nodes(named: Hostlist.expand($0)) } ?? registry.nodes()
            if let group { nodes = nodes.filter { $0.group == group } }
            if let image { nodes = nodes.filter { $0.image == image } }
            let agents: [NodeMonitor]?
            do {
                agents = try ControlClient(unixSocket: socket ?? Root(common.root).path(QlumanDefaults.adminSocket))
                    .call(QlumanOperation.nodes, [String: String](), as: [NodeMonitor].self)
            } catch {
                agents = nil
                FileHandle.standardError.write(Data("qluman: qlumand did not answer (\(error)); state unknown\n".utf8))
            }
            let now = Date().timeIntervalSince1970
            let listing = NodeListing.of(nodes, boots: try registry.currentBoots(), agents: agents, now: now)
            let columns = output.split(separator: ",").map(String.init)
            try common.print(listing) {
                let rows = [columns.map { $0.uppercased() }] + listing.map { l in columns.map { l.text($0, now: now) } }
                return Table.render(rows)
            }
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
        static let configuration = CommandConfiguration(
            abstract: "Change nodes; what is not given stays.",
            discussion: HelpText.paragraphs(
                """
                Image, group and boot configuration may be set for a whole hostlist in one
                transaction; the IP, MACs, BMC and token belong to one node. The next boot of a node
                follows its registry entry after 'qluman provision' — or use 'qluman boot set', which
                does both.
                """))
        @OptionGroup var common: Common
        @Argument(help: "Node name or hostlist.") var names: String
        @Option(help: "New IPv4 address[/prefix] (one node).") var ip: String?
        @Option(help: "Image to boot ('none' to clear).") var image: String?
        @Option(help: "Group ('none' to clear).") var group: String?
        @Option(help: "Add a MAC address (one node).") var addMac: [String] = []
        @Option(help: "Remove a MAC address (one node).") var removeMac: [String] = []
        @Option(help: "BMC address IPv4[:port] ('none' to clear; one node).") var bmc: String?
        @Option(help: "Custom boot configuration ('none': the group's, else default).") var bootConfig: String?
        @Option(help: "Enrollment token the node must present (read from this file; only its SHA-256 is stored).")
        var tokenFile: String?
        @Flag(help: "The node needs no enrollment token any more.") var clearToken = false

        func run() throws {
            let registry = try common.registry()
            let targets = try Hostlist.expand(names)
            let cleared = { (v: String?) in v.map { $0 == "none" ? nil : $0 } }
            guard targets.count == 1 else {
                guard ip == nil, addMac.isEmpty, removeMac.isEmpty, bmc == nil, tokenFile == nil, !clearToken else {
                    throw ValidationError(
                        "--ip, --add-mac, --remove-mac, --bmc and the token belong to one node, not \(targets.count)")
                }
                let nodes = try registry.setNodes(
                    targets, image: cleared(image), group: cleared(group), bootConfig: cleared(bootConfig))
                try common.print(nodes) { "changed \(nodes.count) nodes: \(Hostlist.fold(nodes.map(\.name)))\n" }
                return
            }
            let name = targets[0]
            if let tokenFile {
                let token = String(decoding: try FileSystem.readFile(tokenFile, limit: 4_096), as: UTF8.self)
                try registry.setToken(name, token: token.trimmingCharacters(in: .whitespacesAndNewlines))
            } else if clearToken {
                try registry.setToken(name, token: nil)
            }
            let node = try registry.setNode(
                name, ip: ip, image: cleared(image), group: cleared(group), bootConfig: cleared(bootConfig),
                bmc: cleared(bmc), addMACs: addMac, removeMACs: removeMac)
            try common.print(node) { "changed " + describe(node) }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm", abstract: "Remove nodes from the registry (all of them or, if one is unknown, none).")
        @OptionGroup var common: Common
        @Argument(help: "Node name or hostlist.") var names: String
        func run() throws {
            let targets = try Hostlist.expand(names)
            try common.registry().removeNodes(targets)
            let folded = Hostlist.fold(targets)
            try common.print(["removed": folded]) { "removed \(folded)\n" }
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register the nodes of a CSV or YAML table (as 'node export' writes it), all or none.",
            discussion: HelpText.paragraphs(
                """
                Columns (CSV header, YAML keys): \(NodeTable.columns.joined(separator: ", ")); name, mac and
                ip are needed. Several MACs are separated by spaces in CSV and a list in YAML. Every
                problem of the table is listed, and nothing is registered unless all rows are fine.

                  name,mac,ip,group,image,boot_config,bmc
                  beo-001,52:54:00:01:00:01,10.1.0.1/16,compute,compute,,10.2.0.1
                """))
        @OptionGroup var common: Common
        @Argument(help: "The table ('-': standard input).") var file: String
        @Option(help: "csv or yaml (default: by the file's extension).") var format: String?

        func run() throws {
            let format = try tableFormat(format, path: file)
            let bytes =
                file == "-"
                ? Array(FileHandle.standardInput.readData(ofLength: NodeTable.maxBytes + 1))
                : try FileSystem.readFile(file, limit: NodeTable.maxBytes + 1)
            guard bytes.count <= NodeTable.maxBytes else {
                throw QlustarError(.invalidArgument, "\(file) is larger than \(NodeTable.maxBytes >> 20) MiB")
            }
            let text = String(decoding: bytes, as: UTF8.self)
            let specs: [NodeSpec]
            do { specs = try NodeTable.decode(text, as: format) } catch {
                throw QlustarError(error.code, "\(file): \(error.message)")
            }
            let nodes = try common.registry().addNodes(specs)
            try common.print(nodes) { "registered \(nodes.count) nodes: \(Hostlist.fold(nodes.map(\.name)))\n" }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the registered nodes as a CSV or YAML table that 'node import' reads back.")
        @OptionGroup var common: Common
        @Argument(help: "Only these nodes (a hostlist).") var hosts: String?
        @Option(help: "csv or yaml.") var format = "csv"

        func run() throws {
            let registry = try common.registry()
            let nodes = try hosts.map { try registry.nodes(named: Hostlist.expand($0)) } ?? registry.nodes()
            print(NodeTable.encode(nodes, as: try tableFormat(format, path: nil)), terminator: "")
        }
    }
}

/// The table format given, else the one `path`'s extension names.
private func tableFormat(_ given: String?, path: String?) throws -> NodeTable.Format {
    if let given {
        guard let format = NodeTable.Format(rawValue: given.lowercased()) else {
            throw ValidationError("--format is csv or yaml, not '\(given)'")
        }
        return format
    }
    guard let path, let format = NodeTable.Format(path: path) else {
        throw ValidationError("say --format csv or --format yaml (the file name does not end in .csv or .yaml)")
    }
    return format
}

/// Rows of text as aligned columns (two spaces apart, the last one not padded).
enum Table {
    static func render(_ rows: [[String]]) -> String {
        guard let columns = rows.map(\.count).max() else { return "" }
        var widths = Array(repeating: 0, count: columns)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        return rows.map { row in
            row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  ") + "\n"
        }.joined()
    }
}

/// A value of either shape, printed as JSON by `Common.print`.
struct AnyEncodable: Encodable {
    let encode: (Encoder) throws -> Void
    init<T: Encodable>(_ value: T) { encode = value.encode }
    func encode(to encoder: Encoder) throws { try encode(encoder) }
}
