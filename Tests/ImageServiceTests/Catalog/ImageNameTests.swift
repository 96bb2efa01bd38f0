import ImageService
import Platform
import XCTest

final class ImageNameTests: XCTestCase {
    func testAcceptsOrdinaryImageNames() throws {
        for name in ["compute", "ql-15.1", "node_img+gpu", "A1", String(repeating: "x", count: 64)] {
            XCTAssertEqual(try ImageName(name).fileName, name + ".img")
        }
    }

    func testRejectsNamesThatCouldLeaveTheImageDirectory() {
        let bad = [
            "", "..", "../etc/passwd", "a/b", "/abs", ".hidden", "-rf", "a b", "img\n", "img\0x", "é", "a\\b",
            String(repeating: "x", count: 65),
        ]
        for name in bad {
            XCTAssertThrowsError(try ImageName(name), "accepted \(name.debugDescription)") { error in
                XCTAssertEqual((error as? QlustarError)?.code, .invalidArgument)
            }
        }
    }

    func testErrorQuotesControlCharactersVisibly() {
        XCTAssertThrowsError(try ImageName("bad\nname")) { error in
            XCTAssertEqual(
                (error as? QlustarError)?.message,
                "image name 'bad\\u{a}name' may only contain letters, digits, '.', '_', '+' and '-'")
        }
    }
}
