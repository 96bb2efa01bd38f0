import XCTest

@testable import Platform

#if canImport(Glibc)
    import Glibc
#endif

/// The POSIX fence and the file operations on it, on a real temporary directory.
final class FileSystemTests: ScratchTestCase {

    func testFailedCallCarriesItsNameAndErrno() {
        XCTAssertThrowsError(try Posix.open(dir + "/absent", O_RDONLY)) { error in
            XCTAssertEqual(error as? SystemCallError, SystemCallError("open", errno: ENOENT))
            XCTAssertEqual("\(error)", "open: No such file or directory")
        }
    }

    func testFileSystemErrorNamesThePath() {
        XCTAssertThrowsError(try FileSystem.readFile(dir + "/absent", limit: 10)) { error in
            XCTAssertEqual((error as? QlustarError)?.message, "cannot open \(dir)/absent: No such file or directory")
        }
    }

    func testWriteAtomicallyLeavesOnlyTheFileWithItsMode() throws {
        try FileSystem.writeAtomically(dir + "/a", Array("one".utf8), mode: 0o600)
        try FileSystem.writeAtomically(dir + "/a", Array("two".utf8), mode: 0o640)
        XCTAssertEqual(try FileSystem.readFile(dir + "/a", limit: 100), Array("two".utf8))
        XCTAssertEqual(try FileSystem.status(dir + "/a").st_mode & 0o7777, 0o640)
        XCTAssertEqual(try FileSystem.list(dir), ["a"], "no temporary file is left beside it")
    }

    func testPublishIntoAMissingDirectoryRemovesTheTemporaryFile() throws {
        try FileSystem.writeAtomically(dir + "/t", [1, 2, 3])
        XCTAssertThrowsError(try FileSystem.publish(dir + "/t", to: dir + "/missing/x")) { error in
            XCTAssertTrue(
                (error as? QlustarError)?.message.hasPrefix("cannot open the directory of \(dir)/missing/x") == true)
        }
        XCTAssertFalse(FileSystem.exists(dir + "/t"))
    }

    func testReadFileRefusesAFileLargerThanItsLimitAndReadsLargeFilesWhole() throws {
        let big = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try FileSystem.writeAtomically(dir + "/big", big)
        XCTAssertEqual(try FileSystem.readFile(dir + "/big", limit: big.count), big)
        XCTAssertThrowsError(try FileSystem.readFile(dir + "/big", limit: big.count - 1)) { error in
            XCTAssertEqual((error as? QlustarError)?.message, "\(dir)/big is larger than \(big.count - 1) bytes")
        }
        XCTAssertEqual(try FileSystem.readPrefix(dir + "/big", count: 5), Array(big[0..<5]))
        XCTAssertEqual(try FileSystem.readFile(dir + "/big", limit: .max).count, big.count)
    }

    func testRemoveTreeRemovesLinksAndNeverWhatTheyPointTo() throws {
        let outside = dir + "/outside"
        try FileSystem.makeDirectories(outside)
        try FileSystem.writeAtomically(outside + "/keep", [1])
        try FileSystem.makeDirectories(dir + "/tree/sub")
        try FileSystem.writeAtomically(dir + "/tree/sub/f", [2])
        try FileSystem.makeSymlink(dir + "/tree/link", to: outside)
        try FileSystem.makeSymlink(dir + "/tree/dangling", to: dir + "/nowhere")
        try FileSystem.removeTree(dir + "/tree")
        XCTAssertFalse(FileSystem.exists(dir + "/tree", followingLinks: false))
        XCTAssertEqual(try FileSystem.readFile(outside + "/keep", limit: 1), [1])
        try FileSystem.removeTree(dir + "/tree")  // nothing there: not an error
    }

    func testExistsTellsADanglingLinkFromNothing() throws {
        try FileSystem.makeSymlink(dir + "/dangling", to: dir + "/nowhere")
        XCTAssertFalse(FileSystem.exists(dir + "/dangling"))
        XCTAssertTrue(FileSystem.exists(dir + "/dangling", followingLinks: false))
        XCTAssertEqual(try FileSystem.linkTarget(dir + "/dangling"), dir + "/nowhere")
    }

    func testIdentityIsNilForAMissingFileAndChangesWithAPublish() throws {
        XCTAssertNil(try FileSystem.identity(of: dir + "/x"))
        XCTAssertNil(try FileSystem.identity(of: dir + "/x/y"), "ENOTDIR is absence too")
        try FileSystem.writeAtomically(dir + "/x", [1])
        let first = try XCTUnwrap(try FileSystem.identity(of: dir + "/x"))
        try FileSystem.writeAtomically(dir + "/x", [1])
        XCTAssertNotEqual(try FileSystem.identity(of: dir + "/x")?.inode, first.inode)
    }

    func testOpenInRootKeepsAnAbsoluteLinkInsideTheTree() throws {
        try FileSystem.makeDirectories(dir + "/root/etc")
        try FileSystem.writeAtomically(dir + "/root/etc/hostname", Array("inside".utf8))
        try FileSystem.makeSymlink(dir + "/root/escape", to: "/etc")
        let root = try Posix.open(dir + "/root", Posix.pathOnly | O_DIRECTORY)
        defer { Posix.close(root) }
        let fd = try Posix.openInRoot(root, "/escape/hostname", O_RDONLY)
        defer { Posix.close(fd) }
        XCTAssertEqual(try FileSystem.read(fd, upTo: 100, path: "hostname"), Array("inside".utf8))
        XCTAssertThrowsError(try Posix.openInRoot(root, "/../../etc/passwd", O_RDONLY)) { error in
            XCTAssertEqual((error as? SystemCallError)?.errno, ENOENT, "`..` stops at the tree's root")
        }
    }
}
