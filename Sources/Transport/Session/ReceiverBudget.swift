/// How much one receiver may make the sender do: repair it may ask for, and rate back-offs its
/// reports may cause. Both are token buckets refilled by time, kept per receiver id.
///
/// Why: a NAK or STATUS is a claim nobody can check. A receiver (or anyone using its id, which
/// is on the wire) must not be able to spend the whole session's repair bandwidth, or hold the
/// rate down for good by reporting a full queue over and over. With these buckets a liar costs
/// the others at most its fair share of repair and a few back-offs; an honest receiver in trouble
/// stays well inside them (see docs/SECURITY.md, "What one receiver can do").
struct ReceiverBudget {
    /// Repair symbols this receiver may still ask for now.
    var repairTokens: Double
    /// Rate back-offs its reports may still cause now.
    var backoffTokens: Double
    var refilledAt: UInt64

    /// Back-offs one receiver may cause in a burst, and how many it earns back per second: six
    /// cuts to 3/4 take the rate to 18 %, which the +5 % per 100 ms probing wins back in about
    /// 3.5 s; after that one cut every 4 s costs less than a second of recovery.
    static let backoffBurst = 6.0
    static let backoffsPerSecond = 0.25
    /// What holding the rate for one report (a queue half-way full) costs, in back-offs.
    static let holdCost = 0.1

    init(repairCapacity: Double, now: UInt64) {
        repairTokens = repairCapacity
        backoffTokens = ReceiverBudget.backoffBurst
        refilledAt = now
    }

    /// Adds what `now - refilledAt` earned: `repairPerSecond` symbols (up to `repairCapacity`)
    /// and back-off credit (up to the burst).
    mutating func refill(now: UInt64, repairPerSecond: Double, repairCapacity: Double) {
        guard now > refilledAt else { return }
        let dt = Double(now - refilledAt) / 1e9
        refilledAt = now
        repairTokens = min(repairCapacity, repairTokens + dt * repairPerSecond)
        backoffTokens = min(ReceiverBudget.backoffBurst, backoffTokens + dt * ReceiverBudget.backoffsPerSecond)
    }

    /// Takes `symbols` repair tokens if there are that many. Returns whether it could.
    mutating func spendRepair(_ symbols: Int) -> Bool {
        guard repairTokens >= Double(symbols) else { return false }
        repairTokens -= Double(symbols)
        return true
    }

    /// Whether this receiver's reports may still slow the session (without spending).
    var mayPressure: Bool { backoffTokens >= 1 }

    mutating func spend(backoffs: Double) { backoffTokens = max(0, backoffTokens - backoffs) }
}
