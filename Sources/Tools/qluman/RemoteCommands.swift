import ArgumentParser
import ClusterAdmin
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
        abstract: "Run a command on nodes through their qluman-execd; one node streams, many are folded.",
        discussion: HelpText.paragraphs(
            """
            The command runs without a shell (use sh -c '…' for one), in the node's root directory.
            The node's execd must run in daemon mode; qlumand passes the command over the node's own
            TLS connection.

            On one node the output streams back and the exit status is the command's (125 when it
            was killed or could not start). On a hostlist the command runs on up to --parallel nodes
            at once, each killed after --timeout seconds; then the output is printed once per group
            of nodes that printed the same (as 'dshbak -c'), followed by the exit statuses folded by
            outcome. Exit status then: 0 when every node's command exited 0, 1 otherwise.

              qluman exec beo-01 -- uptime
              qluman exec 'beo-[001-100]' --timeout 60 -- sh -c 'dmesg | tail -1'
            """))
    @OptionGroup var admin: AdminSocket
    @Argument(help: "Node name or hostlist.") var hosts: String
    @Option(help: "Seconds before the command is killed.") var timeout = 600.0
    @Option(help: "Nodes running the command at once.") var parallel = 64
    @Argument(parsing: .postTerminator, help: "The command and its arguments (after --).") var command: [String] = []

    func validate() throws {
        guard !command.isEmpty else {
            throw ValidationError("give the command after --: qluman exec NODES -- CMD ARGS…")
        }
        guard (1...4_096).contains(parallel) else { throw ValidationError("--parallel is 1–4096") }
    }

    func run() throws {
        let nodes = try Hostlist.expand(hosts)
        if nodes.count == 1 {
            try followJob(ExecRequest(node: nodes[0], kind: .run, argv: command, timeoutSeconds: timeout), admin)
        }
        try fanOut(.run, argv: command, nodes: nodes, timeout: timeout, parallel: parallel, admin: admin)
    }
}

struct Reconfigure: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make running nodes fetch and write their configuration again (what 'qluman preview NODE' shows).",
        discussion: HelpText.paragraphs(
            """
            On a hostlist, up to --parallel nodes at once; the outcomes are folded ('configured:
            beo-[001-099]  not connected: beo-100'). Exit status: 0 when every node was configured.
            """))
    @OptionGroup var admin: AdminSocket
    @Argument(help: "Node name or hostlist.") var hosts: String
    @Option(help: "Nodes reconfiguring at once.") var parallel = 64

    func run() throws {
        let nodes = try Hostlist.expand(hosts)
        if nodes.count == 1 {
            try followJob(ExecRequest(node: nodes[0], kind: .configure, argv: [], timeoutSeconds: 300), admin)
        }
        try fanOut(.configure, argv: [], nodes: nodes, timeout: 300, parallel: parallel, admin: admin)
    }
}

/// Runs a job on many nodes and prints the folded output and outcomes; exits 1 unless all succeeded.
private func fanOut(
    _ kind: AgentCommand.Kind, argv: [String], nodes: [String], timeout: Double, parallel: Int, admin: AdminSocket
) throws {
    let client = try ControlClient(
        unixSocket: admin.socket ?? Root(admin.root).path(QlumanDefaults.adminSocket), maxBody: 16 << 20)
    let progress = Progress(total: nodes.count, what: kind == .run ? "exec" : "reconfigure")
    let results = try FanOut(parallel: parallel, timeout: timeout).run(
        kind, argv: argv, on: nodes, client: client, progress: progress.update)
    progress.finish()
    let summary = OutcomeSummary(results.map { ($0.node, $0.outcome, $0.succeeded) })
    struct Report: Encodable {
        var summary: OutcomeSummary
        var nodes: [FanOut.NodeResult]
    }
    try JSONOutput.print(Report(summary: summary, nodes: results), json: admin.json) {
        // A reconfigured node's output names it: only the failures' output is worth reading.
        let shown = kind == .configure ? results.filter { !$0.succeeded } : results
        return OutputFold.text(OutputFold.groups(shown.map { ($0.node, $0.output) })) + summary.line + "\n"
    }
    if !summary.allSucceeded { throw ExitCode(1) }
}

struct Nodes: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The nodes' agents as qlumand sees them: connected, load, memory, uptime, disk.")
    @OptionGroup var admin: AdminSocket

    func run() throws {
        let nodes = try admin.connect().call(QlumanOperation.nodes, [String: String](), as: [NodeMonitor].self)
        if admin.json {
            print(try JSONOutput.text(nodes))
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
