import Foundation

/// The control-channel operations of qlumand (framing: `docs/PROTOCOL.md`, operations:
/// `docs/QLUMAN.md`). Always over TLS: node configurations carry keys and secrets.
public enum QlumanOperation {
    /// A node asks for its configuration (`ConfigureRequest` → data answer: `ConfigureReply`
    /// JSON, then the Root FS Customization archives back to back).
    public static let configure = "configure"
    /// An administrator asks for counters (`QlumandStatus`).
    public static let status = "status"
}

/// What a node sends with `configure`. The node is identified by the address it connects from;
/// the MACs must include one registered for that node, and the token must match when the node
/// has one.
public struct ConfigureRequest: Codable, Sendable, Equatable {
    public var macs: [String]
    /// The enrollment token, when the node has been given one (never logged).
    public var token: String?
    public var osFamily: OSFamily
    /// The image's time daemon (absent from older agents).
    public var timeDaemon: TimeDaemon?
    public var hostname: String?

    public init(macs: [String], token: String?, facts: NodeFacts, hostname: String?) {
        self.macs = macs
        self.token = token
        osFamily = facts.osFamily
        timeDaemon = facts.timeDaemon
        self.hostname = hostname
    }

    public var facts: NodeFacts {
        NodeFacts(osFamily: osFamily, timeDaemon: timeDaemon ?? NodeFacts.assumed.timeDaemon)
    }
}

public struct ConfigureReply: Codable, Sendable, Equatable {
    public var options: NodeOptions
    public init(options: NodeOptions) { self.options = options }
}

/// qlumand's counters.
public struct QlumandStatus: Codable, Sendable, Equatable {
    public var configured: UInt64 = 0
    /// Of those, answered with the node's last configuration while the registry could not be read.
    public var configuredFromMemory: UInt64 = 0
    /// Refused configure requests by reason (unknown-address, mac-mismatch, token, invalid).
    public var refused: [String: UInt64] = [:]
    public var failed: UInt64 = 0
    public var rootFSArchivesBuilt: UInt64 = 0
    public var nodes: Int = 0
    public var connections: UInt64 = 0
    public var framingErrors: UInt64 = 0
    public var tlsErrors: UInt64 = 0

    public init() {}
}

// MARK: - Daemon mode (execd agent ↔ qlumand) and administration (qluman ↔ qlumand's socket)

/// What identifies a node on every agent request (with the address it connects from).
public struct NodeCredentials: Codable, Sendable, Equatable {
    public var macs: [String]
    public var token: String?

    public init(macs: [String], token: String?) {
        self.macs = macs
        self.token = token
    }
}

/// A node's monitoring figures, sent with every `agent-wait`.
public struct NodeReport: Codable, Sendable, Equatable {
    public var load1: Double
    public var load5: Double
    public var load15: Double
    public var memoryTotal: UInt64
    public var memoryAvailable: UInt64
    public var uptimeSeconds: Double
    /// The root file system (below the root prefix).
    public var diskTotal: UInt64
    public var diskFree: UInt64

    public init(
        load1: Double, load5: Double, load15: Double, memoryTotal: UInt64, memoryAvailable: UInt64,
        uptimeSeconds: Double, diskTotal: UInt64, diskFree: UInt64
    ) {
        self.load1 = load1
        self.load5 = load5
        self.load15 = load15
        self.memoryTotal = memoryTotal
        self.memoryAvailable = memoryAvailable
        self.uptimeSeconds = uptimeSeconds
        self.diskTotal = diskTotal
        self.diskFree = diskFree
    }
}

/// `agent-wait`: the agent reports and waits up to `seconds` for a command.
public struct AgentWaitRequest: Codable, Sendable {
    public var credentials: NodeCredentials
    public var report: NodeReport
    public var seconds: Double

    public init(credentials: NodeCredentials, report: NodeReport, seconds: Double) {
        self.credentials = credentials
        self.report = report
        self.seconds = seconds
    }
}

