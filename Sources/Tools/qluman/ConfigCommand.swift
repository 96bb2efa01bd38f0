import ArgumentParser
import Foundation
import NodeConfig
import NodeRegistry
import Platform

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Config classes: named configurations assigned to groups and, overriding them, to nodes.",
        discussion: HelpText.paragraphs(
            """
            Classes: \(ConfigClass.allCases.map { $0.rawValue + ($0.allowsSeveral ? " (several per node)" : "") }.joined(separator: ", ")).
            Bodies are JSON, given with --body or --file; 'qluman config example [CLASS]' prints an
            example body of each class.

            A node gets, per class, its own assignments; only when it has none, its group's.
            Addresses in network and ipmi configs given as a network (10.1.0.0/16) follow each node's
            host number of its boot address. Root FS Customization trees live in
            <root>/var/lib/qlustar/root-fs/NAME (qlustar-image-edit -r -e NAME PATH).

              qluman config example network > net.json     (edit it)
              qluman config add network compute-net --file net.json
              qluman config assign network compute-net --group compute
              qluman preview beo-01
            """),
        subcommands: [Add.self, List.self, Show.self, Remove.self, Assign.self, Unassign.self, Example.self])

    struct Example: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print an example body of a class (or of every class, one per line).")
        @Argument(help: "The class (default: every class).") var configClass: String?

        func run() throws {
            let classes = try configClass.map { [try ConfigClass(parsing: $0)] } ?? ConfigClass.allCases
            for c in classes {
                print(
                    configClass == nil
                        ? "\(c.rawValue)\(c.allowsSeveral ? " (several per node)" : ""): \(c.example)" : c.example)
            }
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Define (or redefine) a config of a class.")
        @OptionGroup var common: Common
        @Argument(help: "The class (\(ConfigClass.allCases.map(\.rawValue).joined(separator: ", "))).") var configClass:
            String
        @Argument(help: "The config's name.") var name: String
        @Option(help: "The body as JSON.") var body: String?
        @Option(help: "A file holding the body as JSON.") var file: String?

        func validate() throws {
            guard (body == nil) != (file == nil) else {
                throw ValidationError("give the body with exactly one of --body and --file")
            }
        }

        func run() throws {
            let cls = try ConfigClass(parsing: configClass)
            let bytes = try body.map { Array($0.utf8) } ?? FileSystem.readFile(file!, limit: 1 << 20)
            let stored = try common.registry().putConfig(cls, name: name, json: bytes)
            try common.print(stored) { "\(cls.rawValue) config \(stored.name): \(stored.body)\n" }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List configs (of one class) and where they are assigned.")
        @OptionGroup var common: Common
        @Argument(help: "Only this class.") var configClass: String?
        func run() throws {
            let configs = try common.registry().configs(configClass.map { try ConfigClass(parsing: $0) })
            try common.print(configs) {
                configs.map {
                    "\($0.configClass.rawValue)  \($0.name)  assigned to \($0.assignedTo.isEmpty ? "-" : $0.assignedTo.joined(separator: " "))\n"
                }
                .joined()
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one config's body and assignments.")
        @OptionGroup var common: Common
        @Argument var configClass: String
        @Argument var name: String
        func run() throws {
            let c = try common.registry().config(try ConfigClass(parsing: configClass), name)
            try common.print(c) {
                "\(c.body)\nassigned to: \(c.assignedTo.isEmpty ? "-" : c.assignedTo.joined(separator: " "))\n"
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm", abstract: "Remove a config that nothing is assigned to.")
        @OptionGroup var common: Common
        @Argument var configClass: String
        @Argument var name: String
        func run() throws {
            try common.registry().removeConfig(try ConfigClass(parsing: configClass), name)
            try common.print(["removed": name]) { "removed \(configClass) config \(name)\n" }
        }
    }

    struct Target: ParsableArguments {
        @Option(help: "A group.") var group: String?
        @Option(help: "A node (overrides its group's config of this class).") var node: String?

        func validate() throws {
            guard (group == nil) != (node == nil) else {
                throw ValidationError("give exactly one of --group and --node")
            }
        }

        var target: ConfigTarget { group.map(ConfigTarget.group) ?? .node(node!) }
        var text: String { group.map { "group \($0)" } ?? "node \(node!)" }
    }

    struct Assign: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Assign a config to a group or a node (replacing the target's config of a single-valued class).")
        @OptionGroup var common: Common
        @Argument var configClass: String
        @Argument var name: String
        @OptionGroup var target: Target
        func run() throws {
            try common.registry().assign(try ConfigClass(parsing: configClass), name, to: target.target)
            try common.print(["assigned": name, "to": target.text]) {
                "assigned \(configClass) config \(name) to \(target.text)\n"
            }
        }
    }

    struct Unassign: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Take a config away from a group or a node.")
        @OptionGroup var common: Common
        @Argument var configClass: String
        @Argument var name: String
        @OptionGroup var target: Target
        func run() throws {
            try common.registry().unassign(try ConfigClass(parsing: configClass), name, from: target.target)
            try common.print(["unassigned": name, "from": target.text]) {
                "unassigned \(configClass) config \(name) from \(target.text)\n"
            }
        }
    }
}
