import Foundation
import LabTestSupport
import XCTest

/// Every tool's `--help`, every subcommand's, at 80 and 120 columns: prose filled to the width (a
/// hard line break in the middle of a sentence leaves a half-empty line), examples and tables
/// short enough never to be wrapped, nothing wider than the terminal but the usage line (which
/// ArgumentParser does not wrap).
final class HelpLayoutTests: XCTestCase {
    static let tools = [
        "ql-mcast", "ql-mcastd", "ql-mcast-client", "qlustar-image", "qlustar-image-edit", "qlustar-image-reconfigure",
        "qluman", "qlumand", "qluman-execd", "ql-mcast-capture",
    ]

    /// The command paths of `tool` and each one's discussion as written, from ArgumentParser's dump.
    private func commands(_ tool: String) throws -> [(path: [String], discussion: String)] {
        let dump = try ReleaseTool.run(tool, ["--experimental-dump-help"], environment: [:])
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(dump.stdout.utf8)) as? [String: Any])
        var out: [([String], String)] = []
        func walk(_ command: [String: Any], _ path: [String]) {
            out.append((path, command["discussion"] as? String ?? ""))
            for sub in command["subcommands"] as? [[String: Any]] ?? [] {
                guard let name = sub["commandName"] as? String, name != "help" else { continue }
                walk(sub, path + [name])
            }
        }
        walk(try XCTUnwrap(json["command"] as? [String: Any]), [])
        return out
    }

    func testHelpIsFilledProseAndUnwrappedExamplesAtEightyAndOneHundredTwentyColumns() throws {
        var problems: [String] = []
        var pages = 0
        for tool in Self.tools {
            for (path, discussion) in try commands(tool) {
                for width in [80, 120] {
                    let help = try ReleaseTool.run(tool, path + ["--help"], environment: ["COLUMNS": "\(width)"])
                    pages += 1
                    let name = ([tool] + path).joined(separator: " ") + " @\(width)"
                    let lines = help.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
                    for line in lines where line.count > width && !line.hasPrefix("USAGE:") {
                        problems.append("\(name): wider than the terminal: \(line)")
                    }
                    // An indented line of the source (an example, a table row) must come out whole.
                    let rendered = Set(lines)
                    for source in discussion.split(separator: "\n").map(String.init)
                    where source.hasPrefix(" ") && !source.allSatisfy({ $0 == " " }) && !rendered.contains(source) {
                        problems.append("\(name): wrapped: \(source)")
                    }
                    // Prose (not indented, or an option's indented help): ArgumentParser fills lines
                    // to width - 1, so a line that had room for the next word was broken by hand.
                    for (a, b) in zip(lines, lines.dropFirst()) where !a.isEmpty && !b.isEmpty {
                        let indentA = a.prefix { $0 == " " }.count
                        let indentB = b.prefix { $0 == " " }.count
                        guard indentA == indentB, indentA == 0 || indentA >= 8, !a.hasSuffix(":"),
                            !b.drop { $0 == " " }.hasPrefix("-"), !b.hasPrefix("USAGE"),
                            let next = b.split(separator: " ").first
                        else { continue }
                        if a.count + 1 + next.count <= width - 1 {
                            problems.append("\(name): a line broken by hand: \(a) / \(b)")
                        }
                    }
                }
            }
        }
        XCTAssertGreaterThan(pages, 100)
        XCTAssertEqual(problems, [], problems.joined(separator: "\n"))
    }
}
