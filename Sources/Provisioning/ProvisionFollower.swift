import Foundation
import Logging
import NodeRegistry
import Platform

/// Keeps one head node's dnsmasq and TFTP files in step with a registry that other head nodes
/// write too (docs/HA.md): it looks at what those files are made of — the nodes, the boot
/// configurations and the one each node boots — and when that changed since its last look,
/// provisions again with the same `Provisioner` as `qluman provision` (dnsmasq told to reload).
///
/// Polling, not PostgreSQL's LISTEN/NOTIFY: a change made while a head was cut off from the
/// database, or on a primary that has since failed over, is never notified again; a look every
/// few seconds sees it whatever happened, works on SQLite too, and costs three small reads.
public struct ProvisionFollower {
    public let provisioner: Provisioner
    let log: Logger
    /// A digest of what the files were last made of (nil: not yet made by this follower).
    private(set) var made: SHA256Digest?
    /// The last failure logged (each new one is logged once, not at every look).
    private var lastFailure: String?

    public init(provisioner: Provisioner, log: Logger) {
        self.provisioner = provisioner
        self.log = log
    }

    /// One look: provisions when the registry changed. A registry that cannot be reached leaves
    /// the files as they are (the head serves on with what it has) and is logged once.
    /// - Returns: What provisioning did, or nil when nothing changed or it failed.
    public mutating func look(_ registry: Registry) -> Provisioner.Report? {
        do throws(QlustarError) {
            let digest = try Self.digest(registry)
            if let made, made == digest { return nil }
            let report = try provisioner.provision(registry)
            made = digest
            if lastFailure != nil { log.notice("registry: reachable again; provisioning follows it") }
            lastFailure = nil
            return report
        } catch {
            if error.message != lastFailure {
                log.error("following the registry: \(error.message); dnsmasq and TFTP files stay as they are")
            }
            lastFailure = error.message
            return nil
        }
    }

    /// Looks every `interval` seconds until `stop` says so.
    public mutating func run(_ registry: Registry, every interval: Double, stop: () -> Bool) {
        log.info("provisioning follows the registry \(registry.path): a look every \(interval) s")
        while !stop() {
            if let report = look(registry) {
                log.info(
                    "registry changed: provisioned \(report.nodes) nodes\(report.reloaded ? ", dnsmasq reloaded" : "")")
            }
            // In steps of at most 0.2 s, so a stop is seen soon.
            var left = interval
            while left > 0, !stop() {
                usleep(UInt32(min(left, 0.2) * 1e6))
                left -= 0.2
            }
        }
    }

    /// What the files are made of, in one digest.
    static func digest(_ registry: Registry) throws(QlustarError) -> SHA256Digest {
        struct Inputs: Encodable {
            var nodes: [Node]
            var configs: [BootConfig]
            var chosen: [String: String]
        }
        let inputs = Inputs(
            nodes: try registry.nodes().sorted { $0.name < $1.name },
            configs: try registry.bootConfigs().sorted { $0.name < $1.name },
            chosen: try registry.effectiveBootConfigs())
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        guard let data = try? encoder.encode(inputs) else {
            throw QlustarError(.io, "cannot encode the registry's provisioning inputs")
        }
        let hasher = SHA256()
        data.withUnsafeBytes { hasher.update($0) }
        return hasher.finalize()
    }
}
