import Foundation
import NodeConfig
import NodeRegistry
import Platform

/// Power control of many nodes through their BMCs, with Debian's `ipmitool` over IPMI 2.0
/// (`-I lanplus`): one `ipmitool` per BMC, at most `parallel` at once, each given `timeout`
/// seconds. ipmitool rather than FreeIPMI's `ipmipower`: it is what the `ipmi` config class
/// already runs on the nodes, what every BMC vendor documents, and it reads the password from
/// its environment (`-E`), so no password is ever on a command line (`ps` shows those).
public struct PowerControl: Sendable {
    public enum Action: String, CaseIterable, Sendable, Codable {
        case on, off, cycle, reset, status

        /// What a BMC that did it reports, as the outcome's name.
        var done: String {
            switch self {
            case .on: "on"
            case .off: "off"
            case .cycle: "cycled"
            case .reset: "reset"
            case .status: "status"
            }
        }
    }

    /// One node's result.
    public struct Result: Codable, Sendable, Equatable {
        public var node: String
        /// The BMC asked (nil: none known).
        public var bmc: String?
        /// `on`, `off`, `cycled`, `reset`; or what went wrong: `timeout`, `wrong credentials`,
        /// `cipher suite refused`, `no BMC address`, `no credentials`, `failed`.
        public var outcome: String
        /// ipmitool's last words when it failed.
        public var detail: String?
        public var seconds: Double
        public var succeeded: Bool

        public init(node: String, bmc: String?, outcome: String, detail: String?, seconds: Double, succeeded: Bool) {
            self.node = node
            self.bmc = bmc
            self.outcome = outcome
            self.detail = detail
            self.seconds = seconds
            self.succeeded = succeeded
        }
    }

    /// A node and where its BMC is, or why that is not known.
    public struct Target: Sendable {
        public var node: String
        public var bmc: Swift.Result<String, QlustarError>
    }

    public var ipmitool = "ipmitool"
    public var parallel: Int
    public var timeout: Double

    public init(parallel: Int = 64, timeout: Double = 10) {
        self.parallel = parallel
        self.timeout = timeout
    }

    /// Each node's BMC address: the one registered with the node, else the one its `ipmi`
    /// config gives (its host number in the IPMI network).
    public static func targets(_ nodes: [Node], registry: Registry) -> [Target] {
        nodes.map { node -> Target in
            if let bmc = node.bmc { return Target(node: node.name, bmc: .success(bmc)) }
            do throws(QlustarError) {
                guard let ipmi = try registry.options(for: node).config(IPMIConfig.self) else {
                    return Target(
                        node: node.name,
                        bmc: .failure(
                            QlustarError(
                                .notFound,
                                "no BMC address (qluman node set NODE --bmc ADDRESS, or assign an ipmi config)")
                        ))
                }
                return Target(
                    node: node.name,
                    bmc: .success(try ipmi.address(ofNode: node.name, ip: node.ip, prefix: node.prefix)))
            } catch {
                return Target(node: node.name, bmc: .failure(error))
            }
        }
    }

    /// Runs `action` on every target; results in the targets' order.
    public func run(
        _ action: Action, on targets: [Target], credentials: BMCCredentials, progress: (Int) -> Void = { _ in }
    ) -> [Result] {
        var results = [Result?](repeating: nil, count: targets.count)
        var jobs: [ProcessPool.Job] = []
        var jobTargets: [Int] = []
        for (i, target) in targets.enumerated() {
            let bmc: String
            switch target.bmc {
            case .failure(let error):
                results[i] = Result(
                    node: target.node, bmc: nil, outcome: "no BMC address", detail: error.message, seconds: 0,
                    succeeded: false)
                continue
            case .success(let address): bmc = address
            }
            guard let login = credentials.entry(for: target.node) else {
                results[i] = Result(
                    node: target.node, bmc: bmc, outcome: "no credentials",
                    detail: "qluman power credentials --user USER --password-file FILE", seconds: 0, succeeded: false)
                continue
            }
            let parts = bmc.split(separator: ":")
            var arguments = ["-I", "lanplus", "-H", String(parts[0])]
            if parts.count == 2 { arguments += ["-p", String(parts[1])] }
            // -N/-R: a lost datagram is retried within the timeout; the pool kills at the timeout.
            arguments += [
                "-U", login.user, "-E", "-C", String(login.cipher), "-N", "1", "-R", "3", "-v", "chassis", "power",
                action.rawValue,
            ]
            jobs.append(
                ProcessPool.Job(program: ipmitool, arguments: arguments, environment: ["IPMI_PASSWORD": login.password])
            )
            jobTargets.append(i)
        }
        let pool = ProcessPool(parallel: parallel, timeout: timeout)
        for (run, i) in zip(pool.run(jobs, progress: progress), jobTargets) {
            let target = targets[i]
            let bmc = try? target.bmc.get()
            let (outcome, detail, ok) = Self.outcome(action, run)
            results[i] = Result(
                node: target.node, bmc: bmc, outcome: outcome, detail: detail, seconds: run.seconds, succeeded: ok)
        }
        return results.compactMap { $0 }
    }

    /// What ipmitool's end and words mean.
    static func outcome(_ action: Action, _ run: ProcessPool.Result) -> (String, String?, Bool) {
        if let start = run.startError { return ("failed", start, false) }
        if run.timedOut { return ("timeout", "no answer within the timeout", false) }
        let out = run.output.lowercased()
        let errors = run.errors.lowercased()
        let last = run.errors.split(separator: "\n").last.map { String($0).printableLine }
        if run.termination?.succeeded == true {
            if action == .status {
                if out.contains("chassis power is on") { return ("on", nil, true) }
                if out.contains("chassis power is off") { return ("off", nil, true) }
                return ("failed", "unexpected answer: \(run.output.printableLine)", false)
            }
            return (action.done, nil, true)
        }
        if errors.contains("rakp 2 hmac is invalid") || errors.contains("unauthorized name")
            || errors.contains("invalid user name") || errors.contains("insufficient privilege")
        {
            return ("wrong credentials", last, false)
        }
        if errors.contains("invalid authentication algorithm") || errors.contains("invalid integrity algorithm")
            || errors.contains("invalid confidentiality algorithm")
        {
            return (
                "cipher suite refused", "the BMC refuses this cipher suite (qluman power credentials --cipher)", false
            )
        }
        if errors.contains("get auth capabilities error") || errors.contains("no response")
            || errors.contains("insufficient resources for session")
        {
            return ("timeout", last, false)
        }
        return ("failed", last ?? run.termination?.description, false)
    }
}
