import Platform
import XCTest

final class HeadNodeTests: XCTestCase {
    func testAListNamesEveryHeadInOrderWithTheDefaultPortWhereNoneIsGiven() throws {
        XCTAssertEqual(
            try HeadNode.list("192.168.52.1,192.168.52.2:9000", defaultPort: 7799),
            [HeadNode(host: "192.168.52.1", port: 7799), HeadNode(host: "192.168.52.2", port: 9000)])
        XCTAssertEqual(try HeadNode.list("cl-head", defaultPort: 7800), [HeadNode(host: "cl-head", port: 7800)])
        XCTAssertEqual(try HeadNode.list("h0,h1", defaultPort: 1).map(\.description), ["h0:1", "h1:1"])
    }

    func testAMalformedListIsRefusedNamingWhatIsWrong() {
        for (text, message) in [
            ("", "empty address"), ("a,", "empty address"), (",a", "empty address"),
            ("a:0", "'a:0' is not HOST[:PORT]"), ("a:65536", "'a:65536' is not HOST[:PORT]"),
            (":80", "':80' is not HOST[:PORT]"), ("a:x", "'a:x' is not HOST[:PORT]"),
            ("a,b:1,a", "'a,b:1,a' names head node a:7799 twice"),
            (String(repeating: "h,", count: 8) + "h", "names more than 8 head nodes"),
        ] {
            XCTAssertThrowsError(try HeadNode.list(text, defaultPort: 7799), text) { e in
                let got = (e as? QlustarError)?.message ?? ""
                XCTAssertTrue(got.hasSuffix(message), "\(text): \(got)")
            }
        }
    }
}
