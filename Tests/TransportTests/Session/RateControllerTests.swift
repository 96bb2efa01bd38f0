import XCTest

@testable import Transport

/// The rate policies alone, driven window by window with scripted signals: what receivers and
/// the path would report, on an explicit clock.
final class RateControllerTests: XCTestCase {
    private let window: UInt64 = 100_000_000
    private let mb = 1_000_000.0

    private func policy(limit: Double = 400e6, initial: Double = 10e6, minimum: Double = 1e6) -> NakRatioRateControl {
        NakRatioRateControl(
            rate: Rate(bytesPerSecond: UInt64(limit)), initial: Rate(bytesPerSecond: UInt64(initial)),
            minimum: Rate(bytesPerSecond: UInt64(minimum)))
    }

    /// Symbols a window at `rate` carries (1,400-byte symbols), and the need a loss ratio adds.
    private func windowAt(_ rate: Rate, ratio: Double = 0) -> RateWindow {
        let symbols = UInt64(Double(rate.bytesPerSecond) * 0.1 / 1_400)
        return RateWindow(symbols: symbols, need: UInt64(Double(symbols) * ratio))
    }

    func testSlowStartGrowsAQuarterAWindowUpToTheLimit() {
        var p = policy()
        var now: UInt64 = 0
        var windows = 0
        while p.rate.bytesPerSecond < 400_000_000 && windows < 100 {
            now += window
            XCTAssertEqual(p.windowEnded(windowAt(p.rate), achieved: 0, now: now), .increased)
            windows += 1
        }
        // 10 → 400 MB/s at ×1.25 a window: log(40) / log(1.25) ≈ 16.5 windows.
        XCTAssertEqual(windows, 17)
        XCTAssertEqual(p.rate.bytesPerSecond, 400_000_000, "capped at the limit")
        XCTAssertEqual(p.windowEnded(windowAt(p.rate), achieved: 0, now: now + window), .unchanged)
    }

    func testSteadyPathLossIsLearntAndNeverTakenForCongestion() {
        var p = policy()
        var now: UInt64 = 0
        for _ in 0..<200 {
            now += window
            XCTAssertNotEqual(p.windowEnded(windowAt(p.rate, ratio: 0.05), achieved: 0, now: now), .decreased)
        }
        XCTAssertEqual(p.rate.bytesPerSecond, 400_000_000)
        XCTAssertEqual(p.baseline, 0.05, accuracy: 0.005)
    }

    func testANakRatioClimbingAboveTheBaselineBacksOff() {
        var p = policy(initial: 100e6)
        var now: UInt64 = 0
        for _ in 0..<10 {
            now += window
            _ = p.windowEnded(windowAt(p.rate, ratio: 0.01), achieved: 0, now: now)
        }
        let before = Double(p.rate.bytesPerSecond)
        now += window
        XCTAssertEqual(p.windowEnded(windowAt(p.rate, ratio: 0.3), achieved: 0, now: now), .decreased)
        XCTAssertEqual(Double(p.rate.bytesPerSecond), before * 0.75, accuracy: 1)
        XCTAssertFalse(p.slowStart)
    }

    func testAnOverrunBurstCutsOnceAndTheProbeClimbsBackToTheCeiling() {
        var p = policy(initial: 200e6)
        var now = 10 * window
        // Five overrun reports of one episode, 10 ms apart: one cut.
        var cuts = 0
        for i in 0..<5 where p.pressure(cut: true, achieved: 0, now: now + UInt64(i) * 10_000_000) { cuts += 1 }
        XCTAssertEqual(cuts, 1)
        XCTAssertEqual(p.rate.bytesPerSecond, 150_000_000)
        XCTAssertEqual(p.ceiling, 200e6)
        // The window of the burst holds; then +5 % a window up to the ceiling, and past it only as
        // the ceiling is lifted while nobody complains.
        now += window
        XCTAssertEqual(p.windowEnded(windowAt(p.rate), achieved: 0, now: now), .unchanged)
        var trace: [Double] = []
        for _ in 0..<12 {
            now += window
            _ = p.windowEnded(windowAt(p.rate), achieved: 0, now: now)
            trace.append(Double(p.rate.bytesPerSecond))
        }
        XCTAssertEqual(trace[0], 157.5e6, accuracy: 1)
        // 150 → 200 MB/s at ×1.05: six windows, the last capped at the ceiling; one window there
        // (the ceiling is lifted 5 %), then the next step.
        XCTAssertTrue(trace.prefix(7).allSatisfy { $0 <= 200e6 + 1 }, "not above the ceiling at once: \(trace)")
        XCTAssertEqual(trace[5], 200e6, accuracy: 1)
        XCTAssertEqual(trace[6], 200e6, accuracy: 1)
        XCTAssertEqual(trace[7], 210e6, accuracy: 1)
        for _ in 0..<40 {
            now += window
            _ = p.windowEnded(windowAt(p.rate), achieved: 0, now: now)
        }
        XCTAssertGreaterThan(Double(p.rate.bytesPerSecond), 250e6, "the ceiling is not for good")
    }

