import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NodeConfig
import Platform
import Transport

/// The nodes' execd agents as qlumand sees them: each agent long-polls (`agent-wait`, carrying
/// its monitoring report) and gets the next command queued for it; jobs collect the output the
/// agent streams back, and administrators poll a job's output from an offset.
///
/// The agents connect out to qlumand (verifying its certificate against the cluster CA); a node
/// listens on no port, so commands reach it only from the authenticated qlumand.
final class AgentHub: Sendable {
    /// Output kept per job; beyond it the rest is dropped with a note.
    static let maxOutput = 16 << 20
    /// Finished jobs kept for late pollers.
    static let keptJobs = 1_000

    private struct Waiting {
        var promise: EventLoopPromise<ControlReply>
        var timer: Scheduled<Void>
    }

    private struct Agent {
        var waiting: Waiting?
        var queue: [AgentCommand] = []
        var report: NodeReport?
        var lastSeen: UInt64 = 0
        /// How long the agent said it waits: it is gone when silent for longer (plus slack).
        var interval: Double = 30
    }

    private struct Job {
        var node: String
        var output: [UInt8] = []
        var truncated = false
        var done = false
        var status: Int32?
        var outcome: String?
        var pollers: [(offset: Int, limit: Int, promise: EventLoopPromise<ExecPollReply>, timer: Scheduled<Void>)] = []
    }

    private struct State {
        var agents: [String: Agent] = [:]
        var jobs: [UInt64: Job] = [:]
        var finished: [UInt64] = []
        var nextJob: UInt64 = 1
    }

    private let state = NIOLockedValueBox(State())

    // MARK: - Agents

    /// An agent's long poll: stores its report, answers at once when a command waits, else when
    /// one is submitted or after `seconds` with none.
    func wait(node: String, report: NodeReport, seconds: Double, loop: EventLoop) -> EventLoopFuture<ControlReply> {
        let promise = loop.makePromise(of: ControlReply.self)
        let seconds = min(max(seconds, 1), 300)
        let timer = loop.scheduleTask(in: .milliseconds(Int64(seconds * 1_000))) { [self] in
            let expired = state.withLockedValue { s -> EventLoopPromise<ControlReply>? in
                guard let w = s.agents[node]?.waiting, w.promise.futureResult === promise.futureResult else {
                    return nil
                }
                s.agents[node]?.waiting = nil
                return w.promise
            }
            expired?.succeed(Self.reply(nil))
        }
        let (now, replaced): (AgentCommand?, Waiting?) = state.withLockedValue { s in
            var agent = s.agents[node] ?? Agent()
            agent.report = report
            agent.lastSeen = MonotonicClock.nanoseconds()
            agent.interval = seconds
            let replaced = agent.waiting
            agent.waiting = nil
            var command: AgentCommand?
            if !agent.queue.isEmpty {
                command = agent.queue.removeFirst()
            } else {
                agent.waiting = Waiting(promise: promise, timer: timer)
            }
            s.agents[node] = agent
            return (command, replaced)
        }
        // A second wait from the same node (it reconnected): the old one gets no command.
        replaced?.timer.cancel()
        replaced?.promise.succeed(Self.reply(nil))
        if let now {
            timer.cancel()
            promise.succeed(Self.reply(now))
        }
        return promise.futureResult
    }

    /// Output of `job` from `node`'s agent.
    func output(node: String, job: UInt64, data: [UInt8]) throws(ControlFailure) {
        let wake = try update(node: node, job: job) { j in
            let room = Self.maxOutput - j.output.count
            if data.count > room {
                j.output += data.prefix(max(room, 0))
                if !j.truncated { j.output += Array("\n[qlumand: output beyond 16 MiB dropped]\n".utf8) }
                j.truncated = true
            } else {
                j.output += data
            }
        }
        wake()
    }

    /// The end of `job` on `node`.
    func result(node: String, job: UInt64, status: Int32?, outcome: String) throws(ControlFailure) {
        let wake = try update(node: node, job: job) { j in
            j.done = true
            j.status = status
            j.outcome = outcome
        }
        wake()
    }

    /// Applies `change` to a job of `node` (a node may only report on its own jobs) and returns
    /// the wake-up of its pollers, to run outside the lock.
    private func update(node: String, job: UInt64, _ change: (inout Job) -> Void) throws(ControlFailure) -> () -> Void {
        let result: Result<[(Int, Int, EventLoopPromise<ExecPollReply>, Scheduled<Void>)], ControlFailure> =
            state.withLockedValue { s in
                guard var j = s.jobs[job], j.node == node, !j.done else {
                    return .failure(ControlFailure(.notFound, "no running job \(job) for node \(node)"))
                }
                change(&j)
                let pollers = j.pollers
                j.pollers = []
                if j.done {
                    s.finished.append(job)
                    if s.finished.count > Self.keptJobs { s.jobs[s.finished.removeFirst()] = nil }
                }
                s.jobs[job] = j
                return .success(pollers)
            }
        let pollers = try result.get()
        return { [self] in
            for (offset, limit, promise, timer) in pollers {
                timer.cancel()
                promise.succeed(pollReply(job, offset, limit: limit))
            }
        }
    }

    // MARK: - Administrators

