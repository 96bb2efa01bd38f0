import Foundation
import ImageService
import Platform
import Transport
import XCTest

final class ImageCatalogTests: XCTestCase {
    var root: Root!
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "catalog-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        root = Root(dir)
        try FileManager.default.createDirectory(atPath: root.images, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func write(_ name: String, _ bytes: [UInt8]) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: root.images + "/" + name + ".img"), options: .atomic)
    }

    func sha(_ bytes: [UInt8]) -> SHA256Digest { bytes.withUnsafeBytes { SHA256.hash($0) } }

    func testManifestIsComputedOnceAndCachedOnDisk() throws {
        let bytes = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try write("compute", bytes)
        let first = ImageCatalog(root: root)
        let m = try first.snapshot(ImageName("compute")).manifest
        XCTAssertEqual(m.sha256, sha(bytes))
        XCTAssertEqual(m.size, 300_000)
        XCTAssertEqual(first.hashedBytes.withLockedValue { $0 }, 300_000)
        _ = try first.snapshot(ImageName("compute"))
        XCTAssertEqual(first.hashedBytes.withLockedValue { $0 }, 300_000, "a second lookup must not hash again")
        XCTAssertTrue(FileManager.default.fileExists(atPath: root.manifestCache + "/compute.manifest"))
        // A restarted daemon reads the cached manifest instead of hashing.
        let second = ImageCatalog(root: root)
        XCTAssertEqual(try second.snapshot(ImageName("compute")).manifest, m)
        XCTAssertEqual(second.hashedBytes.withLockedValue { $0 }, 0)
    }

    func testManifestIsRecomputedWhenTheFileChanges() throws {
        try write("compute", [1, 2, 3])
        let catalog = ImageCatalog(root: root)
        let old = try catalog.snapshot(ImageName("compute"))
        try write("compute", [4, 5, 6, 7])  // atomic replace: new inode
        let new = try catalog.snapshot(ImageName("compute"))
        XCTAssertEqual(new.manifest.sha256, sha([4, 5, 6, 7]))
        // The old snapshot still reads the version it opened.
        XCTAssertEqual(Array(old.bytes), [1, 2, 3])
        XCTAssertEqual(
            catalog.snapshot(try ImageName("compute"), digest: old.manifest.sha256, among: [old])?.manifest.size, 3)
        XCTAssertNil(catalog.snapshot(try ImageName("compute"), digest: old.manifest.sha256, among: []))
    }

    func testAStaleCachedManifestIsNotTrusted() throws {
        try write("compute", [1, 2, 3])
        _ = try ImageCatalog(root: root).snapshot(ImageName("compute"))
        // Rewritten in place with other content of another size, behind the daemon's back.
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: root.images + "/compute.img"))
        try h.write(contentsOf: Data([9, 9, 9, 9, 9]))
        try h.close()
        let m = try ImageCatalog(root: root).snapshot(ImageName("compute")).manifest
        XCTAssertEqual(m.sha256, sha([9, 9, 9, 9, 9]))
    }

    func testUnknownImageAndListing() throws {
        try write("b", [1])
        try write("a", [2])
        try Data([0]).write(to: URL(fileURLWithPath: root.images + "/notes.txt"))
        let catalog = ImageCatalog(root: root)
        XCTAssertEqual(catalog.names().map(\.value), ["a", "b"])
        XCTAssertThrowsError(try catalog.snapshot(ImageName("missing"))) { error in
            XCTAssertEqual((error as? QlustarError)?.code, .notFound)
            XCTAssertEqual(
                (error as? QlustarError)?.message, "no image 'missing' (expected the file \(root.images)/missing.img)")
        }
    }
}
