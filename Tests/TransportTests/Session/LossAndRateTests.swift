import XCTest

@testable import Transport

final class LossAndRateTests: XCTestCase {
    func testRandomLossHitsItsRateAndReproducesFromSeed() throws {
        var a = try LossModel(parsing: "random:5%@9")
        var b = try LossModel(parsing: "random:0.05@9")
        var drops = 0
        for _ in 0..<200_000 {
            let x = a.drop()
            XCTAssertEqual(x, b.drop())
            if x { drops += 1 }
        }
        XCTAssertEqual(Double(drops) / 200_000, 0.05, accuracy: 0.003)
    }

    func testBurstLossHasItsMeanRateAndLongRuns() throws {
        var m = try LossModel(parsing: "burst:0.05:10@3")
        var drops = 0
        var runs = 0
        var previous = false
        for _ in 0..<1_000_000 {
            let d = m.drop()
            if d { drops += 1 }
            if d && !previous { runs += 1 }
            previous = d
        }
        XCTAssertEqual(Double(drops) / 1_000_000, 0.05, accuracy: 0.01)
        XCTAssertEqual(Double(drops) / Double(runs), 10, accuracy: 1.5, "mean burst length")
    }

    func testLossSpecErrorsAreClear() {
        for bad in ["random", "random:2", "burst:0.1", "burst:0.1:0", "gauss:0.1", "random:0.1@x"] {
            XCTAssertThrowsError(try LossModel(parsing: bad), bad) { e in
                XCTAssertEqual((e as? TransportError)?.code, .invalidArgument)
            }
        }
        XCTAssertEqual(try LossModel(parsing: "none"), .none)
    }

    /// One loss syntax for every tool: the long forms and the short ones mean the same.
    func testLossSyntaxLongAndShortFormsAgree() throws {
        XCTAssertEqual(try LossModel(parsing: "0.05"), try LossModel(parsing: "random:0.05"))
        XCTAssertEqual(try LossModel(parsing: "5%@7"), try LossModel(parsing: "random:0.05@7"))
        XCTAssertEqual(try LossModel(parsing: "0.1,8"), try LossModel(parsing: "burst:0.1:8"))
        XCTAssertEqual(try LossModel.parse("0.1@3").seed, 3)
        XCTAssertNil(try LossModel.parse("0.1").seed, "no seed given: the caller may choose one")
        XCTAssertEqual(try LossModel(parsing: "1").kind, .random(1))
        for bad in ["lots", "0.1,0", "2", "random:", "burst:1:8", "0.1@x", "none:1"] {
            XCTAssertThrowsError(try LossModel(parsing: bad), bad)
        }
    }

    func testRateParsesBitRates() throws {
        XCTAssertEqual(try Rate(parsing: "2g").bytesPerSecond, 250_000_000)
        XCTAssertEqual(try Rate(parsing: "500m").bytesPerSecond, 62_500_000)
        XCTAssertEqual(try Rate(parsing: "100k").bytesPerSecond, 12_500)
        XCTAssertTrue(try Rate(parsing: "unlimited").isUnpaced)
        XCTAssertThrowsError(try Rate(parsing: "fast"))
        XCTAssertThrowsError(try Rate(parsing: "-1g"))
    }

    func testMulticastEndpointValidation() throws {
        XCTAssertEqual(try MulticastEndpoint(parsing: "239.255.1.1:30000").description, "239.255.1.1:30000")
        XCTAssertThrowsError(try MulticastEndpoint(parsing: "10.0.0.1:30000"))
        XCTAssertThrowsError(try MulticastEndpoint(parsing: "239.255.1.1"))
        XCTAssertThrowsError(try MulticastEndpoint(parsing: "239.255.1.1:0"))
        XCTAssertThrowsError(try MulticastEndpoint(parsing: "239.255.1.300:5"))
    }
}
