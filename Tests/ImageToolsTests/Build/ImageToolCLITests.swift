import Foundation
import LabTestSupport
import XCTest

/// qlustar-image as scripts meet it: shared options before the subcommand, --json.
final class ImageToolCLITests: XCTestCase {
    func testListPrintsJSONAndTakesTheRootBeforeTheSubcommand() throws {
        let dir = NSTemporaryDirectory() + "qlustar-image-cli-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let empty = try ReleaseTool.run("qlustar-image", ["--root", dir, "--json", "list"], environment: [:])
        XCTAssertEqual(empty.status, 0, empty.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(empty.stdout.utf8)) as? [String: Any])
        XCTAssertEqual((json["images"] as? [Any])?.count, 0)
        XCTAssertEqual((json["modules"] as? [String: Any])?.count, 0)
        let text = try ReleaseTool.run("qlustar-image", ["list", "--root", dir], environment: [:])
        XCTAssertEqual(text.stdout, "")
    }
}
