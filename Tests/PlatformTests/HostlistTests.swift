import Platform
import XCTest

final class HostlistTests: XCTestCase {
    func testExpandsRangesListsAndProducts() throws {
        XCTAssertEqual(try Hostlist.expand("beo-[001-003,105]"), ["beo-001", "beo-002", "beo-003", "beo-105"])
        XCTAssertEqual(
            try Hostlist.expand("rack[1-2]-n[01-02]"), ["rack1-n01", "rack1-n02", "rack2-n01", "rack2-n02"])
        XCTAssertEqual(try Hostlist.expand("a,b,beo-[9-11]"), ["a", "b", "beo-9", "beo-10", "beo-11"])
        XCTAssertEqual(try Hostlist.expand("n[1-2],n1"), ["n1", "n2"], "no repeats")
        XCTAssertEqual(try Hostlist.expand("beo-[001-100]").count, 100)
    }

    func testMalformedExpressionsPointAtTheCharacter() {
        for (text, fragment) in [
            ("beo-[1-", "'[' is not closed at character 8"), ("beo-]", "']' without '['"),
            ("beo-[3-1]", "runs backwards"), ("beo-[a-b]", "is not a number"), ("a,,b", "an empty name"),
            ("beo-[]", "empty brackets"), ("be o", "' ' cannot be part of a host name at character 3"),
            ("n[[1]]", "'[' inside brackets"), ("beo;rm", "';' cannot be part"),
        ] {
            XCTAssertThrowsError(try Hostlist.expand(text), text) { e in
                let message = (e as? QlustarError)?.message ?? ""
                XCTAssertTrue(message.contains(fragment), "\(text): \(message)")
            }
        }
    }

    func testAnExpressionBeyondTheBoundIsRefused() {
        XCTAssertThrowsError(try Hostlist.expand("n[0-99999]-[0-9]")) { e in
            XCTAssertTrue("\(e)".contains("more than 100000 names"), "\(e)")
        }
        XCTAssertThrowsError(try Hostlist.expand("n[0-999999999]"))
        XCTAssertEqual(try Hostlist.expand("n[1-100000]").count, 100_000)
    }

    func testFoldsToTheShortestHostlistAndRoundTrips() throws {
        XCTAssertEqual(Hostlist.fold(["beo-002", "beo-001", "beo-007"]), "beo-[001-002,007]")
        XCTAssertEqual(Hostlist.fold(["n1", "n2", "n3", "n10"]), "n[1-3,10]")
        XCTAssertEqual(Hostlist.fold((1...100).map { String(format: "beo-%03d", $0) }), "beo-[001-100]")
        XCTAssertEqual(Hostlist.fold(["head", "beo-01"]), "beo-01,head")
        XCTAssertEqual(Hostlist.fold(["rack1-n01", "rack1-n02", "rack2-n01"]), "rack1-n[01-02],rack2-n01")
        XCTAssertEqual(Hostlist.fold([]), "")
        let names = try Hostlist.expand("beo-[001-050,060-064],gpu[1-4],login")
        XCTAssertEqual(Set(try Hostlist.expand(Hostlist.fold(names))), Set(names))
    }
}
