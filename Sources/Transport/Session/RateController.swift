/// A sending-rate policy: what the sender hears from its receivers and its own socket, and the
/// rate it decides on. The sender measures and counts; the policy only decides, so it can be
/// driven with scripted signals in a test and replaced as a whole.
///
/// Called from the sender's thread: `pressure` for a receiver report, `limit(to:)` when the
/// daemon changes the session's share, `windowEnded` every ~100 ms (`RateWindow`).
public protocol RateController {
    /// The rate in force now.
    var rate: Rate { get }
    /// The most the rate may grow to (a share of the link the daemon set); a lower limit takes
    /// effect at once.
    mutating func limit(to: Rate)
    /// A receiver reported trouble keeping up: with `cut` (its kernel dropped datagrams, or its
    /// queue is past the alarm) back off; without (its queue is half-way there) hold the rate for
    /// this window. `achieved` is the measured send rate (bytes/s). Returns whether it cut.
    mutating func pressure(cut: Bool, achieved: Double, now: UInt64) -> Bool
    /// A receiver got only `1 − loss` of what was sent since its last report, a loss
    /// (`OverloadLoss`) the path would not have: it takes datagrams at about that share of the
    /// rate. Back off to below it. `achieved` as in `pressure`. Returns whether it cut.
    mutating func overloaded(loss: Double, achieved: Double, now: UInt64) -> Bool
    /// A window ended. Returns whether the rate went up, down or stayed.
    mutating func windowEnded(_ window: RateWindow, achieved: Double, now: UInt64) -> RateChange
}

/// What one receiver's STATUS says about its pace, before it turns into loss: its receive queue
/// (percent of its socket buffer, the most it saw since its last report) against the lowest
/// its reports showed since the last cut it caused, and whether its kernel dropped datagrams.
///
/// A receiver that keeps up drains its queue between two of its time slices: on a loaded node
/// a few percent of a 128 MiB buffer. A queue past `risingAt` that grew `riseStep` points above
/// its trough means the sender is faster than that receiver's pace now: cut, before the buffer
/// overflows (at today's rates it holds a few hundred milliseconds). A queue that is deep but no
/// longer growing was cut for already: hold, so one episode does not take the rate to the floor
/// while its backlog drains. Past `alarmAt`, or on an overrun, it cuts whatever the trend.
public enum QueuePressure: Sendable, Equatable {
    case none, hold, cut

    /// A receiver with this much queued reports at once (at most every 20 ms), not at its
    /// status interval, so the sender sees the trend while there is room left.
    public static let reportAt = 8
    /// The sender holds its rate while any receiver's queue is this full.
    public static let holdAt = 4
    /// Past this, a queue `riseStep` points above its trough is a cut.
    public static let risingAt = 8
    public static let riseStep = 2
    /// Past this, cut whatever the trend.
    public static let alarmAt = 50

    /// - Parameters:
    ///   - fill: The queue this report shows (0…100).
    ///   - trough: The lowest queue this receiver reported since its last cut (0 before any).
    ///   - overran: Its kernel dropped datagrams since its last report.
    public init(fill: Int, trough: Int, overran: Bool) {
        if overran || fill >= Self.alarmAt || (fill >= Self.risingAt && fill >= trough + Self.riseStep) {
            self = .cut
        } else if fill >= Self.holdAt {
            self = .hold
        } else {
            self = .none
        }
    }
}

/// Loss that follows the rate: a receiver that gets only a share of the datagrams sent, with
/// nothing left in its socket to read, is losing them before the socket — in its NIC's ring, or
/// in a virtual NIC that cannot keep up (a TCG VM's e1000 took a fifth of 100 MB/s in
/// `scripts/e2e`). No queue ever fills, so `QueuePressure` never sees it; only the sequence gaps
/// do. A path's own random loss rarely comes near `share`; overload that starts a session far too
/// fast usually goes well past it.
///
/// The receiver reports such an interval at once; the sender cuts to what that receiver took
/// (less a margin) and then checks that the loss followed the rate down: when the receiver's
/// next interval, all of it after the cut, shows at least `pathShare` of the loss that caused it
/// — `pathTests` cuts in a row — the loss is the path's, and that receiver's loss cuts no more
/// (the rate climbs back as after any cut). A receiver's first report is not judged: it spans
/// the receiver's own start. Each cut also spends the receiver's back-off budget
/// (`ReceiverBudget`), so a liar cannot use this to pin the rate either.
public enum OverloadLoss {
    /// An interval with at least this share of the datagrams sent missing is overload.
    public static let share = 0.2
    /// Intervals of fewer datagrams (received and missing) say nothing: at 5 % loss in bursts of
    /// 16, 1,024 datagrams lose 20 % about once in 10⁵ intervals.
    public static let minimumSample: UInt64 = 1024
    /// The rate after a cut is what the receiver took, times this.
    public static let margin = 0.9
    /// A loss that kept this much of itself at the lower rate, after this many cuts in a row,
    /// did not come from the rate. Two, because a node's pace itself moves (a TCG VM's fell by
    /// half while its neighbour booted): one cut that did not help is not yet proof.
    public static let pathShare = 0.7
    public static let pathTests = 2

