import Foundation
import ImageService
import ImageTools
import LabSupport
import LabTestSupport
import Logging
import Platform
import XCTest

/// qlustar-image-edit and qlustar-image-reconfigure: copy and Root FS files, temporary edits of
/// built images, root password.
final class ImageEditorTests: XCTestCase {
    var images: ImageFixture!
    var root: Root { images.root }
    var dir: String { images.dir }

    override func setUpWithError() throws { images = try ImageFixture() }
    override func tearDown() { images?.remove() }

    func editor() -> ImageEditor {
        ImageEditor(root: root, log: Logger(root: root, name: "qlustar-image-edit", echo: false))
    }

    func read(_ path: String) throws -> String { try String(contentsOfFile: path, encoding: .utf8) }

    func testEditCreatesTheCopyFileWithItsParentsAndEditsTheSameFileAgain() throws {
        try images.standardSetup()
        let e = editor()
        let path = try e.edit("/some/path/filename", in: .common, editor: "printf 'hello\\n' >>")
        XCTAssertEqual(path, dir + "/etc/qlustar/images/common/copy/some/path/filename")
        _ = try e.edit("/some/path/filename", in: .common, editor: "printf 'again\\n' >>")
        XCTAssertEqual(try read(path), "hello\nagain\n")
        let own = try e.edit("/etc/fstab", in: .image(ImageName("compute")), editor: "printf 'tmpfs /tmp tmpfs\\n' >>")
        XCTAssertEqual(own, dir + "/etc/qlustar/images/compute/copy/etc/fstab")
        XCTAssertThrowsError(try e.edit("/etc/fstab", in: .image(ImageName("nosuch")), editor: "true")) { error in
            XCTAssertEqual((error as? QlustarError)?.code, .notFound)
        }
        // The copy file goes into the next build.
        try images.builder().build(ImageName("compute"))
        XCTAssertEqual(try images.cat("some/path/filename"), "hello\nagain\n")
        XCTAssertEqual(try images.cat("etc/fstab"), "tmpfs /tmp tmpfs\n")
    }

