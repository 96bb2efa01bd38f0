import XCTest

@testable import Platform

final class HelpTextTests: XCTestCase {
    func testProseLinesJoinAndExamplesListsAndBlankLinesStay() {
        let source = """
            Serves the images in the image directory. Nodes
            ask on the control port.

              ql-mcastd --interface 192.168.52.1      serve
              ql-mcastd status                        progress
            Signals: SIGTERM lets sessions finish;
            SIGHUP reopens the log.
            - one item
            - another item,
              continued
            Last line.
            """
        XCTAssertEqual(
            HelpText.paragraphs(source),
            """
            Serves the images in the image directory. Nodes ask on the control port.

              ql-mcastd --interface 192.168.52.1      serve
              ql-mcastd status                        progress
            Signals: SIGTERM lets sessions finish; SIGHUP reopens the log.
            - one item
            - another item,
              continued
            Last line.
            """)
    }

    func testTextWithoutNewlinesIsUnchanged() {
        XCTAssertEqual(HelpText.paragraphs("One line."), "One line.")
        XCTAssertEqual(HelpText.paragraphs(""), "")
    }
}
