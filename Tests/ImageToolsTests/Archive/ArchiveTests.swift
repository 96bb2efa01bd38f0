import Foundation
import ImageService
import ImageTools
import LabSupport
import LabTestSupport
import Platform
import XCTest

/// gzip, newc cpio and squashfs output, checked with the real tools (zcat, cpio, unsquashfs).
final class ArchiveTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "archive-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func sh(_ command: String) throws -> String { try Lab.run("/bin/sh", ["-c", command]) }

    /// Runs of spaces as one (listings align columns by content width).
    static func squeeze(_ text: String) -> String {
        text.split(separator: "\n").map {
            $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
        }
        .joined(separator: "\n")
    }

    /// A small node tree: directories, files with modes and owners, a symlink. Owners other
    /// than our own need root (CI runs as root).
    func makeTree(_ root: String) throws {
        try Requirements.root("archive tests set file owners")
        try sh(
            """
            mkdir -p \(root)/bin \(root)/etc/qlustar \(root)/var/empty
            printf '#!/bin/sh\\necho init\\n' > \(root)/init && chmod 755 \(root)/init
            printf 'node\\n' > \(root)/etc/hostname && chmod 644 \(root)/etc/hostname
            printf 'secret\\n' > \(root)/etc/qlustar/key && chmod 600 \(root)/etc/qlustar/key && chown 1000:100 \(root)/etc/qlustar/key
            head -c 300000 /dev/urandom > \(root)/bin/blob
            ln -s ../init \(root)/bin/init-link
            chmod 1777 \(root)/var/empty
            """)
    }

    func testGzipIsReadByZcatAndDependsOnTheInputOnly() throws {
        var text = ""
        for i in 0..<20_000 { text += "line \(i) of the core changelog\n" }
        for name in ["a.gz", "b.gz"] {
            let g = try GzipWriter(path: dir + "/" + name)
            try g.write(text)
            try g.finish()
            usleep(1_100_000 / 2)
        }
        XCTAssertEqual(try sh("zcat \(dir)/a.gz"), text)
        XCTAssertEqual(try Lab.sha256(dir + "/a.gz"), try Lab.sha256(dir + "/b.gz"))
        XCTAssertFalse(try sh("ls -a \(dir)").contains(".tmp."), "no temporary file left")
    }

    func testCpioNewcArchiveIsListedByCpioWithModesOwnersAndLinks() throws {
        try makeTree(dir + "/tree")
        let out = dir + "/initrd.gz"
        let g = try GzipWriter(path: out)
        let cpio = CPIOWriter(writingTo: g, mtime: 1_700_000_000)
        try cpio.addDirectory("dev")
        try cpio.addCharacterDevice("dev/console", major: 5, minor: 1)
        try cpio.addTree(dir + "/tree")
        try cpio.finish()
        let names = try sh("zcat \(out) | cpio -it --quiet").split(separator: "\n").map(String.init)
        XCTAssertEqual(
            names,
            [
                "dev", "dev/console", "bin", "bin/blob", "bin/init-link", "etc", "etc/hostname", "etc/qlustar",
                "etc/qlustar/key",
                "init", "var", "var/empty",
            ])
        let long = Self.squeeze(try sh("zcat \(out) | cpio -itv --quiet --numeric-uid-gid"))
        XCTAssertTrue(long.contains("-rw------- 1 1000 100 7 Nov 14 2023 etc/qlustar/key"), long)
        XCTAssertTrue(long.contains("-rwxr-xr-x 1 0 0 20 Nov 14 2023 init"), long)
        XCTAssertTrue(long.contains("lrwxrwxrwx 1 0 0 7 Nov 14 2023 bin/init-link -> ../init"), long)
        XCTAssertTrue(long.contains("crw------- 1 0 0 5, 1 Nov 14 2023 dev/console"), long)
        XCTAssertTrue(long.contains("drwxrwxrwt 2 0 0 0 Nov 14 2023 var/empty"), long)
        // Unpacked, the content is byte-exact.
        try sh(
            "mkdir \(dir)/x && cd \(dir)/x && zcat \(out) | cpio -id --quiet --no-absolute-filenames 2>/dev/null || true"
        )
        XCTAssertEqual(try Lab.sha256(dir + "/x/bin/blob"), try Lab.sha256(dir + "/tree/bin/blob"))
    }

    func testCpioRefusesNamesThatEscapeAndDuplicates() throws {
        let cpio = CPIOWriter(writingTo: try GzipWriter(path: dir + "/bad.gz"))
        for bad in ["/etc/passwd", "../x", "a/../../b", ""] {
            XCTAssertThrowsError(try cpio.addFile(bad, data: [1]), bad)
        }
        try cpio.addFile("init", data: [1])
        XCTAssertThrowsError(try cpio.addFile("init", data: [2])) { error in
            XCTAssertEqual((error as? QlustarError)?.message, "cpio entry 'init' added twice")
        }
    }

    func testSquashfsIsReproducibleAndKeepsOwnersAndModes() throws {
        try makeTree(dir + "/tree")
        var builder = SquashfsBuilder()
        builder.time = 1_700_000_000
        try builder.build(tree: dir + "/tree", target: dir + "/one.img")
        try sh("touch \(dir)/tree/etc/hostname")  // only a time changes: the image must not
        builder.processors = 1
        try builder.build(tree: dir + "/tree", target: dir + "/two.img")
        XCTAssertEqual(try Lab.sha256(dir + "/one.img"), try Lab.sha256(dir + "/two.img"))
        // The image holds the node's secrets: readable by root alone.
        let attributes = try FileManager.default.attributesOfItem(atPath: dir + "/one.img")
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        let listing = Self.squeeze(try sh("unsquashfs -lln -d R \(dir)/one.img"))
        XCTAssertTrue(listing.contains("-rw------- 1000/100 7 2023-11-14 22:13 R/etc/qlustar/key"), listing)
        XCTAssertTrue(listing.contains("lrwxrwxrwx 0/0 7 2023-11-14 22:13 R/bin/init-link -> ../init"), listing)
        XCTAssertTrue(listing.contains("drwxrwxrwt 0/0 3 2023-11-14 22:13 R/var/empty"), listing)
        XCTAssertEqual(try sh("unsquashfs -cat \(dir)/one.img etc/hostname"), "node\n")
        XCTAssertThrowsError(try builder.build(tree: dir + "/missing", target: dir + "/three.img")) { error in
            XCTAssertTrue(
                (error as? QlustarError)?.message.hasPrefix(
                    "cannot pack \(dir)/missing with mksquashfs: /usr/bin/mksquashfs exited 1:") ?? false, "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/three.img"))
    }
}