    func testAFailingEditorLeavesNothingHalfWritten() throws {
        let e = editor()
        XCTAssertThrowsError(try e.edit("/etc/new", in: .common, editor: "printf 'partial' >> \"$1\"; false;")) {
            error in
            XCTAssertTrue((error as? QlustarError)?.message.contains("exited 1") ?? false, "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/etc/qlustar/images/common/copy/etc/new"))
        let kept = try e.edit("/etc/kept", in: .common, editor: "printf 'v1\\n' >>")
        XCTAssertThrowsError(try e.edit("/etc/kept", in: .common, editor: "printf 'v2\\n' >> \"$1\"; exit 3;"))
        XCTAssertEqual(try read(kept), "v1\n")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir + "/etc/qlustar/images/common/copy/etc")
        XCTAssertEqual(leftovers, ["kept"])
    }

    func testPathsThatWouldLeaveTheTreeAreRefused() throws {
        let e = editor()
        try FileManager.default.createDirectory(
            atPath: dir + "/etc/qlustar/images/common/copy", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: dir + "/etc/qlustar/images/common/copy/escape", withDestinationPath: "/etc")
        for bad in ["../../../etc/passwd", "/a/../../b", "", "/", "/escape/passwd", "/./x"] {
            XCTAssertThrowsError(try e.edit(bad, in: .common, editor: "true"), bad) { error in
                XCTAssertEqual((error as? QlustarError)?.code, .invalidArgument, bad)
            }
        }
        XCTAssertThrowsError(try e.edit("/x", in: .rootFS("../etc"), editor: "true"))
    }

    func testRootFSCustomizationFilesAreCreatedAndDeleted() throws {
        let e = editor()
        let path = try e.edit(
            "/lib/qlustar/init.d/10-tune", in: .rootFS("custom"), editor: "printf 'sysctl -w vm.swappiness=1\\n' >>")
        XCTAssertEqual(path, dir + "/var/lib/qlustar/root-fs/custom/lib/qlustar/init.d/10-tune")
        XCTAssertEqual(try e.delete("/lib/qlustar/init.d/10-tune", rootFS: "custom"), path)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
        XCTAssertThrowsError(try e.delete("/lib/qlustar/init.d/10-tune", rootFS: "custom")) { error in
            XCTAssertEqual((error as? QlustarError)?.message, "\(path) does not exist")
        }
    }

    func testEditingABuiltImageExitOneKeepsItByteIdenticalExitZeroRegeneratesUntilReconfigure() throws {
        try images.standardSetup()
        let b = try images.builder()
        try b.build(ImageName("compute"))
        let e = editor()
        let img = dir + "/var/lib/qlustar/images/compute.img"
        let initrd = dir + "/var/lib/qlustar/images/compute.initrd"
        let (imgSha, initrdSha) = (try Lab.sha256(img), try Lab.sha256(initrd))
        XCTAssertFalse(try e.editBuilt(ImageName("compute"), .squashfs, command: "echo hack > etc/added; exit 1"))
        XCTAssertFalse(try e.editBuilt(ImageName("compute"), .initrd, command: "echo hack > added; exit 1"))
        XCTAssertEqual(try Lab.sha256(img), imgSha)
        XCTAssertEqual(try Lab.sha256(initrd), initrdSha)

        XCTAssertTrue(try e.editBuilt(ImageName("compute"), .squashfs, command: "echo fix > etc/added"))
        XCTAssertEqual(try images.cat("etc/added"), "fix\n")
        XCTAssertEqual(try images.cat("etc/slurm/slurm.conf"), "ClusterName=lab\n", "the rest is kept")
        XCTAssertTrue(try e.editBuilt(ImageName("compute"), .initrd, command: "echo fix > added"))
        let names = try images.sh("zcat \(initrd) | cpio -it --quiet")
        XCTAssertTrue(names.contains("added\n") && names.contains("bin/ql-mcast-client\n"), names)
        // Edits stay until the image is rebuilt from its modules (update sees no new inputs).
        XCTAssertFalse(try b.build(ImageName("compute")).rebuilt)
        XCTAssertTrue(try b.record(ImageName("compute")).edited ?? false)
        // qlustar-image-reconfigure resets it.
        XCTAssertTrue(try b.build(ImageName("compute"), force: true).rebuilt)
        XCTAssertEqual(try Lab.sha256(img), imgSha)
        XCTAssertEqual(try Lab.sha256(initrd), initrdSha)
    }

    func testReconfigureSetsASHA512RootPasswordThatVerifies() throws {
        try images.standardSetup()
        let tool = try LabHarness.releaseBinary("qlustar-image-reconfigure")
        let client = try LabHarness.releaseBinary("ql-mcast-client")
        let out = try images.sh(
            "echo 'n0de-secret' | \(tool.path) compute --password-stdin --root \(dir) --client \(client.path) 2>/dev/null"
        )
        XCTAssertTrue(out.contains("root password: set"), out)
        let shadow = try images.cat("etc/shadow")
        let hash = String(shadow.split(separator: ":")[1])
        XCTAssertTrue(PasswordHash.isSHA512(hash), hash)
        let salt = hash.split(separator: "$")[1]
        XCTAssertEqual(
            try images.sh("openssl passwd -6 -salt '\(salt)' 'n0de-secret'").trimmingCharacters(
                in: .whitespacesAndNewlines), hash)
        XCTAssertEqual(try PasswordHash.hash("n0de-secret", setting: hash), hash)
        // Back to the head node's password.
        _ = try images.sh(
            "\(tool.path) compute --head-password --root \(dir) --client \(client.path) 2>/dev/null </dev/null")
        XCTAssertEqual(try images.cat("etc/shadow"), "root:$6$salt$headhash:19000:0:99999:7:::\n")
        let bad = try? images.sh("\(tool.path) compute --password-hash plain --root \(dir) 2>&1")
        XCTAssertNil(bad, "a hash that is not SHA-512 crypt is refused")
    }

    /// Interactive: asked twice on the terminal (a pty from script(1)), not echoed; a mismatch
    /// changes nothing. The answers are typed after pauses: getpass discards what was typed
    /// before it asked.
    func testReconfigureAsksTwiceOnATerminal() throws {
        try images.standardSetup()
        let tool = try LabHarness.releaseBinary("qlustar-image-reconfigure").path
        let client = try LabHarness.releaseBinary("ql-mcast-client").path
        let command = "\(tool) compute --root \(dir) --client \(client)"
        let differ =
            (try? images.sh(
                "(sleep 3; printf 'one\\n'; sleep 1.5; printf 'two\\n') | script -qec '\(command)' /dev/null; true"))
            ?? "failed"
        XCTAssertTrue(differ.contains("the passwords differ; nothing changed"), differ)
        XCTAssertNil(try ImageDefinition.load(root, ImageName("compute")).rootPasswordHash)
        let out = try images.sh(
            "(sleep 3; printf 'pw-1\\n'; sleep 1.5; printf 'pw-1\\n') | script -qec '\(command)' /dev/null")
        XCTAssertTrue(out.contains("New root password for image 'compute'"), out)
        XCTAssertFalse(out.contains("pw-1"), "the password is not echoed: \(out)")
        let hash = try ImageDefinition.load(root, ImageName("compute")).rootPasswordHash ?? ""
        XCTAssertEqual(try PasswordHash.hash("pw-1", setting: hash), hash)
    }
}
