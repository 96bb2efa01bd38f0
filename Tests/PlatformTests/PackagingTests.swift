import Foundation
import XCTest

/// The Debian packages cover what the project builds (docs/PACKAGING.md): every tool is in
/// `contrib/debian/tools` (so it is installed, and gets its man page and completions from its
/// own help when scripts/package runs), every systemd unit and default configuration file of
/// `contrib/` is installed by scripts/package, and the help layout test checks the same tools.
/// What the installed packages do is scripts/package-test's (a Debian root without Swift).
final class PackagingTests: XCTestCase {
    private let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../..").standardized

    private func text(_ path: String) throws -> String {
        try String(contentsOf: repository.appendingPathComponent(path), encoding: .utf8)
    }

    /// tool → package, directory, section, program, from contrib/debian/tools.
    private func packagedTools() throws -> [String: (
        package: String, directory: String, section: String, program: String
    )] {
        var tools: [String: (String, String, String, String)] = [:]
        for line in try text("contrib/debian/tools").split(separator: "\n") where !line.hasPrefix("#") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            XCTAssertEqual(fields.count, 5, "contrib/debian/tools: '\(line)'")
            guard fields.count == 5 else { continue }
            XCTAssertNil(tools[fields[1]], "\(fields[1]) is listed twice")
            tools[fields[1]] = (fields[0], fields[2], fields[3], fields[4])
        }
        return tools
    }

    func testEveryExecutableProductIsPackagedOnceWithAManSection() throws {
        let manifest = try text("Package.swift")
        let regex = try NSRegularExpression(pattern: #"\.executableTarget\(\s*name:\s*"([^"]+)""#)
        let products = Set(
            regex.matches(in: manifest, range: NSRange(manifest.startIndex..., in: manifest)).compactMap {
                Range($0.range(at: 1), in: manifest).map { String(manifest[$0]) }
            })
        XCTAssertTrue(products.contains("qluman"), "no executable targets found in Package.swift")
        let tools = try packagedTools()
        // ql-bench measures the project; it is not installed on head nodes. qlustar-tools is the
        // head node's tools as one program, installed once, behind their links.
        XCTAssertEqual(Set(tools.keys), products.subtracting(["ql-bench", "qlustar-tools"]))
        let multiCall = try text("Sources/Programs/qlustar-tools/main.swift")
        for (tool, place) in tools {
            if place.package == "qlustar-head" {
                XCTAssertEqual(place.program, "qlustar-tools", tool)
                XCTAssertTrue(multiCall.contains("case \"\(tool)\":"), "qlustar-tools does not start \(tool)")
            } else {
                XCTAssertEqual(place.program, tool, "a node's tools are programs of their own")
            }
        }
        for (tool, place) in tools {
            XCTAssertTrue(["qlustar-head", "qlustar-node"].contains(place.package), "\(tool): \(place.package)")
            // Daemons and administration tools in sbin with section 8, user commands in bin with 1.
            XCTAssertTrue(
                (place.directory == "usr/sbin" && place.section == "8")
                    || (place.directory == "usr/bin" && place.section == "1"), "\(tool): \(place)")
        }
        XCTAssertEqual(Set(HelpLayoutTests.tools), Set(tools.keys), "the help layout test checks other tools")
    }

    func testEveryUnitAndConfigurationFileOfContribIsInstalled() throws {
        let script = try text("scripts/package")
        let contrib = repository.appendingPathComponent("contrib")
        for directory in ["systemd", "etc"] {
            let files = try FileManager.default.contentsOfDirectory(
                atPath: contrib.appendingPathComponent(directory).path)
            XCTAssertFalse(files.isEmpty)
            for file in files {
                let name = (file as NSString).deletingPathExtension
                let byLoop = script.contains("contrib/\(directory)/$unit.service") && script.contains(" \(name)")
                XCTAssertTrue(
                    script.contains("contrib/\(directory)/\(file)") || byLoop,
                    "contrib/\(directory)/\(file) is not installed by scripts/package")
            }
        }
        // Each unit names its man page, and that page is made (a tool's, or the CA script's).
        let tools = try packagedTools()
        for unit in ["ql-mcastd", "qlumand", "qluman-execd"] {
            let text = try text("contrib/systemd/\(unit).service")
            XCTAssertTrue(text.contains("Documentation=man:\(unit)(8)"), "\(unit).service names no man page")
            XCTAssertEqual(tools[unit]?.section, "8")
        }
    }
}
