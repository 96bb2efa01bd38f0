import ArgumentParser
import Foundation
import NodeConfig
import Platform
import Transport

#if canImport(Glibc)
    import Glibc
#endif

/// How qluman reaches a running qlumand: its administration socket (root only).
struct AdminSocket: ParsableArguments {
    @Option(help: "Root prefix for every path (default: $QLUSTAR_ROOT or /).") var root: String?
    @Option(help: "qlumand's administration socket (default <root>\(QlumanDefaults.adminSocket)).") var socket: String?
    @Flag(help: "Print JSON for scripts.") var json = false

    func connect() throws -> ControlClient {
        try ControlClient(unixSocket: socket ?? Root(root).path(QlumanDefaults.adminSocket))
    }
}

/// Starts a job on a node's agent and prints its output as it arrives; exits with its status.
func followJob(_ request: ExecRequest, _ admin: AdminSocket) throws -> Never {
    let client = try admin.connect()
    let started = try client.call(QlumanOperation.exec, request, as: ExecStarted.self)
    var offset = 0
    while true {
        let poll = try client.call(
            QlumanOperation.execPoll, ExecPollRequest(job: started.job, offset: offset), as: ExecPollReply.self,
            timeout: 15)
        if !poll.data.isEmpty {
            FileHandle.standardOutput.write(poll.data)
        }
        offset = poll.offset
        if poll.done {
            if poll.status != 0 {
                FileHandle.standardError.write(Data("qluman: \(request.node): \(poll.outcome ?? "failed")\n".utf8))
            }
            exit(poll.status ?? 125)
        }
    }
}

struct Exec: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Run a command on a node through its qluman-execd; output streams back, the exit status is the command's.",
        discussion: HelpText.paragraphs(
            """
            The command runs without a shell (use sh -c '…' for one), in the node's root directory.
            The node's execd must run in daemon mode; qlumand passes the command over the node's own
            TLS connection. Exit status: the command's; 125 when it was killed or could not start.

              qluman exec beo-01 -- uptime
              qluman exec beo-01 --timeout 60 -- sh -c 'dmesg | tail'
            """))
    @OptionGroup var admin: AdminSocket
    @Argument(help: "Node name.") var node: String
    @Option(help: "Seconds before the command is killed.") var timeout = 600.0
    @Argument(parsing: .postTerminator, help: "The command and its arguments (after --).") var command: [String] = []

    func validate() throws {
        guard !command.isEmpty else {
            throw ValidationError("give the command after --: qluman exec NODE -- CMD ARGS…")
        }
    }

    func run() throws {
        try followJob(ExecRequest(node: node, kind: .run, argv: command, timeoutSeconds: timeout), admin)
    }
}

struct Reconfigure: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a running node fetch and write its configuration again (what 'qluman preview NODE' shows).")
    @OptionGroup var admin: AdminSocket
    @Argument(help: "Node name.") var node: String

    func run() throws {
        try followJob(ExecRequest(node: node, kind: .configure, argv: [], timeoutSeconds: 300), admin)
    }
}

struct Nodes: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The nodes' agents as qlumand sees them: connected, load, memory, uptime, disk.")
    @OptionGroup var admin: AdminSocket

    func run() throws {
        let nodes = try admin.connect().call(QlumanOperation.nodes, [String: String](), as: [NodeMonitor].self)
        if admin.json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(nodes), as: UTF8.self))
            return
        }
        print("NODE              AGENT     SEEN   LOAD(1/5/15)        MEM FREE/TOTAL     UPTIME   DISK FREE/TOTAL")
        for n in nodes {
            let seen = n.secondsSinceSeen.map { String(format: "%.0fs", $0) } ?? "-"
            guard let r = n.report else {
                print(
                    n.node.padding(toLength: 18, withPad: " ", startingAt: 0)
                        + (n.connected ? "connected" : "gone     ") + "  \(seen)")
                continue
            }
            let gib = { (b: UInt64) in String(format: "%.1f", Double(b) / Double(1 << 30)) }
            print(
                n.node.padding(toLength: 18, withPad: " ", startingAt: 0) + (n.connected ? "connected" : "gone     ")
                    + "  " + seen.padding(toLength: 5, withPad: " ", startingAt: 0)
                    + String(format: "  %.2f/%.2f/%.2f", r.load1, r.load5, r.load15)
                    + "    \(gib(r.memoryAvailable))/\(gib(r.memoryTotal)) GiB"
                    + String(format: "   %6.1fh", r.uptimeSeconds / 3_600)
                    + "   \(gib(r.diskFree))/\(gib(r.diskTotal)) GiB")
        }
    }
}
