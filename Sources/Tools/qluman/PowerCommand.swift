import ArgumentParser
import ClusterAdmin
import Foundation
import NodeRegistry
import Platform

#if canImport(Glibc)
    import Glibc
#endif

struct PowerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "power",
        abstract: "Power nodes on, off, cycle or reset them, or ask their state, through their BMCs (IPMI).",
        discussion: HelpText.paragraphs(
            """
            Each node's BMC is the address registered with it (qluman node add/set --bmc), else the one its
            ipmi config gives. The BMCs are asked with ipmitool over IPMI 2.0 (lanplus), many at once
            (--parallel), each for at most --timeout seconds; the results are folded by outcome. User and
            password come from <root>/etc/qlustar/bmc-credentials (mode 0600, set with 'qluman power
            credentials'); the password reaches ipmitool through its environment, never its command line.

              qluman power status 'beo-[001-100]'
              qluman power cycle beo-007
              qluman power credentials --user ADMIN --password-file /root/bmc.pw

            Exit status: 0 when every node's BMC did it (for status: answered), 1 when any did not, 64
            for a mistake in the command.
            """),
        subcommands: [Run.self, Credentials.self], defaultSubcommand: Run.self)

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run", abstract: "on|off|cycle|reset|status HOSTLIST (the default: 'qluman power on n1').")
        @OptionGroup var common: Common
        @Argument(help: "on, off, cycle, reset or status.") var action: String
        @Argument(help: "The nodes (a hostlist).") var hosts: String
        @Option(help: "BMCs asked at once.") var parallel = 64
        @Option(help: "Seconds one BMC may take.") var timeout = 10.0

        func validate() throws {
            guard PowerControl.Action(rawValue: action) != nil else {
                throw ValidationError("the action is on, off, cycle, reset or status, not '\(action)'")
            }
            guard (1...1_024).contains(parallel) else { throw ValidationError("--parallel is 1–1024") }
            guard timeout > 0, timeout <= 600 else { throw ValidationError("--timeout is more than 0 and at most 600") }
        }

        func run() throws {
            let action = PowerControl.Action(rawValue: action) ?? .status
            let root = Root(common.root)
            let registry = try common.registry()
            let nodes = try registry.nodes(named: Hostlist.expand(hosts))
            let credentials = try BMCCredentials.load(root: root)
            var control = PowerControl(parallel: parallel, timeout: timeout)
            control.ipmitool = Subprocess.locate(["/usr/bin/ipmitool", "/usr/sbin/ipmitool"])
            let progress = Progress(total: nodes.count, what: "power \(action.rawValue)")
            let results = control.run(
                action, on: PowerControl.targets(nodes, registry: registry), credentials: credentials,
                progress: progress.update)
            progress.finish()
            let summary = OutcomeSummary(results.map { ($0.node, $0.outcome, $0.succeeded) })
            struct Report: Encodable {
                var action: String
                var summary: OutcomeSummary
                var nodes: [PowerControl.Result]
            }
            try common.print(Report(action: action.rawValue, summary: summary, nodes: results)) {
                var text = summary.line + "\n"
                // Why the failures failed: one line per distinct reason.
                var reasons: [String: [String]] = [:]
                for r in results where !r.succeeded { reasons[r.detail ?? r.outcome, default: []].append(r.node) }
                for (reason, nodes) in reasons.sorted(by: { $0.value.count > $1.value.count }) {
                    text += "  \(Hostlist.fold(nodes)): \(reason)\n"
                }
                return text
            }
            if !summary.allSucceeded { throw ExitCode(1) }
        }
    }

    struct Credentials: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Store the BMC user and password for all nodes or a hostlist (or --list what is stored).",
            discussion: HelpText.paragraphs(
                """
                The password is read from a file (or '-' for standard input), never from the command line,
                and stored in <root>/etc/qlustar/bmc-credentials with mode 0600. Without HOSTLIST the entry
                holds for every node that has none of its own.
                """))
        @OptionGroup var common: Common
        @Argument(help: "The nodes these credentials are for (default: every node).") var hosts: String?
        @Option(help: "BMC user name.") var user: String?
        @Option(help: "File holding the password ('-': standard input).") var passwordFile: String?
        @Option(help: "RMCP+ cipher suite (3 works with most BMCs; 17 is HMAC-SHA256).") var cipher = 3
        @Flag(help: "List the stored entries (hosts, user, cipher; never passwords).") var list = false

        func validate() throws {
            guard list || (user != nil && passwordFile != nil) else {
                throw ValidationError("give --user and --password-file, or --list")
            }
            guard (0...17).contains(cipher) else { throw ValidationError("--cipher is an RMCP+ cipher suite, 0–17") }
            if let hosts { _ = try Hostlist.expand(hosts) }
        }

        func run() throws {
            let root = Root(common.root)
            var credentials = try BMCCredentials.load(root: root)
            if let user, let passwordFile {
                let bytes =
                    passwordFile == "-"
                    ? Array(FileHandle.standardInput.readData(ofLength: 4_096))
                    : try FileSystem.readFile(passwordFile, limit: 4_096)
                let password = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .newlines)
                guard !password.isEmpty, !password.contains("\n") else {
                    throw ValidationError("\(passwordFile) must hold the password on one line")
                }
                credentials.set(.init(hosts: hosts, user: user, password: password, cipher: cipher))
                try credentials.save(root: root)
            }
            struct Shown: Encodable {
                var hosts: String
                var user: String
                var cipher: Int
            }
            let shown = credentials.entries.map {
                Shown(hosts: $0.hosts ?? "(every node)", user: $0.user, cipher: $0.cipher)
            }
            try common.print(shown) {
                Table.render([["HOSTS", "USER", "CIPHER"]] + shown.map { [$0.hosts, $0.user, String($0.cipher)] })
            }
        }
    }
}

/// "what: done/total" on standard error, rewritten in place, when that is a terminal.
final class Progress {
    let total: Int
    let what: String
    let shown: Bool

    init(total: Int, what: String) {
        self.total = total
        self.what = what
        shown = isatty(2) != 0 && total > 1
    }

    func update(_ done: Int) {
        guard shown else { return }
        FileHandle.standardError.write(Data("\r\(what): \(done)/\(total)".utf8))
    }

    func finish() {
        guard shown else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
