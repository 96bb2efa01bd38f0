import XCTest

@testable import Platform

final class BackoffTests: XCTestCase {
    func testEachWaitIsInTheUpperHalfOfABoundThatDoublesToTheCap() {
        var backoff = Backoff(first: 0.5, cap: 4)
        for bound in [0.5, 1, 2, 4, 4, 4] {
            let wait = backoff.next()
            XCTAssertGreaterThanOrEqual(wait, bound / 2)
            XCTAssertLessThanOrEqual(wait, bound)
        }
        backoff.reset()
        XCTAssertLessThanOrEqual(backoff.next(), 0.5, "back to the first bound after a success")
    }

    func testNodesThatFailTogetherSpreadOut() {
        // A hundred nodes at their third retry: the waits cover most of [2, 4] s, not one instant.
        let waits = (0..<100).map { _ -> Double in
            var backoff = Backoff(first: 1, cap: 30)
            _ = backoff.next()
            _ = backoff.next()
            return backoff.next()
        }
        XCTAssertGreaterThan(waits.max()! - waits.min()!, 1.0, "\(waits)")
        XCTAssertGreaterThan(Set(waits.map { Int($0 * 10) }).count, 10)
    }

    func testOddArgumentsStillGiveAPositiveBoundedWait() {
        var backoff = Backoff(first: 0, cap: -1)
        let wait = backoff.next()
        XCTAssertGreaterThan(wait, 0)
        XCTAssertLessThanOrEqual(wait, 0.001)
    }
}
