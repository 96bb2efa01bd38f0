import FoundationEssentials
import Logging
import NIOConcurrencyHelpers
import Platform
import Transport

extension NeighbourTable {
    /// Whether `address` is this host's own (loopback, or an address of one of its interfaces):
    /// the head node's own tools are trusted and have no neighbour entry.
    public static func isLocal(_ address: String) -> Bool {
        guard let v4 = IPv4Address(address) else { return address.isEmpty }  // empty: a Unix-socket peer
        return v4.value >> 24 == 127 || NetworkInterface.name(owning: v4) != nil
    }
}

/// ql-mcastd's gate: asks the admission, counts and logs refusals (once per address a minute,
/// so a stranger knocking all day writes one line a minute).
final class AdmissionGate: Sendable {
    let admission: NodeAdmission
    private let log: Logger
    private let lastLogged = NIOLockedValueBox<[String: UInt64]>([:])
    private let table: String

    init(admission: NodeAdmission, log: Logger, table: String = "/proc/net/arp") {
        self.admission = admission
        self.log = log
        self.table = table
    }

    /// The node `peer` is, or the `not-registered` failure to answer with.
    func check(_ peer: ControlPeer, token: String?, count: (String) -> Void) throws(ControlFailure) -> String? {
        let address = NeighbourTable.plainIPv4(peer.host)
        if NeighbourTable.isLocal(address) { return nil }
        let mac = NeighbourTable.mac(of: address, table: table)
        switch admission.admit(address: address, mac: mac, token: token) {
        case .admitted(let node): return node
        case .refused(let reason, let message):
            count(reason)
            let now = MonotonicClock.nanoseconds()
            let shouldLog = lastLogged.withLockedValue { seen -> Bool in
                if let last = seen[address], now &- last < 60_000_000_000 { return false }
                if seen.count >= 4_096 { seen = seen.filter { now &- $0.value < 60_000_000_000 } }
                seen[address] = now
                return true
            }
            if shouldLog {
                log.warning(
                    "refused \(address) (\(reason)): \(message); further refusals of it within a minute are only counted"
                )
            }
            throw ControlFailure(.notRegistered, "\(message) — ql-mcastd serves registered nodes only")
        }
    }
}
