import Platform
import XCTest

final class CSVTests: XCTestCase {
    func testReadsQuotedFieldsCRLFAndSkipsBlankLines() throws {
        let text = "name,mac\r\n\"beo,1\",\"a \"\"b\"\"\"\r\n\nbeo-2,\"two\nlines\"\nlast,"
        XCTAssertEqual(
            try CSV.rows(text, maxRows: 10),
            [["name", "mac"], ["beo,1", "a \"b\""], ["beo-2", "two\nlines"], ["last", ""]])
    }

    func testWritesWhatItReads() throws {
        let rows = [["a", "b,c", "say \"hi\""], ["", "x\ny", "plain"]]
        let text = rows.map { CSV.line($0) + "\n" }.joined()
        XCTAssertEqual(try CSV.rows(text, maxRows: 10), rows)
    }

    func testMalformedTextNamesTheLine() {
        for (text, message) in [
            ("a,b\n\"open,x\n", "line 2: a quote is not closed"),
            ("a\n\"q\"x,y\n", "line 2: text after a closing quote"),
            ("1\n2\n3\n", "more than 2 rows (line 3)"),
        ] {
            XCTAssertThrowsError(try CSV.rows(text, maxRows: 2)) { e in
                XCTAssertEqual((e as? QlustarError)?.message, message, text)
            }
        }
    }
}
