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
        // The window of the burst holds; then halving steps toward 90 % of the ceiling, +5 % a
        // window up to it, and past it only as the ceiling is lifted while nobody complains.
        now += window
        XCTAssertEqual(p.windowEnded(windowAt(p.rate), achieved: 0, now: now), .unchanged)
        var trace: [Double] = []
        for _ in 0..<12 {
            now += window
            _ = p.windowEnded(windowAt(p.rate), achieved: 0, now: now)
            trace.append(Double(p.rate.bytesPerSecond))
        }
        XCTAssertEqual(trace[0], 165e6, accuracy: 1, "half-way from 150 to 180 MB/s")
        // Then ×1.05 (above the halving step): five windows to the ceiling, the last capped; one
        // window there (the ceiling is lifted 5 %), then the next step.
        XCTAssertTrue(trace.prefix(6).allSatisfy { $0 <= 200e6 + 1 }, "not above the ceiling at once: \(trace)")
        XCTAssertEqual(trace[1], 173.25e6, accuracy: 1)
        XCTAssertEqual(trace[4], 200e6, accuracy: 1)
        XCTAssertEqual(trace[5], 200e6, accuracy: 1)
        XCTAssertEqual(trace[6], 210e6, accuracy: 1)
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

    func testOverloadLossCutsBelowWhatTheReceiverTookAndTheCeilingIsItsPace() {
        var p = policy(initial: 100e6)
        XCTAssertTrue(p.overloaded(loss: 0.8, achieved: 100e6, now: window))
        XCTAssertEqual(Double(p.rate.bytesPerSecond), 100e6 * 0.2 * OverloadLoss.margin, accuracy: 1)
        XCTAssertEqual(p.ceiling, 20e6, accuracy: 1)
        // A small overload still goes below what was taken (79 % here), not only to ¾.
        var q = policy(initial: 100e6)
        XCTAssertTrue(q.overloaded(loss: 0.21, achieved: 100e6, now: window))
        XCTAssertEqual(Double(q.rate.bytesPerSecond), 100e6 * 0.79 * OverloadLoss.margin, accuracy: 1)
        XCTAssertFalse(FixedRateControl(rate: Rate(bytesPerSecond: 1)).overloaded(loss: 1, achieved: 0, now: 0))
    }

    func testAReceiverThatGotNothingCutsToTheFloorAndTheRateClimbsAgain() {
        var p = policy(initial: 100e6, minimum: 1e6)
        XCTAssertTrue(p.overloaded(loss: 1, achieved: 100e6, now: window))
        XCTAssertEqual(p.rate.bytesPerSecond, 1_000_000)
        XCTAssertEqual(p.ceiling, 1e6, "the floor, never 0 (which would read as no ceiling at all)")
        var now = window
        for _ in 0..<40 {
            now += window
            _ = p.windowEnded(windowAt(p.rate), achieved: 0, now: now)
        }
        XCTAssertGreaterThan(Double(p.rate.bytesPerSecond), 20e6, "quiet lifts, then slow start again")
    }

    func testOverloadIsAShareOfEnoughDatagrams() {
        XCTAssertTrue(OverloadLoss.isOverload(lost: 205, received: 819))
        XCTAssertFalse(OverloadLoss.isOverload(lost: 200, received: 823), "under 20 %")
        XCTAssertFalse(OverloadLoss.isOverload(lost: 500, received: 500), "fewer than 1,024 datagrams")
        XCTAssertFalse(OverloadLoss.isOverload(lost: .max, received: 2), "a forged count")
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

    func testASenderThatCannotReachItsRateDoesNotRaiseItAndBacksOffFromWhatItSends() {
        var p = policy(initial: 200e6)
        var now: UInt64 = 0
        // Its CPU lets it send 120 MB/s: the rate does not run away above that.
        for _ in 0..<10 {
            now += window
            XCTAssertEqual(p.windowEnded(windowAt(p.rate), achieved: 120e6, now: now), .unchanged)
        }
        XCTAssertEqual(p.rate.bytesPerSecond, 200_000_000)
        // A cut then takes 3/4 of what it sends, not of the rate it never reached: one cut acts.
        XCTAssertTrue(p.pressure(cut: true, achieved: 120e6, now: now + 1))
        XCTAssertEqual(p.rate.bytesPerSecond, 90_000_000)
        XCTAssertEqual(p.ceiling, 120e6)
        // An idle moment (between repairs) does not count as its pace: at most half the rate.
        var q = policy(initial: 200e6)
        XCTAssertTrue(q.pressure(cut: true, achieved: 1e6, now: window))
        XCTAssertEqual(q.rate.bytesPerSecond, 75_000_000)
        // The window of the cut holds; reaching the rate again, it grows again.
        now += window
        XCTAssertEqual(p.windowEnded(windowAt(p.rate), achieved: 89e6, now: now), .unchanged)
        now += window
        XCTAssertEqual(p.windowEnded(windowAt(p.rate), achieved: 89e6, now: now), .increased)
    }

    func testAGrowingQueueCutsOnceAndADrainingOneHolds() {
        // Below `holdAt`: nothing; between: hold; past `risingAt` and above the trough: cut.
        XCTAssertEqual(QueuePressure(fill: 2, trough: 0, overran: false), .none)
        XCTAssertEqual(QueuePressure(fill: QueuePressure.holdAt, trough: 0, overran: false), .hold)
        XCTAssertEqual(QueuePressure(fill: QueuePressure.risingAt, trough: 0, overran: false), .cut)
        XCTAssertEqual(QueuePressure(fill: 1, trough: 0, overran: true), .cut, "an overrun cuts whatever the queue")
        XCTAssertEqual(QueuePressure(fill: QueuePressure.alarmAt, trough: 60, overran: false), .cut)
        // A receiver's reports, 20 ms apart, with the sender's trough rule: the queue grows 3 → 13
        // (a cut at 8; 9 is within `riseStep` of it; 12 is not: the cut was not enough), drains
        // to 5 (holding while above `holdAt`, no cut per report), and grows again: 9 is 4 points
        // above the new trough, another cut.
        var trough = 0
        var cuts: [Int] = []
        var holds = 0
        for fill in [3, 6, 8, 9, 12, 13, 10, 7, 5, 6, 9, 3] {
            trough = min(trough, fill)
            switch QueuePressure(fill: fill, trough: trough, overran: false) {
            case .cut:
                cuts.append(fill)
                trough = fill
            case .hold: holds += 1
            case .none: break
            }
        }
        XCTAssertEqual(cuts, [8, 12, 9])
        XCTAssertEqual(holds, 7)
    }
}