    /// A receiver that overruns whenever the rate is above what it can take: the rate settles
    /// around its pace, and climbs away once it recovers.
    func testASlowReceiverIsFollowedAndARecoveredOneReleasesTheRate() {
        var p = policy(initial: 20e6)
        let pace = 120e6
        var now: UInt64 = 0
        var rates: [Double] = []
        for _ in 0..<300 {
            now += window
            if Double(p.rate.bytesPerSecond) > pace { _ = p.pressure(cut: true, achieved: 0, now: now - window / 2) }
            _ = p.windowEnded(windowAt(p.rate), achieved: 0, now: now)
            rates.append(Double(p.rate.bytesPerSecond))
        }
        let settled = rates.suffix(200)
        let mean = settled.reduce(0, +) / Double(settled.count)
        XCTAssertGreaterThan(mean, 0.75 * pace, "rates \(settled.prefix(20))")
        XCTAssertLessThan(settled.max()!, 1.3 * pace)
        // Recovered: nobody reports; the rate leaves the old pace behind.
        for _ in 0..<100 {
            now += window
            _ = p.windowEnded(windowAt(p.rate), achieved: 0, now: now)
        }
        XCTAssertGreaterThan(Double(p.rate.bytesPerSecond), 2 * pace)
    }

    func testAHalfFullQueueHoldsTheRateWithoutCutting() {
        var p = policy(initial: 50e6)
        var now: UInt64 = 0
        for _ in 0..<20 {
            now += window
            XCTAssertFalse(p.pressure(cut: false, achieved: 0, now: now - 1))
            XCTAssertEqual(p.windowEnded(windowAt(p.rate), achieved: 0, now: now), .unchanged)
        }
        XCTAssertEqual(p.rate.bytesPerSecond, 50_000_000)
    }

    func testUnpacedSendingBacksOffFromWhatItAchievesAndNeverBelowTheFloor() {
        var p = NakRatioRateControl(rate: .unpaced, initial: .unpaced, minimum: Rate(bytesPerSecond: 5_000_000))
        XCTAssertTrue(p.rate.isUnpaced)
        XCTAssertTrue(p.pressure(cut: true, achieved: 300e6, now: window))
        XCTAssertEqual(p.rate.bytesPerSecond, 225_000_000)
        var now = window
        for _ in 0..<30 {
            now += window
            XCTAssertTrue(p.pressure(cut: true, achieved: 0, now: now))
        }
        XCTAssertEqual(p.rate.bytesPerSecond, 5_000_000)
    }

    func testALowerLimitTakesEffectAtOnceAndAHigherOneIsClimbedTo() {
        var p = policy(initial: 300e6)
        p.limit(to: Rate(bytesPerSecond: 100_000_000))
        XCTAssertEqual(p.rate.bytesPerSecond, 100_000_000)
        p.limit(to: Rate(bytesPerSecond: 200_000_000))
        XCTAssertEqual(p.rate.bytesPerSecond, 100_000_000)
        var now: UInt64 = 0
        for _ in 0..<10 {
            now += window
            _ = p.windowEnded(windowAt(p.rate), achieved: 0, now: now)
        }
        XCTAssertEqual(p.rate.bytesPerSecond, 200_000_000)
    }

    func testAFixedRateIgnoresEveryReport() {
        var p = FixedRateControl(rate: Rate(bytesPerSecond: 80_000_000))
        XCTAssertFalse(p.pressure(cut: true, achieved: 1e9, now: window))
        XCTAssertEqual(
            p.windowEnded(RateWindow(symbols: 10_000, need: 9_000), achieved: 0, now: 2 * window), .unchanged)
        XCTAssertEqual(p.rate.bytesPerSecond, 80_000_000)
        p.limit(to: Rate(bytesPerSecond: 40_000_000))
        XCTAssertEqual(p.rate.bytesPerSecond, 40_000_000)
        p.limit(to: .unpaced)
        XCTAssertEqual(p.rate.bytesPerSecond, 40_000_000)
    }
}