    /// Whether `lost` of `lost + received` datagrams is overload.
    public static func isOverload(lost: UInt64, received: UInt64) -> Bool {
        let (sum, overflow) = lost.addingReportingOverflow(received)
        return !overflow && sum >= minimumSample && Double(lost) >= share * Double(sum)
    }
}

/// What one ~100 ms window of the session showed.
public struct RateWindow: Sendable, Equatable {
    /// Symbols sent (pass and repair).
    public var symbols: UInt64
    /// Symbols receivers asked to have repaired.
    public var need: UInt64

    public init(symbols: UInt64, need: UInt64) {
        self.symbols = symbols
        self.need = need
    }
}

public enum RateChange: Sendable, Equatable {
    case unchanged, increased, decreased
}

/// The rate the configuration says, whatever receivers report (`adaptiveRate` off).
public struct FixedRateControl: RateController {
    public private(set) var rate: Rate

    public init(rate: Rate) { self.rate = rate }

    public mutating func limit(to r: Rate) {
        if !r.isUnpaced, rate.isUnpaced || rate.bytesPerSecond > r.bytesPerSecond { rate = r }
    }

    public func pressure(cut: Bool, achieved: Double, now: UInt64) -> Bool { false }
    public func overloaded(loss: Double, achieved: Double, now: UInt64) -> Bool { false }
    public func windowEnded(_ window: RateWindow, achieved: Double, now: UInt64) -> RateChange { .unchanged }
}

/// The adaptive policy. Slow start from the initial rate (+25 % a window) until a receiver
/// pushes back (`QueuePressure`: its queue grows, or its kernel dropped datagrams); a back-off
/// to 3/4 of what is sent on each such report and whenever the NAK ratio climbs well above the
/// baseline learnt in the first windows after NAKs begin (steady random loss is not congestion:
/// backing off would not reduce it); between, a climb back toward the rate that last overran a
/// receiver (the ceiling) and a 5 % probe each quiet window up to the limit; after three quiet
/// lifts of the ceiling, slow start again. The ceiling is lifted again while nobody is in
/// trouble. A receiver missing a share of datagrams only overload explains (`OverloadLoss`)
/// cuts at once to below its pace. The rate grows only while the sender reaches it.
public struct NakRatioRateControl: RateController {
    /// Windows with too few symbols say nothing about the ratio.
    public static let minimumWindowSymbols: UInt64 = 256
    /// Windows (after NAKs first flow) that learn the path's own loss as the baseline.
    public static let warmupWindows = 5
    /// The ratio "climbs" above `max(climbFactor × baseline, baseline + climbMargin)`.
    public static let climbFactor = 2.0
    public static let climbMargin = 0.15
    /// How much of each later window's ratio the baseline takes in.
    public static let baselineWeight = 0.1
    public static let slowStartGrowth = 1.25
    public static let probeGrowth = 1.05
    public static let backoffFactor = 0.75
    /// At most one back-off this often, so the reports of one episode do not compound.
    public static let backoffSpacingNanos: UInt64 = 100_000_000
    /// Slow start toward an unpaced limit goes unpaced above this (bytes/s).
    public static let unpacedAbove = 4e9
    /// A sender achieving less than this share of its rate is held back by its own CPU, not by
    /// the rate: raising the rate then only makes the next back-off miss (a cut from a rate
    /// nobody reached changes nothing), so it grows only while it reaches the rate.
    public static let reachedShare = 0.85
    /// After a back-off the rate climbs back toward this share of the ceiling (the rate that
    /// overran) in halving steps, then probes from there: a receiver's pace is rarely far below
    /// where it last overran, and 5 % a window would take seconds to get back.
    public static let recoveryShare = 0.9
    /// After this many lifts of the ceiling in a row with nobody in trouble (about 0.6 s at the
    /// ceiling), slow start again: a pace found under load (a node busy booting, a TCG VM whose
    /// neighbour was unpacking its initrd) is not the pace for good, and 5 % per lift took 14 s
    /// to climb from 1 to 6.5 MB/s (`scripts/e2e` unpaced, session 15) where slow start takes 1 s.
    public static let quietLiftsToResume = 3

    public private(set) var rate: Rate
    /// The most the rate may grow to: the configured rate, or a share the daemon set.
    public private(set) var limit: Rate
    public let minimum: Rate
    /// The NAK ratio (need ÷ symbols) the path has anyway; negative until learnt.
    public private(set) var baseline = -1.0
    /// The rate that last overran a receiver (bytes/s; 0: none yet).
    public internal(set) var ceiling = 0.0
    public private(set) var slowStart = true
    /// Lifts of the ceiling in a row with nobody in trouble between.
    private var quietLifts = 0
    private var windows = 0
    private var held = false
    private var lastBackoff: UInt64?

