import ArgumentParser
import Foundation
import Logging
import NodeConfig
import NodeRegistry
import Platform
import QlumanServer
import Transport

struct Preview: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show exactly what qluman-execd --configure writes to a node (or write it into a directory).",
        discussion: HelpText.paragraphs(
            """
            Uses the same code as qlumand and qluman-execd, so the preview is the result: every file
            with owner, group, mode and content, every link and directory, and the commands run
            (ipmitool). The node's OS family decides the network files and its time daemon the NTP
            configuration; by default both are what the node reported at its last configure, else
            debian with systemd-timesyncd.

              qluman preview beo-01
              qluman preview beo-01 --dir /tmp/beo-01    the files, as the node gets them
            """))
    @OptionGroup var common: Common
    @Argument(help: "Node name.") var node: String
    @Option(help: "debian or redhat (default: as last reported by the node, else debian).") var osFamily: String?
    @Option(help: "chrony, timesyncd or none (default: as last reported by the node, else timesyncd).") var timeDaemon:
        String?
    @Option(help: "Write the files below this directory instead of printing them (owners need root).") var dir: String?

    func run() throws {
        let root = Root(common.root)
        let registry = try common.registry()
        let node = try registry.node(self.node)
        var facts = try registry.lastFacts(node.name) ?? .assumed
        if let osFamily {
            guard let f = OSFamily(rawValue: osFamily) else {
                throw ValidationError("--os-family must be debian or redhat")
            }
            facts.osFamily = f
        }
        if let timeDaemon {
            guard let t = TimeDaemon(rawValue: timeDaemon) else {
                throw ValidationError("--time-daemon must be chrony, timesyncd or none")
            }
            facts.timeDaemon = t
        }
        let family = facts.osFamily
        let source = NodeConfigSource(
            root: root, registry: registry, log: Logger(root: root, name: "qluman", echo: false))
        let plan = try source.plan(node, facts: facts)
        if let dir {
            let outcome = try plan.write(below: dir)
            try common.print(["node": node.name, "dir": dir, "entries": "\(outcome.written)"]) {
                "wrote \(outcome.written) entries for \(node.name) (\(family.rawValue)) below \(dir)"
                    + (outcome.ownersNotSet > 0 ? "; owners of \(outcome.ownersNotSet) left unset (not root)" : "")
                    + "\n"
            }
            return
        }
        try common.print(PreviewJSON(node: node.name, family: family, plan: plan)) {
            Self.text(node.name, family, plan)
        }
    }

    static func text(_ node: String, _ family: OSFamily, _ plan: FilePlan) -> String {
        var out =
            "# qluman-execd --configure on \(node) (\(family.rawValue)): \(plan.entries.count) entries, "
            + (plan.edits.isEmpty ? "" : "\(plan.edits.count) line edits, ") + "\(plan.actions.count) commands\n"
        for e in plan.entries {
            let owner = "\(e.uid):\(e.gid)"
            switch e.content {
            case .file(let bytes):
                out += "\n== \(e.path)  file \(String(e.mode, radix: 8)) \(owner)  (\(e.origin))\n"
                if bytes.contains(0) || String(validating: bytes, as: UTF8.self) == nil {
                    out += "(\(bytes.count) bytes, binary, sha256 \(bytes.withUnsafeBytes { SHA256.hash($0) }))\n"
                } else {
                    let text = String(decoding: bytes, as: UTF8.self)
                    out += text + (text.hasSuffix("\n") || text.isEmpty ? "" : "\n(no newline at end)\n")
                }
            case .directory:
                out += "\n== \(e.path)/  directory \(String(e.mode, radix: 8)) \(owner)  (\(e.origin))\n"
            case .symlink(let target):
                out += "\n== \(e.path) -> \(target)  link \(owner)  (\(e.origin))\n"
            }
        }
        for e in plan.edits {
            out +=
                "\n== edit \(e.path): lines starting '\(e.key)' become (or, none, append)  (\(e.origin))\n\(e.line)\n"
        }
        for a in plan.actions {
            out += "\n== run: \(a.program) \(a.arguments.joined(separator: " "))  (\(a.description))\n"
        }
        return out
    }
}

/// The preview for scripts: entries with their content's digest (and text when it is text).
struct PreviewJSON: Encodable {
    struct Entry: Encodable {
        var path: String
        var type: String
        var mode: String
        var uid: UInt32
        var gid: UInt32
        var origin: String
        var size: Int?
        var sha256: String?
        var target: String?
    }

    var node: String
    var osFamily: String
    var entries: [Entry]
    var edits: [[String: String]]
    var commands: [[String]]

    init(node: String, family: OSFamily, plan: FilePlan) {
        self.node = node
        osFamily = family.rawValue
        entries = plan.entries.map { e in
            var out = Entry(
                path: e.path, type: "", mode: String(e.mode, radix: 8), uid: e.uid, gid: e.gid, origin: e.origin)
            switch e.content {
            case .file(let bytes):
                out.type = "file"
                out.size = bytes.count
                out.sha256 = bytes.withUnsafeBytes { SHA256.hash($0) }.description
            case .directory: out.type = "directory"
            case .symlink(let t):
                out.type = "symlink"
                out.target = t
            }
            return out
        }
        edits = plan.edits.map { ["path": $0.path, "key": $0.key, "line": $0.line, "origin": $0.origin] }
        commands = plan.actions.map { [$0.program] + $0.arguments }
    }
}
