import Platform
import XCTest

final class LeadingOptionsTests: XCTestCase {
    func testOptionsBeforeTheSubcommandMoveBehindItsWordsAndBeforeTheRemoteCommand() {
        let hoist = { (a: [String]) in LeadingOptions.hoist(a, valued: ["--root", "--socket"], flags: ["--json"]) }
        XCTAssertEqual(
            hoist(["--root", "/r", "--json", "node", "add", "n1"]), ["node", "add", "n1", "--root", "/r", "--json"])
        XCTAssertEqual(hoist(["--root=/r", "node", "list"]), ["node", "list", "--root=/r"])
        XCTAssertEqual(
            hoist(["--socket", "/s", "exec", "n1", "--", "ls", "--json"]),
            ["exec", "n1", "--socket", "/s", "--", "ls", "--json"])
        XCTAssertEqual(hoist(["node", "list", "--root", "/r"]), ["node", "list", "--root", "/r"], "unchanged")
        XCTAssertEqual(hoist(["--root"]), ["--root"], "a missing value is left for the parser to report")
        XCTAssertEqual(hoist(["--help"]), ["--help"])
    }
}
