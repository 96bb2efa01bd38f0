import Foundation
import ImageService
import ImageTools
import LabSupport
import LabTestSupport
import XCTest

/// Images built from modules and copy files, checked with unsquashfs, cpio and zcat; the initrd
/// carries the release ql-mcast-client (as CI builds it).
final class ImageBuilderTests: XCTestCase {
    var dir = ""
    var root: Root!

    override func setUpWithError() throws {
        if getuid() != 0 {
            if ProcessInfo.processInfo.environment["CI"] != nil { throw LabError("image builds set file owners: need root") }
            throw XCTSkip("image builds set file owners: run as root")
        }
        dir = NSTemporaryDirectory() + "images-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        root = Root(dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    @discardableResult
    func sh(_ command: String) throws -> String { try Lab.run("/bin/sh", ["-c", command]) }

    var modules: String { dir + "/var/lib/qlustar/image-modules" }
    var images: String { dir + "/var/lib/qlustar/images" }

    /// Installs module `name` `version` from a shell script that fills `$T` (its tree).
    func install(_ name: String, _ version: String, packages: [(String, String)], changelog: String? = nil, tar: Bool = false, _ fill: String) throws {
        let base = "\(modules)/\(name)/\(version)"
        let tree = tar ? dir + "/src-\(name)-\(version)" : base + "/tree"
        try sh("mkdir -p \(base) \(tree) && cd \(tree) && T=\(tree) && \(fill)")
        if tar { try sh("tar -C \(tree) --numeric-owner -cf \(base)/tree.tar . && rm -rf \(tree)") }
        let manifest = ModuleManifest(
            name: name, version: version, packages: packages.map { .init(name: $0.0, version: $0.1) }, changelog: changelog)
        try JSONEncoder().encode(manifest).write(to: URL(fileURLWithPath: base + "/module.json"))
    }

    func builder() throws -> ImageBuilder {
        ImageBuilder(
            root: root, log: EventLog(root: root, name: "qlustar-image", echo: false),
            clientBinary: try LabHarness.releaseBinary("ql-mcast-client").path)
    }

    func standardSetup() throws {
        try install(
            "core", "1.0", packages: [("bash", "5.2-1"), ("coreutils", "9.1-1")], changelog: "core (1.0)\n  * First release.\n",
            """
            mkdir -p etc bin var/lib && echo core > etc/issue && echo one > etc/hosts && echo tool > bin/tool && chmod 755 bin/tool
            printf 'root:*:19000:0:99999:7:::\\n' > etc/shadow && chmod 640 etc/shadow && chgrp 42 etc/shadow
            echo data > var/lib/data && chown 1000:100 var/lib/data && chmod 600 var/lib/data
            """)
        try install(
            "slurm", "23.02", packages: [("slurmd", "23.02.6-1")], tar: true,
            "mkdir -p etc/slurm && echo ClusterName=lab > etc/slurm/slurm.conf && echo slurm > etc/issue")
        try sh(
            """
            mkdir -p \(dir)/etc/qlustar/images/common/copy/etc \(dir)/etc/qlustar/images/compute/copy/etc
            echo common > \(dir)/etc/qlustar/images/common/copy/etc/motd
            echo common > \(dir)/etc/qlustar/images/common/copy/etc/hosts
            echo image > \(dir)/etc/qlustar/images/compute/copy/etc/hosts && chmod 640 \(dir)/etc/qlustar/images/compute/copy/etc/hosts
            printf 'root:$6$salt$headhash:19000:0:99999:7:::\\n' > \(dir)/etc/shadow
            """)
        try ImageDefinition(modules: ["slurm"]).store(root, ImageName("compute"))
    }

    func listing(_ image: String = "compute") throws -> String {
        ArchiveTests.squeeze(try sh("unsquashfs -lln -d R \(images)/\(image).img"))
    }

    func cat(_ path: String, _ image: String = "compute") throws -> String {
        try sh("unsquashfs -cat \(images)/\(image).img \(path)")
    }

    func testLayersModulesThenCommonThenImageCopyFilesKeepingOwnersAndModes() throws {
        try standardSetup()
        let result = try builder().build(ImageName("compute"))
        XCTAssertTrue(result.rebuilt)
        XCTAssertEqual(result.record.modules.map(\.name), ["core", "slurm"])
        XCTAssertEqual(try cat("etc/issue"), "slurm\n", "a later module wins")
        XCTAssertEqual(try cat("etc/motd"), "common\n")
        XCTAssertEqual(try cat("etc/hosts"), "image\n", "image copy wins over common copy over modules")
        XCTAssertEqual(try cat("etc/slurm/slurm.conf"), "ClusterName=lab\n")
        let l = try listing()
        XCTAssertTrue(l.contains("-rw------- 1000/100 5 1970-01-01 00:00 R/var/lib/data"), l)
        XCTAssertTrue(l.contains("-rw-r----- 0/0 6 1970-01-01 00:00 R/etc/hosts"), l)
        XCTAssertTrue(l.contains("-rwxr-xr-x 0/0 5 1970-01-01 00:00 R/bin/tool"), l)
        XCTAssertTrue(l.contains("-rw-r----- 0/42"), l)
        // Root's password comes from the head node, in the module's /etc/shadow (mode kept).
        XCTAssertEqual(try cat("etc/shadow"), "root:$6$salt$headhash:19000:0:99999:7:::\n")
        // The published manifest matches the file, and ql-mcastd's catalog serves the same bytes.
        XCTAssertEqual(try Lab.sha256(images + "/compute.img"), result.record.sha256)
        let served = try ImageCatalog(root: root).snapshot(ImageName("compute")).manifest.sha256.hex
        XCTAssertEqual(served, result.record.sha256)
    }

    func testSameInputsGiveTheSameBytesAndAnUnchangedImageIsNotRebuilt() throws {
        try standardSetup()
        let b = try builder()
        let first = try b.build(ImageName("compute"))
        let initrd = try Lab.sha256(images + "/compute.initrd")
        let forced = try b.build(ImageName("compute"), force: true)
        XCTAssertTrue(forced.rebuilt)
        XCTAssertEqual(forced.record.sha256, first.record.sha256, "reproducible squashfs")
        XCTAssertEqual(try Lab.sha256(images + "/compute.initrd"), initrd, "reproducible initrd")
        let again = try b.build(ImageName("compute"))
        XCTAssertFalse(again.rebuilt)
        XCTAssertLessThan(again.seconds, 1)
        // A copy file edited: rebuilt, and the copy files survive every rebuild.
        try sh("echo edited > \(dir)/etc/qlustar/images/common/copy/etc/motd")
        let edited = try b.build(ImageName("compute"))
        XCTAssertTrue(edited.rebuilt)
        XCTAssertEqual(try cat("etc/motd"), "edited\n")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/etc/qlustar/images/common/copy/etc/motd"))
    }

    func testModuleUpgradeRebuildsEveryImageWithChangelogsOfTheStep() throws {
        try standardSetup()
        try ImageDefinition(modules: ["core"]).store(root, ImageName("login"))
        let b = try builder()
        XCTAssertEqual(try b.update().filter { $0.1.rebuilt }.count, 2)
        XCTAssertEqual(try b.update().filter { $0.1.rebuilt }.count, 0, "nothing changed")
        try install(
            "core", "1.1", packages: [("bash", "5.2-2"), ("openssh-server", "9.2-1")],
            changelog: "core (1.1)\n  * Security update.\n\ncore (1.0)\n  * First release.\n",
            """
            mkdir -p etc bin var/lib && echo core-1.1 > etc/issue && echo tool > bin/tool && chmod 755 bin/tool
            echo new > etc/ssh_config && printf 'root:*:19000:0:99999:7:::\\n' > etc/shadow && chmod 640 etc/shadow && chgrp 42 etc/shadow
            echo data > var/lib/data && chown 1000:100 var/lib/data && chmod 600 var/lib/data
            """)
        let results = try b.update()
        XCTAssertEqual(results.filter { $0.1.rebuilt }.map(\.0.value), ["compute", "login"])
        XCTAssertEqual(try cat("etc/issue", "login"), "core-1.1\n")
        let doc = "usr/share/doc/qlustar-image/"
        XCTAssertTrue(try cat(doc + "core.changelog.gz", "login").isEmpty == false)
        try sh("unsquashfs -cat \(images)/login.img \(doc)core.changelog.gz > \(dir)/c.gz")
        XCTAssertTrue(try sh("zcat \(dir)/c.gz").hasPrefix("core (1.1)\n  * Security update."))
        try sh("unsquashfs -cat \(images)/login.img \(doc)core.packages.changelog.gz > \(dir)/p.gz")
        XCTAssertEqual(
            try sh("zcat \(dir)/p.gz"),
            "core 1.0 -> 1.1\n  upgraded bash 5.2-1 -> 5.2-2\n  removed coreutils 9.1-1\n  added openssh-server 9.2-1\n\n")
        try sh("unsquashfs -cat \(images)/login.img \(doc)core.contents.changelog-1.0_1.1.gz > \(dir)/f.gz")
        XCTAssertEqual(
            try sh("zcat \(dir)/f.gz"), "core 1.0 -> 1.1\nremoved /etc/hosts\nchanged /etc/issue\nadded   /etc/ssh_config\n")
        try sh("unsquashfs -cat \(images)/login.img \(doc)core.packages.version.gz > \(dir)/v.gz")
        XCTAssertEqual(try sh("zcat \(dir)/v.gz"), "bash 5.2-2\nopenssh-server 9.2-1\n")
    }

    func testInitrdHoldsInitTheClientAndItsLibraries() throws {
        try standardSetup()
        try builder().build(ImageName("compute"))
        let names = Set(try sh("zcat \(images)/compute.initrd | cpio -it --quiet").split(separator: "\n").map(String.init))
        for expected in ["init", "bin/ql-mcast-client", "bin/sh", "bin/mount", "dev/console", "proc", "sys", "union", "lib64/ld-linux-x86-64.so.2"] {
            XCTAssertTrue(names.contains(expected), "initrd lacks \(expected)")
        }
        XCTAssertTrue(names.contains { $0.hasSuffix("/libcrypto.so.3") }, "the client's libraries")
        let long = ArchiveTests.squeeze(try sh("zcat \(images)/compute.initrd | cpio -itv --quiet init"))
        XCTAssertTrue(long.hasPrefix("-rwxr-xr-x 1 root root"), long)
    }

    func testClearErrorsForWhatCannotBeBuilt() throws {
        try standardSetup()
        let b = try builder()
        XCTAssertThrowsError(try b.build(ImageName("gpu"))) { error in
            XCTAssertEqual((error as? ServiceError)?.message, "image 'gpu' is not defined (expected \(dir)/etc/qlustar/images/gpu/image.json)")
        }
        try ImageDefinition(modules: ["cuda"]).store(root, ImageName("gpu"))
        XCTAssertThrowsError(try b.build(ImageName("gpu"))) { error in
            XCTAssertEqual((error as? ServiceError)?.message, "module 'cuda' is not installed in \(modules) (installed: none)")
        }
        try sh("echo '{\"modules\": [\"slurm\"], \"compression\": \"lz4x\"}' > \(dir)/etc/qlustar/images/gpu/image.json")
        XCTAssertThrowsError(try b.build(ImageName("gpu"))) { error in
            XCTAssertEqual((error as? ServiceError)?.message, "\(dir)/etc/qlustar/images/gpu/image.json: compression 'lz4x' is not zstd, gzip or xz")
        }
        // Nothing half-built was published.
        XCTAssertFalse(FileManager.default.fileExists(atPath: images + "/gpu.img"))
    }
}