/// A command for a node's agent.
public struct AgentCommand: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// Run `argv` (no shell), streaming its output back.
        case run
        /// Fetch and write the node's configuration again (as `--configure`).
        case configure
    }

    public var job: UInt64
    public var kind: Kind
    public var argv: [String]
    public var timeoutSeconds: Double

    public init(job: UInt64, kind: Kind, argv: [String], timeoutSeconds: Double) {
        self.job = job
        self.kind = kind
        self.argv = argv
        self.timeoutSeconds = timeoutSeconds
    }
}

public struct AgentWaitReply: Codable, Sendable {
    public var command: AgentCommand?
    public init(command: AgentCommand?) { self.command = command }
}

/// `agent-output`: a chunk of a running job's output (standard output and error, interleaved).
public struct AgentOutput: Codable, Sendable {
    public var credentials: NodeCredentials
    public var job: UInt64
    public var data: Data

    public init(credentials: NodeCredentials, job: UInt64, data: Data) {
        self.credentials = credentials
        self.job = job
        self.data = data
    }
}

/// `agent-result`: how a job ended.
public struct AgentResult: Codable, Sendable {
    public var credentials: NodeCredentials
    public var job: UInt64
    /// Exit status; nil when killed (time limit, signal) or not started.
    public var status: Int32?
    public var outcome: String

    public init(credentials: NodeCredentials, job: UInt64, status: Int32?, outcome: String) {
        self.credentials = credentials
        self.job = job
        self.status = status
        self.outcome = outcome
    }
}

/// `exec` / `reconfigure` on the administration socket.
public struct ExecRequest: Codable, Sendable {
    public var node: String
    public var kind: AgentCommand.Kind
    public var argv: [String]
    public var timeoutSeconds: Double

    public init(node: String, kind: AgentCommand.Kind, argv: [String], timeoutSeconds: Double) {
        self.node = node
        self.kind = kind
        self.argv = argv
        self.timeoutSeconds = timeoutSeconds
    }
}

public struct ExecStarted: Codable, Sendable {
    public var job: UInt64
    public init(job: UInt64) { self.job = job }
}

/// `exec-poll`: output from `offset` on, waiting up to a second for more.
public struct ExecPollRequest: Codable, Sendable {
    /// The most jobs one `exec-poll-many` asks for (each answered with at most 64 KiB, so
    /// that the reply fits a control frame of 16 MiB).
    public static let maxPerRequest = 128

    public var job: UInt64
    public var offset: Int

    public init(job: UInt64, offset: Int) {
        self.job = job
        self.offset = offset
    }
}

/// `exec-poll-many`: several jobs' output at once.
public struct ExecPollManyRequest: Codable, Sendable {
    public var polls: [ExecPollRequest]
    public init(polls: [ExecPollRequest]) { self.polls = polls }
}

public struct ExecPollReply: Codable, Sendable {
    public var data: Data
    /// The offset after `data`.
    public var offset: Int
    public var done: Bool
    public var status: Int32?
    public var outcome: String?

    public init(data: Data, offset: Int, done: Bool, status: Int32?, outcome: String?) {
        self.data = data
        self.offset = offset
        self.done = done
        self.status = status
        self.outcome = outcome
    }
}

/// `nodes`: what qlumand knows of each node's agent.
public struct NodeMonitor: Codable, Sendable {
    public var node: String
    public var connected: Bool
    public var secondsSinceSeen: Double?
    public var report: NodeReport?

    public init(node: String, connected: Bool, secondsSinceSeen: Double?, report: NodeReport?) {
        self.node = node
        self.connected = connected
        self.secondsSinceSeen = secondsSinceSeen
        self.report = report
    }
}

extension QlumanOperation {
    public static let agentWait = "agent-wait"
    public static let agentOutput = "agent-output"
    public static let agentResult = "agent-result"
    /// Administration socket only.
    public static let exec = "exec"
    public static let execPoll = "exec-poll"
    /// Several jobs at once: `ExecPollManyRequest`, answered by a list of `ExecPollReply` in the
    /// same order, within a second.
    public static let execPollMany = "exec-poll-many"
    public static let nodes = "nodes"
}
