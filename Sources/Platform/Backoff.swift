import Glibc

/// How long to wait before the next attempt at something that failed: doubling from `first` up
/// to `cap`, each wait drawn at random from its upper half ("equal jitter").
///
/// A hundred nodes that fail together (a head node restarting during a boot wave, a `busy`
/// answer to all of them) must not come back together: fixed or purely doubling delays keep
/// them in step and every retry becomes a new flood. Half of each delay is random, so the
/// attempts spread over the other half while the lower half still bounds the rate of one node.
public struct Backoff: Sendable {
    public let first: Double
    public let cap: Double
    private var current: Double

    /// - Parameters:
    ///   - first: the first delay's upper bound, seconds (> 0).
    ///   - cap: the largest upper bound, seconds (≥ `first`).
    public init(first: Double, cap: Double) {
        self.first = max(first, 0.001)
        self.cap = max(cap, self.first)
        current = self.first
    }

    /// The next delay in seconds, in [d/2, d] where d doubles from `first` to `cap`.
    public mutating func next() -> Double {
        let bound = current
        current = min(current * 2, cap)
        return bound / 2 + Double.random(in: 0...(bound / 2))
    }

    /// Back to `first`, after a success.
    public mutating func reset() { current = first }

    /// Sleeps the next delay; returns it.
    @discardableResult
    public mutating func wait() -> Double {
        let seconds = next()
        usleep(UInt32(min(seconds, 4_000) * 1e6))
        return seconds
    }
}