    /// Queues a command for `node`'s agent.
    /// - Throws: `.notFound` when the node's agent is not connected.
    func submit(node: String, kind: AgentCommand.Kind, argv: [String], timeout: Double) throws(ControlFailure) -> UInt64
    {
        let found: Result<(AgentCommand, Waiting?), ControlFailure> = state.withLockedValue { s in
            guard var agent = s.agents[node], Self.connected(agent) else {
                return .failure(
                    ControlFailure(
                        .notFound, "node \(node)'s qluman-execd is not connected (is it running in daemon mode?)"))
            }
            let job = s.nextJob
            s.nextJob += 1
            s.jobs[job] = Job(node: node)
            let command = AgentCommand(job: job, kind: kind, argv: argv, timeoutSeconds: timeout)
            let waiting = agent.waiting
            agent.waiting = nil
            if waiting == nil { agent.queue.append(command) }
            s.agents[node] = agent
            return .success((command, waiting))
        }
        let (command, deliver) = try found.get()
        if let deliver {
            deliver.timer.cancel()
            deliver.promise.succeed(Self.reply(command))
        }
        return command.job
    }

    /// A job's output from `offset`: at once when there is some (or it is done), else within a second.
    func poll(job: UInt64, offset: Int, loop: EventLoop) -> EventLoopFuture<ControlReply> {
        pollValue(job: job, offset: offset, loop: loop).map { .json(canonicalJSON($0)) }
    }

    /// Several jobs' output at once (`qluman exec HOSTLIST`): each as `poll` answers it, all
    /// within a second; a job that is not known (any more) is answered as done, outcome "lost".
    func pollMany(_ polls: [ExecPollRequest], loop: EventLoop) -> EventLoopFuture<ControlReply> {
        let futures = polls.map {
            pollValue(job: $0.job, offset: $0.offset, limit: Self.maxPollManyData, loop: loop)
        }
        return EventLoopFuture.whenAllComplete(futures, on: loop).map { results in
            .json(
                canonicalJSON(
                    zip(polls, results).map { poll, result in
                        (try? result.get())
                            ?? ExecPollReply(
                                data: Data(), offset: poll.offset, done: true, status: nil, outcome: "lost")
                    }))
        }
    }

    private func pollValue(job: UInt64, offset: Int, limit: Int = maxPollData, loop: EventLoop)
        -> EventLoopFuture<ExecPollReply>
    {
        let promise = loop.makePromise(of: ExecPollReply.self)
        let timer = loop.scheduleTask(in: .seconds(1)) { [self] in
            let mine = state.withLockedValue { s -> Bool in
                guard
                    let index = s.jobs[job]?.pollers.firstIndex(where: {
                        $0.promise.futureResult === promise.futureResult
                    })
                else {
                    return false
                }
                s.jobs[job]?.pollers.remove(at: index)
                return true
            }
            if mine { promise.succeed(pollReply(job, offset, limit: limit)) }
        }
        let now: Bool? = state.withLockedValue { s in
            guard let j = s.jobs[job] else { return nil }
            if j.done || j.output.count > offset { return true }
            s.jobs[job]?.pollers.append((offset, limit, promise, timer))
            return false
        }
        switch now {
        case nil:
            timer.cancel()
            promise.fail(ControlFailure(.notFound, "no job \(job)"))
        case true?:
            timer.cancel()
            promise.succeed(pollReply(job, offset, limit: limit))
        case false?:
            break
        }
        return promise.futureResult
    }

    /// The most output one poll answers with (the poller continues from the offset it gets),
    /// so that a reply stays below a control frame's bound: 256 KiB for one job, 64 KiB per job
    /// of a `pollMany` (of at most `ExecPollRequest.maxPerRequest` jobs).
    static let maxPollData = 256 << 10
    static let maxPollManyData = 64 << 10

    private func pollReply(_ job: UInt64, _ offset: Int, limit: Int = maxPollData) -> ExecPollReply {
        state.withLockedValue { s -> ExecPollReply in
            guard let j = s.jobs[job] else {
                return ExecPollReply(data: Data(), offset: offset, done: true, status: nil, outcome: "lost")
            }
            let start = min(max(offset, 0), j.output.count)
            let end = min(j.output.count, start + limit)
            return ExecPollReply(
                data: Data(j.output[start..<end]), offset: end, done: j.done && end == j.output.count,
                status: j.status, outcome: j.outcome)
        }
    }

    /// Every agent qlumand has heard from.
    func monitor() -> [NodeMonitor] {
        let now = MonotonicClock.nanoseconds()
        return state.withLockedValue { s in
            s.agents.keys.sorted().map { node in
                let a = s.agents[node]!
                return NodeMonitor(
                    node: node, connected: Self.connected(a),
                    secondsSinceSeen: Double(now.subtractingClamped(a.lastSeen)) / 1e9,
                    report: a.report)
            }
        }
    }

    private static func connected(_ agent: Agent) -> Bool {
        agent.waiting != nil
            || Double(MonotonicClock.nanoseconds().subtractingClamped(agent.lastSeen)) / 1e9 < agent.interval + 10
    }

    private static func reply(_ command: AgentCommand?) -> ControlReply {
        .json(canonicalJSON(AgentWaitReply(command: command)))
    }
}

extension UInt64 {
    /// `self − other`, 0 when `other` is later: `now` read before the lock and a `lastSeen` set by
    /// another thread just after must not trap.
    func subtractingClamped(_ other: UInt64) -> UInt64 { self > other ? self - other : 0 }
}