    /// - Parameters:
    ///   - rate: The limit (unpaced: as fast as receivers allow).
    ///   - initial: Where slow start begins (unpaced: no slow start).
    ///   - minimum: The floor no back-off goes below.
    public init(rate: Rate, initial: Rate, minimum: Rate) {
        limit = rate
        self.minimum = minimum
        let starts = !initial.isUnpaced && (rate.isUnpaced || rate.bytesPerSecond > initial.bytesPerSecond)
        self.rate = starts ? initial : rate
    }

    public mutating func limit(to r: Rate) {
        limit = r
        if !r.isUnpaced, rate.isUnpaced || rate.bytesPerSecond > r.bytesPerSecond { rate = r }
    }

    public mutating func pressure(cut: Bool, achieved: Double, now: UInt64) -> Bool {
        held = true
        return cut && backOff(achieved: achieved, now: now)
    }

    public mutating func overloaded(loss: Double, achieved: Double, now: UInt64) -> Bool {
        held = true
        let taken = 1 - min(max(loss, 0), 1)
        return backOff(achieved: achieved, now: now, pace: taken)
    }

    public mutating func windowEnded(_ w: RateWindow, achieved: Double, now: UInt64) -> RateChange {
        defer { held = false }
        var climbing = false
        if w.symbols >= Self.minimumWindowSymbols {
            let ratio = Double(w.need) / Double(w.symbols)
            if ratio > 0 || windows > 0 { windows += 1 }
            if windows > 0 && windows <= Self.warmupWindows {
                baseline = baseline < 0 ? ratio : (baseline + ratio) / 2
            } else if windows > Self.warmupWindows {
                climbing = ratio > max(Self.climbFactor * baseline, baseline + Self.climbMargin)
                baseline = baseline * (1 - Self.baselineWeight) + ratio * Self.baselineWeight
            }
        }
        if climbing { return backOff(achieved: achieved, now: now) ? .decreased : .unchanged }
        guard !held, !rate.isUnpaced else {
            quietLifts = 0
            return .unchanged
        }
        let current = Double(rate.bytesPerSecond)
        // `achieved` 0: not measured (nothing sent yet, or a test that does not say).
        guard achieved <= 0 || achieved >= Self.reachedShare * current else { return .unchanged }
        if slowStart {
            let before = rate
            let next = current * Self.slowStartGrowth
            if limit.isUnpaced {
                rate = next > Self.unpacedAbove ? .unpaced : Rate(bytesPerSecond: UInt64(next))
            } else {
                rate = Rate(bytesPerSecond: UInt64(min(next, Double(limit.bytesPerSecond))))
            }
            return rate == before ? .unchanged : .increased
        }
        guard rate != limit else { return .unchanged }
        // Probe toward the limit, never above the rate that last overran a receiver.
        let cap = limit.isUnpaced ? ceiling : min(ceiling, Double(limit.bytesPerSecond))
        let recovery = current + (Self.recoveryShare * cap - current) / 2
        let next = min(cap, max(current * Self.probeGrowth, recovery))
        if next >= current + 1 {
            rate = Rate(bytesPerSecond: UInt64(next))
            return .increased
        }
        if ceiling > 0, ceiling <= current + 1 {
            // At the ceiling with nobody in trouble: lift it as the probe would go, so no
            // back-off (a burst of real overruns, or reports that lied) lowers it for good; the
            // next real overrun sets it again.
            ceiling *= Self.probeGrowth
            quietLifts += 1
            if quietLifts >= Self.quietLiftsToResume { slowStart = true }
        }
        return .unchanged
    }

    /// Cuts the rate to 3/4 of what is being sent — the rate, or what the sender achieves when
    /// that is less (but not under half the rate: a sender idle between repairs achieves
    /// little) — at most once per spacing. With `pace`, the share of that a receiver was seen
    /// to take (`overloaded`), the ceiling is the receiver's pace and the rate a margin below it.
    /// Returns whether it cut.
    private mutating func backOff(achieved: Double, now: UInt64, pace: Double = 1) -> Bool {
        if let last = lastBackoff, now >= last, now - last < Self.backoffSpacingNanos { return false }
        lastBackoff = now
        slowStart = false
        quietLifts = 0
        let current = Double(rate.bytesPerSecond)
        let base =
            rate.isUnpaced ? max(achieved, 1e6) : achieved > 0 ? min(current, max(achieved, current / 2)) : current
        // Never below the floor: a ceiling of 0 would read as "none yet" and pin the rate there.
        let paced = max(base * pace, Double(max(1, minimum.bytesPerSecond)))
        ceiling = ceiling == 0 ? paced : min(ceiling, paced)
        let factor = pace < 1 ? min(Self.backoffFactor, pace * OverloadLoss.margin) : Self.backoffFactor
        rate = Rate(bytesPerSecond: UInt64(max(Double(minimum.bytesPerSecond), base * factor)))
        return true
    }
}
