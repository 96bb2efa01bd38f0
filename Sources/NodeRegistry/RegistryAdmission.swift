import NIOConcurrencyHelpers
import Platform

/// The registry as ql-mcastd's and qlumand's admission: a host is a node when its source address
/// is a registered node's, the neighbour table's MAC for that address is one of the node's, and it
/// presents the node's enrollment token when one is set.
///
/// Every verdict read from the registry is remembered (for the same address, MAC and token): when
/// the registry cannot be read — a PostgreSQL registry whose database is down — a host is judged as
/// it was the last time, so a head that lost its database keeps serving the nodes it served
/// (docs/HA.md). A host it never judged is refused, saying the registry cannot be read.
public final class RegistryAdmission: NodeAdmission {
    public let registry: Registry
    /// Verdicts by address, MAC and the token's digest. `Sendable`: the box is its lock.
    private let remembered = NIOLockedValueBox<[String: AdmissionVerdict]>([:])
    /// Verdicts given from memory because the registry could not be read.
    public var fromMemory: UInt64 { memoryVerdicts.withLockedValue { $0 } }
    private let memoryVerdicts = NIOLockedValueBox<UInt64>(0)
    /// When the registry last could not be read (monotonic ns; 0: never): for `quietSeconds`
    /// after that a remembered verdict is given without asking it again.
    private let failedAt = NIOLockedValueBox<UInt64>(0)
    /// Why the registry could not be read, the last time it could not.
    public var lastFailure: String { failure.withLockedValue { $0 } }
    private let failure = NIOLockedValueBox("")
    static let quietSeconds: UInt64 = 15
    /// The most verdicts remembered: a registry of 100,000 nodes, each with a few MACs.
    static let maxRemembered = 500_000

    public init(registry: Registry) { self.registry = registry }

    /// Whether the registry failed to answer within the last `quietSeconds`: callers that keep
    /// their own memory (qlumand's last configurations) may answer from it without asking.
    public var inOutage: Bool {
        let failed = failedAt.withLockedValue { $0 }
        let now = MonotonicClock.nanoseconds()
        return failed > 0 && now >= failed && now - failed < Self.quietSeconds * 1_000_000_000
    }

    public func admit(address: String, mac: String?, token: String?) -> AdmissionVerdict {
        // The token only as its digest: memory holds no secret.
        let key =
            "\(address) \(mac ?? "-") \(token.map { t in Array(t.utf8).withUnsafeBytes { SHA256.hash($0).description } } ?? "-")"
        if inOutage, let verdict = remembered.withLockedValue({ $0[key] }) {
            memoryVerdicts.withLockedValue { $0 += 1 }
            return verdict
        }
        do {
            let verdict = try judge(address: address, mac: mac, token: token)
            failedAt.withLockedValue { $0 = 0 }
            remembered.withLockedValue {
                if $0.count >= Self.maxRemembered { $0.removeAll() }
                $0[key] = verdict
            }
            return verdict
        } catch {
            failedAt.withLockedValue { $0 = MonotonicClock.nanoseconds() }
            failure.withLockedValue { $0 = error.message }
            if let verdict = remembered.withLockedValue({ $0[key] }) {
                memoryVerdicts.withLockedValue { $0 += 1 }
                return verdict
            }
            return .refused(reason: "not-registered", message: "the node registry cannot be read: \(error.message)")
        }
    }

    private func judge(address: String, mac: String?, token: String?) throws(QlustarError) -> AdmissionVerdict {
        guard let node = try registry.node(ip: address) else {
            return .refused(reason: "not-registered", message: "no node is registered with address \(address)")
        }
        guard let mac else {
            return .refused(
                reason: "mac-mismatch",
                message: "the neighbour table has no MAC for \(address) (node \(node.name)): it cannot be recognised")
        }
        guard node.macs.contains(mac) else {
            return .refused(
                reason: "mac-mismatch",
                message:
                    "\(address) is registered to node \(node.name), but it speaks from MAC \(mac), not one of the node's"
            )
        }
        guard try registry.tokenMatches(node.name, token: token) else {
            return .refused(
                reason: "token",
                message: "node \(node.name) (\(address)) presented \(token == nil ? "no" : "a wrong") enrollment token")
        }
        return .admitted(node: node.name)
    }
}
