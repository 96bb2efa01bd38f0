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
    /// A window ended. Returns whether the rate went up, down or stayed.
    mutating func windowEnded(_ window: RateWindow, achieved: Double, now: UInt64) -> RateChange
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
    public func windowEnded(_ window: RateWindow, achieved: Double, now: UInt64) -> RateChange { .unchanged }
}

/// Today's adaptive policy. Slow start from the initial rate (+25 % a window) until a receiver
/// pushes back; a back-off to 3/4 of the rate (or of what is achieved, when unpaced) on every
/// overrun or queue alarm and whenever the NAK ratio climbs well above the baseline learnt in the
/// first windows after NAKs begin (steady random loss is not congestion: backing off would not
/// reduce it); between, a 5 % probe each quiet window up to the limit, never above the rate that
/// last overran a receiver (the ceiling), which is lifted again while nobody is in trouble.
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

    public private(set) var rate: Rate
    /// The most the rate may grow to: the configured rate, or a share the daemon set.
    public private(set) var limit: Rate
    public let minimum: Rate
    /// The NAK ratio (need ÷ symbols) the path has anyway; negative until learnt.
    public private(set) var baseline = -1.0
    /// The rate that last overran a receiver (bytes/s; 0: none yet).
    public internal(set) var ceiling = 0.0
    public private(set) var slowStart = true
    private var windows = 0
    private var held = false
    private var lastBackoff: UInt64 = 0

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
        guard !held, !rate.isUnpaced else { return .unchanged }
        let current = Double(rate.bytesPerSecond)
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
        let next = min(cap, current * Self.probeGrowth)
        if next >= current + 1 {
            rate = Rate(bytesPerSecond: UInt64(next))
            return .increased
        }
        if ceiling > 0, ceiling <= current + 1 {
            // At the ceiling with nobody in trouble: lift it as the probe would go, so no
            // back-off (a burst of real overruns, or reports that lied) lowers it for good; the
            // next real overrun sets it again.
            ceiling *= Self.probeGrowth
        }
        return .unchanged
    }

    /// Cuts the rate to 3/4 of what is being sent (at most once per spacing). Returns whether it cut.
    private mutating func backOff(achieved: Double, now: UInt64) -> Bool {
        guard now < lastBackoff || now - lastBackoff >= Self.backoffSpacingNanos else { return false }
        lastBackoff = now
        slowStart = false
        let base = rate.isUnpaced ? max(achieved, 1e6) : Double(rate.bytesPerSecond)
        ceiling = ceiling == 0 ? base : min(ceiling, base)
        rate = Rate(bytesPerSecond: UInt64(max(Double(minimum.bytesPerSecond), base * Self.backoffFactor)))
        return true
    }
}
