import XCTest

@testable import Transport

final class GroupPoolTests: XCTestCase {
    func testNeverHandsOutAPairInUseAndReusesReleasedOnesLast() throws {
        var pool = try GroupPool(cidr: "239.255.1.0/30", ports: "30000-30002")
        XCTAssertEqual(pool.capacity, 12)
        var taken = Set<MulticastEndpoint>()
        for _ in 0..<12 { XCTAssertTrue(taken.insert(try pool.allocate()).inserted) }
        XCTAssertThrowsError(try pool.allocate()) { e in
            XCTAssert("\(e)".contains("all 12 group:port pairs"), "\(e)")
        }
        let first = taken.first!
        pool.release(first)
        XCTAssertEqual(try pool.allocate(), first, "the only free pair")
        // Consecutive allocations use different groups.
        var fresh = try GroupPool(cidr: "239.255.1.0/24", ports: "30000-30999")
        let a = try fresh.allocate()
        let b = try fresh.allocate()
        XCTAssertNotEqual(a.group, b.group)
        fresh.release(a)
        XCTAssertNotEqual(try fresh.allocate(), a, "a released pair is not reused at once")
    }

    func testRejectsPoolsOutsideMulticastAndBadRanges() {
        for (cidr, ports) in [
            ("10.0.0.0/24", "30000-30010"), ("239.255.1.0", "30000-30010"), ("224.0.0.0/24", "30000-30010"),
            ("239.255.1.0/33", "30000-30010"), ("239.255.1.0/24", "30010-30000"), ("239.255.1.0/24", "80-90"),
            ("239.255.1.0/24", "x-y"),
        ] {
            XCTAssertThrowsError(try GroupPool(cidr: cidr, ports: ports), "\(cidr) \(ports)")
        }
    }
}
