import Foundation
import Logging
import NIOConcurrencyHelpers
import Platform
import Transport

#if canImport(Glibc)
    import Glibc
#endif

/// `qluman-execd --daemon`: the node's agent. It connects out to qlumand over TLS (only a
/// certificate signed by the cluster CA for the configured address is accepted), identifies the
/// node like configure does, and long-polls for commands, sending its monitoring figures with
/// every poll. Commands: run a program (no shell) and stream its output back, or configure again.
///
/// The node listens on no port: a command can only arrive over this connection, from the
/// authenticated qlumand.
public final class ExecAgent {
    public struct Settings: Sendable {
        public var configure: ConfigureRun.Settings
        /// Seconds between reports (and the longest wait of one poll).
        public var interval = 30.0

        public init(configure: ConfigureRun.Settings) { self.configure = configure }
    }

    public let settings: Settings
    let log: Logger
    private var credentials: NodeCredentials { .init(macs: settings.configure.macs, token: settings.configure.token) }

    public init(settings: Settings, log: Logger) {
        self.settings = settings
        self.log = log
    }

    /// Serves until the process is stopped: reconnects (backing off with jitter up to 30 s)
    /// whenever the connection fails, to the first head of `ql.server=A,B` that answers.
    public func run() -> Never {
        var backoff = Backoff(first: 2, cap: 30)
        var lastFailure = ""
        while true {
            do throws(ControlFailure) {
                // The first head that answers, the first one again after every loss (`ql.server=A,B`).
                let (client, head) = try settings.configure.connect(timeout: 5)
                log.info(
                    "connected to qlumand \(settings.configure.servers[head]); reporting every \(Int(settings.interval)) s"
                )
                backoff.reset()
                lastFailure = ""
                try serve(client)
            } catch {
                // Each new reason is logged once, not at every retry.
                if error.message != lastFailure { log.error("qlumand: \(error.message); retrying") }
                lastFailure = error.message
                backoff.wait()
            }
        }
    }

    private func serve(_ client: ControlClient) throws(ControlFailure) -> Never {
        defer { client.close() }
        while true {
            let wait = AgentWaitRequest(
                credentials: credentials, report: Self.report(root: settings.configure.root), seconds: settings.interval
            )
            let reply = try client.call(
                QlumanOperation.agentWait, wait, as: AgentWaitReply.self, timeout: settings.interval + 15)
            if let command = reply.command { try execute(command, client) }
        }
    }

    private func execute(_ command: AgentCommand, _ client: ControlClient) throws(ControlFailure) {
        let result: (Int32?, String)
        switch command.kind {
        case .configure:
            log.info("job \(command.job): configure")
            do {
                // The running node's time daemon keeps the clock: no step while services run.
                var again = settings.configure
                again.timeSync = false
                let report = try ConfigureRun(settings: again, log: log).run()
                try send(
                    client, command.job,
                    Array(
                        "configured \(report.node): \(report.files) entries (\(report.classes.joined(separator: " ")))\n"
                            .utf8))
                result = (0, "ok")
            } catch let failure as ControlFailure {
                throw failure
            } catch {
                try send(client, command.job, Array("configure failed: \(error)\n".utf8))
                result = (1, "configure failed")
            }
        case .run:
            log.info("job \(command.job): run \(command.argv.joined(separator: " "))")
            result = try run(command, client)
        }
        _ = try client.call(
            QlumanOperation.agentResult,
            AgentResult(credentials: credentials, job: command.job, status: result.0, outcome: result.1),
            as: [String: String].self)
        log.info("job \(command.job): \(result.1)")
    }

    /// Runs the program, sending its output as it comes (at most every 100 ms).
    private func run(_ command: AgentCommand, _ client: ControlClient) throws(ControlFailure) -> (Int32?, String) {
        let program =
            command.argv[0].hasPrefix("/")
            ? command.argv[0] : Subprocess.locate(ConfigureRun.searchPath(command.argv[0]))
        guard program.hasPrefix("/") else {
            try send(client, command.job, Array("\(command.argv[0]): not found\n".utf8))
            return (nil, "not found")
        }
        let process: Subprocess
        do {
            process = try Subprocess(
                program, Array(command.argv.dropFirst()), directory: settings.configure.root.prefix, output: .pipe,
                errors: .sameAsOutput)
        } catch {
            try send(client, command.job, Array("cannot start \(program): \(error.message)\n".utf8))
            return (nil, "failed to start")
        }
        let deadline = Date().addingTimeInterval(command.timeoutSeconds > 0 ? command.timeoutSeconds : 3_600)
        var timedOut = false
        var lastSent = Date()
        var eof = false
        while true {
            usleep(100_000)
            var data: [UInt8] = []
            if !eof {
                if let chunk = process.readAvailable() { data = chunk } else { eof = true }
            }
            // A silent command still sends (nothing) every 10 s, so the connection never looks idle.
            if !data.isEmpty || Date().timeIntervalSince(lastSent) > 10 {
                try send(client, command.job, data)
                lastSent = Date()
            }
            if eof, process.poll() != nil { break }
            if !timedOut, Date() > deadline {
                timedOut = true
                process.kill()
            }
        }
        if timedOut { return (nil, "timed out after \(Int(command.timeoutSeconds)) s") }
        switch process.wait() {
        case .signalled(let signal): return (nil, "killed by signal \(signal)")
        case .exited(let status): return (status, status == 0 ? "ok" : "exit \(status)")
        }
    }

    private func send(_ client: ControlClient, _ job: UInt64, _ data: [UInt8]) throws(ControlFailure) {
        _ = try client.call(
            QlumanOperation.agentOutput, AgentOutput(credentials: credentials, job: job, data: Data(data)),
            as: [String: String].self)
    }

    /// Load, memory, uptime and the root file system's space, from /proc and statvfs.
    static func report(root: Root) -> NodeReport {
        func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        let load = read("/proc/loadavg").split(separator: " ").prefix(3).compactMap { Double($0) }
        var memory: [String: UInt64] = [:]
        for line in read("/proc/meminfo").split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == ":" || $0 == " " })
            if parts.count >= 2, let kib = UInt64(parts[1]) { memory[String(parts[0])] = kib * 1_024 }
        }
        var fs = statvfs()
        let haveFS = statvfs(root.prefix, &fs) == 0
        return NodeReport(
            load1: load.count == 3 ? load[0] : 0, load5: load.count == 3 ? load[1] : 0,
            load15: load.count == 3 ? load[2] : 0,
            memoryTotal: memory["MemTotal"] ?? 0, memoryAvailable: memory["MemAvailable"] ?? 0,
            uptimeSeconds: Double(read("/proc/uptime").split(separator: " ").first ?? "") ?? 0,
            diskTotal: haveFS ? UInt64(fs.f_blocks) * UInt64(fs.f_frsize) : 0,
            diskFree: haveFS ? UInt64(fs.f_bavail) * UInt64(fs.f_frsize) : 0)
    }
}
