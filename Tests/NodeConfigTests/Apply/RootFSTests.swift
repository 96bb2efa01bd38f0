import Foundation
import ImageService
import ImageTools
import LabSupport
import LabTestSupport
import NodeConfig
import Platform
import XCTest

final class RootFSTests: XCTestCase {
    /// `stat` of every entry below `dir`: path, mode, owner, group, type, link target.
    private func listing(_ dir: String) throws -> [String] {
        try Lab.run(
            "/bin/sh", ["-c", "cd '\(dir)' && find . -mindepth 1 -exec stat -c '%n %a %u %g %F %N' {} + | sort"]
        )
        .split(separator: "\n").map(String.init)
    }

    func testTreeArrivesWithOwnersModesLinksAndEmptyDirectories() throws {
        try Requirements.root("sets owners")
        let f = try ConfigFixture()
        let tree = try f.rootFSTree("site")
        let archive = try RootFSArchive.pack(name: "site", tree: tree, scratch: f.dir + "/scratch")
        var plan = FilePlan()
        plan.entries = try archive.entries(origin: "root-fs site")
        let node = f.dir + "/node"
        _ = try plan.write(below: node)
        XCTAssertEqual(try listing(node), try listing(tree))
        XCTAssertEqual(try Lab.run("/usr/bin/stat", ["-c", "%a %u %g", node + "/etc/site/key"]), "640 0 42\n")
        XCTAssertEqual(try Lab.run("/usr/bin/stat", ["-c", "%a %u %g", node + "/home/alice"]), "750 1234 1235\n")
        XCTAssertEqual(try Lab.run("/usr/bin/stat", ["-c", "%a %F", node + "/var/empty-dir"]), "1777 directory\n")
        XCTAssertEqual(
            try FileManager.default.destinationOfSymbolicLink(atPath: node + "/etc/site-link"), "/etc/site/site.conf")
    }

    /// A gzip'd newc archive written by hand, so it can hold what CPIOWriter refuses to write.
    private func handmade(_ entries: [(name: String, mode: UInt32, data: String)], in dir: String) throws
        -> RootFSArchive
    {
        var bytes: [UInt8] = []
        func pad() { while bytes.count % 4 != 0 { bytes.append(0) } }
        for (i, e) in (entries + [("TRAILER!!!", 0, "")]).enumerated() {
            let name = Array(e.name.utf8) + [0]
            let data = Array(e.data.utf8)
            let fields: [UInt32] = [
                UInt32(i + 1), e.mode, 0, 0, 1, 0, UInt32(data.count), 0, 0, 0, 0, UInt32(name.count), 0,
            ]
            bytes += Array(("070701" + fields.map { String(format: "%08X", $0) }.joined()).utf8) + name
            pad()
            bytes += data
            pad()
        }
        let path = dir + "/handmade.cpio.gz"
        let gzip = try GzipWriter(path: path)
        try gzip.write(bytes)
        try gzip.finish()
        return RootFSArchive(name: "evil", bytes: try FileSystem.readFile(path, limit: 1 << 20))
    }

    func testEntriesLeavingTheTreeAreRefusedAndNothingIsWritten() throws {
        let f = try ConfigFixture()
        let outside = f.dir + "/outside"
        let cases: [[(name: String, mode: UInt32, data: String)]] = [
            [("etc", 0o40755, ""), ("../outside", 0o100644, "x")],
            [("/outside", 0o100644, "x")],
            [("etc//x", 0o100644, "x")],
            // A link pointing out of the tree, then a file written through it.
            [("escape", 0o120777, outside), ("escape/pwned", 0o100644, "x")],
            [("d", 0o40755, ""), ("d/link", 0o120777, "../../.."), ("d/link/pwned", 0o100644, "x")],
            [("dev-null", 0o20666, "")],
        ]
        for entries in cases {
            let archive = try handmade(entries, in: f.dir)
            XCTAssertThrowsError(try archive.entries(origin: "t"), "\(entries.map(\.name))") { error in
                XCTAssertEqual((error as! QlustarError).code, .invalidArgument)
                XCTAssertTrue((error as! QlustarError).message.contains("nothing of it is written"))
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: outside))
    }

    func testSymlinksInTheNodeRootResolveInsideIt() throws {
        let f = try ConfigFixture()
        let node = f.dir + "/node"
        let victim = f.dir + "/victim"
        try FileManager.default.createDirectory(atPath: node + "/usr/lib", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: victim, withIntermediateDirectories: true)
        // A merged-/usr image (/lib -> /usr/lib, absolute), and links planted to point out.
        try FileManager.default.createSymbolicLink(atPath: node + "/lib", withDestinationPath: "/usr/lib")
        try FileManager.default.createSymbolicLink(atPath: node + "/abs", withDestinationPath: victim)
        try FileManager.default.createSymbolicLink(
            atPath: node + "/rel", withDestinationPath: "../../../../../..\(victim)")
        var plan = FilePlan()
        for path in ["/lib/qlustar/init.d/10-x", "/abs/pwned", "/rel/pwned"] {
            plan.entries.append(.init(path: path, content: .file(Array("x\n".utf8)), mode: 0o755, origin: "test"))
        }
        // Dangling inside the root: an error, and nothing written anywhere else.
        XCTAssertThrowsError(try plan.write(below: node))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: victim), [])
        try FileManager.default.createDirectory(atPath: node + victim, withIntermediateDirectories: true)
        _ = try plan.write(below: node)
        XCTAssertTrue(FileManager.default.fileExists(atPath: node + "/usr/lib/qlustar/init.d/10-x"))
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: victim), [], "nothing written outside the root")
        XCTAssertTrue(
            FileManager.default.fileExists(atPath: node + victim + "/pwned"), "the links resolved inside the root")
    }

    func testCorruptArchivesAreClearErrors() throws {
        let f = try ConfigFixture()
        let good = try handmade([("a", 0o100644, "hello")], in: f.dir)
        for bytes in [
            Array(good.bytes.prefix(good.bytes.count / 2)), [0x1f, 0x8b, 0, 1, 2, 3], Array("plain text".utf8),
        ] {
            XCTAssertThrowsError(try RootFSArchive(name: "x", bytes: bytes).entries(origin: "t")) { error in
                XCTAssertEqual((error as! QlustarError).code, .integrity, "\(error)")
            }
        }
        for garbage in ["070701ZZZZ", "070701" + String(repeating: "0", count: 104) + "FFFFFFFF"] {
            XCTAssertThrowsError(try CPIOReader.entries(Array(garbage.utf8))) { error in
                XCTAssertTrue((error as! QlustarError).message.hasPrefix("cpio archive is corrupt"), "\(error)")
            }
        }
    }
}
