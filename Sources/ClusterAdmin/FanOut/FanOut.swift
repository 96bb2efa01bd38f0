import Foundation
import NodeConfig
import Platform
import Transport

/// One command on many nodes through qlumand (`qluman exec HOSTLIST -- CMD`, `qluman reconfigure
/// HOSTLIST`): at most `parallel` jobs at once, each node's command killed by its agent after
/// `timeout` seconds, a node whose agent does not answer given up `grace` seconds later. All jobs
/// are polled together (`exec-poll-many`) on one connection, so a thousand nodes cost one request
/// per second, not one per node.
public struct FanOut: Sendable {
    /// One node's end.
    public struct NodeResult: Codable, Sendable, Equatable {
        public var node: String
        /// The command's exit status, when it exited.
        public var status: Int32?
        /// `exit 0`, `exit 3`, `timeout`, `killed by signal 9`, `not found`, `configured`,
        /// `configure failed`, `not connected`, `not registered`, `no answer`, `lost`.
        public var outcome: String
        public var output: String
        /// Output beyond `maxOutput` was dropped.
        public var truncated: Bool
        public var seconds: Double
        public var succeeded: Bool
    }

    /// Output kept per node.
    public static let maxOutput = 1 << 20

    public var parallel: Int
    public var timeout: Double
    public var grace: Double = 15

    public init(parallel: Int = 64, timeout: Double = 600) {
        self.parallel = max(1, parallel)
        self.timeout = timeout
    }

    /// Runs `kind`/`argv` on `nodes` through the qlumand behind `client`; results in the nodes' order.
    /// - Throws: `ControlFailure` when qlumand itself fails (a node's trouble is its result).
    public func run(
        _ kind: AgentCommand.Kind, argv: [String], on nodes: [String], client: ControlClient,
        progress: (Int) -> Void = { _ in }
    ) throws(ControlFailure) -> [NodeResult] {
        struct Running {
            var index: Int
            var job: UInt64
            var offset = 0
            var output: [UInt8] = []
            var truncated = false
            var started: UInt64
        }
        var results = [NodeResult?](repeating: nil, count: nodes.count)
        var running: [Running] = []
        var next = 0
        var done = 0
        let giveUp = UInt64(max(0, min(timeout + grace, 1e6)) * 1e9)
        func finish(_ index: Int, status: Int32?, outcome: String, output: [UInt8], truncated: Bool, started: UInt64?) {
            let seconds = started.map { Double(MonotonicClock.nanoseconds() &- $0) / 1e9 } ?? 0
            let name = Self.outcomeName(kind, status: status, outcome: outcome)
            results[index] = NodeResult(
                node: nodes[index], status: status, outcome: name, output: String(decoding: output, as: UTF8.self),
                truncated: truncated, seconds: seconds, succeeded: name == "exit 0" || name == "configured")
            done += 1
            progress(done)
        }
        while done < nodes.count {
            while running.count < parallel, next < nodes.count {
                let request = ExecRequest(node: nodes[next], kind: kind, argv: argv, timeoutSeconds: timeout)
                do {
                    let started = try client.call(QlumanOperation.exec, request, as: ExecStarted.self)
                    running.append(Running(index: next, job: started.job, started: MonotonicClock.nanoseconds()))
                } catch  where error.code == .notFound {
                    // Named by kind, without the node's name, so that nodes alike fold together.
                    let (outcome, text) =
                        error.message.contains("is not connected")
                        ? ("not connected", "its qluman-execd is not connected (is it running in daemon mode?)")
                        : error.message.contains("registered")
                            ? ("not registered", "not a registered node") : ("not found", error.message)
                    finish(
                        next, status: nil, outcome: outcome, output: Array((text + "\n").utf8), truncated: false,
                        started: nil)
                }
                next += 1
            }
            var still: [Running] = []
            for chunk in stride(from: 0, to: running.count, by: ExecPollRequest.maxPerRequest) {
                let batch = Array(running[chunk..<min(running.count, chunk + ExecPollRequest.maxPerRequest)])
                let replies = try client.call(
                    QlumanOperation.execPollMany,
                    ExecPollManyRequest(polls: batch.map { ExecPollRequest(job: $0.job, offset: $0.offset) }),
                    as: [ExecPollReply].self, timeout: 30)
                guard replies.count == batch.count else {
                    throw ControlFailure(.framing, "qlumand answered \(replies.count) polls for \(batch.count)")
                }
                for (var r, reply) in zip(batch, replies) {
                    let room = Self.maxOutput - r.output.count
                    r.output += reply.data.prefix(max(0, room))
                    r.truncated = r.truncated || reply.data.count > room
                    r.offset = max(r.offset, reply.offset)
                    if reply.done {
                        finish(
                            r.index, status: reply.status, outcome: reply.outcome ?? "lost", output: r.output,
                            truncated: r.truncated, started: r.started)
                    } else if MonotonicClock.nanoseconds() &- r.started > giveUp {
                        finish(
                            r.index, status: nil, outcome: "no answer", output: r.output, truncated: r.truncated,
                            started: r.started)
                    } else {
                        still.append(r)
                    }
                }
            }
            running = still
        }
        return results.compactMap { $0 }
    }

    /// The outcome as the summary names it.
    static func outcomeName(_ kind: AgentCommand.Kind, status: Int32?, outcome: String) -> String {
        if kind == .configure { return outcome == "ok" ? "configured" : outcome }
        if let status { return "exit \(status)" }
        if outcome.hasPrefix("timed out") { return "timeout" }
        return outcome
    }
}
