import Foundation
import ImageService
import LabSupport
import LabTestSupport
import Logging
import Platform
import XCTest

@testable import ImageTools

/// Images built from modules and copy files, checked with unsquashfs, cpio and zcat; the initrd
/// carries the release ql-mcast-client (as CI builds it).
final class ImageBuilderTests: XCTestCase {
    var f: ImageFixture!
    var dir: String { f.dir }
    var root: Root { f.root }
    var images: String { f.images }
    var modules: String { f.modules }

    override func setUpWithError() throws { f = try ImageFixture() }
    override func tearDown() { f?.remove() }

    @discardableResult
    func sh(_ command: String) throws -> String { try f.sh(command) }
    func install(
        _ name: String, _ version: String, packages: [(String, String)], changelog: String? = nil, tar: Bool = false,
        _ fill: String
    ) throws {
        try f.install(name, version, packages: packages, changelog: changelog, tar: tar, fill)
    }
    func builder() throws -> ImageBuilder { try f.builder() }
    func standardSetup() throws { try f.standardSetup() }
    func listing(_ image: String = "compute") throws -> String { try f.listing(image) }
    func cat(_ path: String, _ image: String = "compute") throws -> String { try f.cat(path, image) }

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
            "core 1.0 -> 1.1\n  upgraded bash 5.2-1 -> 5.2-2\n  removed coreutils 9.1-1\n  added openssh-server 9.2-1\n\n"
        )
        try sh("unsquashfs -cat \(images)/login.img \(doc)core.contents.changelog-1.0_1.1.gz > \(dir)/f.gz")
        XCTAssertEqual(
            try sh("zcat \(dir)/f.gz"),
            "core 1.0 -> 1.1\nremoved /etc/hosts\nchanged /etc/issue\nadded   /etc/ssh_config\n")
        try sh("unsquashfs -cat \(images)/login.img \(doc)core.packages.version.gz > \(dir)/v.gz")
        XCTAssertEqual(try sh("zcat \(dir)/v.gz"), "bash 5.2-2\nopenssh-server 9.2-1\n")
    }

    func testInitrdHoldsInitTheClientAndTheLibrariesOfItsOtherPrograms() throws {
        try standardSetup()
        try builder().build(ImageName("compute"))
        let names = Set(
            try sh("zcat \(images)/compute.initrd | cpio -it --quiet").split(separator: "\n").map(String.init))
        for expected in [
            "init", "bin/ql-mcast-client", "bin/sh", "bin/mount", "dev/console", "proc", "sys", "union",
            "lib64/ld-linux-x86-64.so.2",
        ] {
            XCTAssertTrue(names.contains(expected), "initrd lacks \(expected)")
        }
        XCTAssertTrue(names.contains { $0.hasSuffix("/libc.so.6") }, "the libraries of /bin/sh and /bin/mount")
        // The client is one static program: no Swift runtime, Foundation, ICU or libcrypto beside it.
        XCTAssertEqual(
            names.filter { $0.contains("libswift") || $0.contains("Foundation") || $0.contains("libcrypto") }, [])
        let long = ArchiveTests.squeeze(try sh("zcat \(images)/compute.initrd | cpio -itv --quiet init"))
        XCTAssertTrue(long.hasPrefix("-rwxr-xr-x 1 root root"), long)
    }

    func testStaticBusyboxNeedsNoLibrariesAndProgramsAreStrippedForTheInitrd() throws {
        try Requirements.require(
            FileManager.default.isExecutableFile(atPath: "/bin/busybox"), "needs busybox-static (scripts/setup)")
        try Requirements.require(
            FileManager.default.isExecutableFile(atPath: "/usr/bin/strip"), "needs strip (binutils; scripts/setup)")
        try standardSetup()
        var definition = try ImageDefinition.load(root, ImageName("compute"))
        definition.initrdPrograms = ["/bin/busybox"]
        definition.initrdFiles = ["bin/sh": "/bin/busybox"]
        definition.initrdCompression = "zstd"
        try definition.store(root, ImageName("compute"))
        try builder().build(ImageName("compute"))
        // What every node loads by TFTP: busybox and the static client, ≤ 10 MB (the mass-boot issue).
        let initrdBytes = try FileManager.default.attributesOfItem(atPath: images + "/compute.initrd")[.size] as? Int
        XCTAssertLessThanOrEqual(initrdBytes ?? .max, 10_000_000, "zstd initrd of busybox and ql-mcast-client")
        try sh("mkdir -p \(dir)/unpacked && cd \(dir)/unpacked && zstdcat \(images)/compute.initrd | cpio -id --quiet")
        let unpacked = dir + "/unpacked"
        // A static program goes in alone (ldd would fail on it); busybox is already stripped.
        XCTAssertEqual(try Lab.sha256(unpacked + "/bin/busybox"), try Lab.sha256("/bin/busybox"))
        XCTAssertEqual(try Lab.sha256(unpacked + "/bin/sh"), try Lab.sha256("/bin/busybox"))
        XCTAssertEqual(try sh("readlink \(unpacked)/bin/sh"), "busybox\n", "one file under two names is stored once")
        // The client loses its symbol table, and still runs: static, it needs no loader.
        let client = try LabHarness.releaseBinary("ql-mcast-client").path
        let size = { (path: String) throws -> Int in
            (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        }
        XCTAssertLessThan(try size(unpacked + "/bin/ql-mcast-client"), try size(client) / 2, "stripped client")
        XCTAssertFalse(try sh("readelf -S \(unpacked)/bin/ql-mcast-client").contains(".symtab"), "no symbol table")
        XCTAssertTrue(try sh("readelf -S \(client)").contains(".symtab"), "the release build has one")
        XCTAssertEqual(
            try String(contentsOfFile: unpacked + "/init", encoding: .utf8), InitScript.text(try ImageName("compute")),
            "scripts as they are")
        XCTAssertTrue(try sh("\(unpacked)/bin/ql-mcast-client --help").contains("USAGE: ql-mcast-client"))
        XCTAssertFalse(try sh("readelf -l \(unpacked)/bin/ql-mcast-client").contains("INTERP"), "a static program")
        XCTAssertEqual(try sh("stat -c %a \(unpacked)/bin/ql-mcast-client"), "755\n")
    }

    func testDefineTakesTheKernelAndTheInitrdContentsFromTheCommandLine() throws {
        try standardSetup()
        let env = ["PATH": "/usr/bin:/bin", "QLUSTAR_ROOT": dir]
        try sh("mkdir -p \(dir)/boot && echo kernel > \(dir)/boot/vmlinuz && echo module > \(dir)/boot/e1000.ko")
        let ok = try ReleaseTool.run(
            "qlustar-image",
            [
                "define", "node", "--modules", "slurm", "--kernel", dir + "/boot/vmlinuz", "--initrd-program",
                "/bin/sh",
                "--initrd-program", "/bin/mount", "--initrd-file", "lib/modules/e1000.ko=\(dir)/boot/e1000.ko",
                "--initrd-file", "etc/motd=/etc/hostname", "--initrd-compression", "zstd",
            ], environment: env)
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertEqual(ok.stdout, "image 'node': core + slurm\n")
        var expected = ImageDefinition(modules: ["slurm"], initrdPrograms: ["/bin/sh", "/bin/mount"])
        expected.kernel = dir + "/boot/vmlinuz"
        expected.initrdFiles = ["lib/modules/e1000.ko": dir + "/boot/e1000.ko", "etc/motd": "/etc/hostname"]
        expected.initrdCompression = "zstd"
        XCTAssertEqual(try ImageDefinition.load(root, ImageName("node")), expected)
        // Redefining the modules keeps what is not given; 'none' clears the kernel.
        XCTAssertEqual(
            try ReleaseTool.run(
                "qlustar-image", ["define", "node", "--modules", "core", "--kernel", "none"], environment: env
            ).status, 0)
        expected.modules = ["core"]
        expected.kernel = nil
        XCTAssertEqual(try ImageDefinition.load(root, ImageName("node")), expected)
        for (bad, message) in [
            ("lib/modules/e1000.ko", "--initrd-file 'lib/modules/e1000.ko' is not PATH_IN_INITRD=FILE"),
            (
                "../escape=/etc/hostname",
                "--initrd-file: '../escape' must be a relative path inside the initrd, without '..'"
            ),
            ("/abs=/etc/hostname", "--initrd-file: '/abs' must be a relative path inside the initrd, without '..'"),
        ] {
            let r = try ReleaseTool.run(
                "qlustar-image", ["define", "node", "--modules", "core", "--initrd-file", bad], environment: env)
            XCTAssertEqual(r.status, 64, bad)
            XCTAssertTrue(r.stderr.contains("Error: " + message), r.stderr)
        }
        let lz4 = try ReleaseTool.run(
            "qlustar-image", ["define", "node", "--modules", "core", "--initrd-compression", "lz4"], environment: env)
        XCTAssertEqual(lz4.status, 64)
        XCTAssertTrue(lz4.stderr.contains("Error: --initrd-compression must be gzip or zstd, not 'lz4'"), lz4.stderr)
        XCTAssertEqual(
            try ImageDefinition.load(root, ImageName("node")), expected, "a refused definition changes nothing")
    }

    func testZstdInitrdIsReproducibleReadableAndEditedInItsFormat() throws {
        try Requirements.require(
            FileManager.default.isExecutableFile(atPath: "/usr/bin/zstd"), "needs zstd (scripts/setup)")
        try standardSetup()
        let name = try ImageName("compute")
        var definition = try ImageDefinition.load(root, name)
        definition.initrdCompression = "zstd"
        try definition.store(root, name)
        try builder().build(name)
        let initrd = images + "/compute.initrd"
        XCTAssertEqual(try InitrdCompression.detect(initrd), .zstd)
        let names = try sh("zstd -dcq \(initrd) | cpio -it --quiet")
        XCTAssertTrue(names.contains("init\n") && names.contains("bin/ql-mcast-client\n"), names)
        XCTAssertEqual(try sh("zstd -dcq \(initrd) | cpio -i --quiet --to-stdout init"), InitScript.text(name))
        let first = try Lab.sha256(initrd)
        try builder().build(name, force: true)
        XCTAssertEqual(try Lab.sha256(initrd), first, "reproducible")
        // qlustar-image-edit -i keeps the format.
        let editor = ImageEditor(root: root, log: Logger(root: root, name: "qlustar-image-edit", echo: false))
        XCTAssertTrue(try editor.editBuilt(name, .initrd, command: "echo fix > added"))
        XCTAssertEqual(try InitrdCompression.detect(initrd), .zstd)
        XCTAssertEqual(try sh("zstd -dcq \(initrd) | cpio -i --quiet --to-stdout added"), "fix\n")
        // Back to gzip: the initrd's inputs changed, so it is rebuilt, and zcat reads it.
        definition.initrdCompression = nil
        try definition.store(root, name)
        try builder().build(name)
        XCTAssertEqual(try InitrdCompression.detect(initrd), .gzip)
        XCTAssertTrue(try sh("zcat \(initrd) | cpio -it --quiet").contains("bin/ql-mcast-client\n"))
        // A compression nobody knows is a clear error.
        definition.initrdCompression = "lz4"
        try definition.store(root, name)
        XCTAssertThrowsError(try builder().build(name)) { error in
            XCTAssertTrue(
                (error as? QlustarError)?.message.hasSuffix("initrdCompression 'lz4' is not gzip or zstd") ?? false,
                "\(error)")
        }
    }

    func testASecondNameOfAFileLinksToTheFirst() {
        XCTAssertEqual(ImageBuilder.relativeLink(from: "bin/sh", to: "bin/busybox"), "busybox")
        XCTAssertEqual(ImageBuilder.relativeLink(from: "sbin/x", to: "bin/busybox"), "../bin/busybox")
        XCTAssertEqual(ImageBuilder.relativeLink(from: "init2", to: "bin/busybox"), "bin/busybox")
        XCTAssertEqual(ImageBuilder.relativeLink(from: "usr/lib/a/b", to: "usr/c"), "../../c")
    }

    func testELFFilesAreToldFromScriptsAndStaticFromDynamic() throws {
        try Requirements.require(
            FileManager.default.isExecutableFile(atPath: "/bin/busybox"), "needs busybox-static (scripts/setup)")
        let busybox = try ELFFile("/bin/busybox")
        XCTAssertTrue(busybox.isELF)
        XCTAssertFalse(busybox.isDynamic, "busybox-static loads no libraries")
        let client = try ELFFile(try LabHarness.releaseBinary("ql-mcast-client").path)
        XCTAssertTrue(client.isELF && !client.isDynamic, "the initrd's client is one static program")
        let execd = try ELFFile(try LabHarness.releaseBinary("qluman-execd").path)
        XCTAssertTrue(execd.isELF && execd.isDynamic)
        let library = try ELFFile(
            try sh("ldd /bin/ls | awk '/libc.so/ {print $3}'").trimmingCharacters(in: .whitespacesAndNewlines))
        XCTAssertTrue(library.isELF && library.isDynamic)
        XCTAssertTrue(try ELFFile("/bin/sh").isELF, "dash, through its link")
        let script = dir + "/script"
        try "#!/bin/sh\necho hi\n".write(toFile: script, atomically: true, encoding: .utf8)
        XCTAssertFalse(try ELFFile(script).isELF)
        try "".write(toFile: script, atomically: true, encoding: .utf8)
        XCTAssertFalse(try ELFFile(script).isELF, "an empty file")
        XCTAssertThrowsError(try ELFFile(dir + "/missing"))
    }

    func testClearErrorsForWhatCannotBeBuilt() throws {
        try standardSetup()
        let b = try builder()
        XCTAssertThrowsError(try b.build(ImageName("gpu"))) { error in
            XCTAssertEqual(
                (error as? QlustarError)?.message,
                "image 'gpu' is not defined (expected \(dir)/etc/qlustar/images/gpu/image.json)")
        }
        try ImageDefinition(modules: ["cuda"]).store(root, ImageName("gpu"))
        XCTAssertThrowsError(try b.build(ImageName("gpu"))) { error in
            XCTAssertEqual(
                (error as? QlustarError)?.message, "module 'cuda' is not installed in \(modules) (installed: none)")
        }
        try sh(
            "echo '{\"modules\": [\"slurm\"], \"compression\": \"lz4x\"}' > \(dir)/etc/qlustar/images/gpu/image.json")
        XCTAssertThrowsError(try b.build(ImageName("gpu"))) { error in
            XCTAssertEqual(
                (error as? QlustarError)?.message,
                "\(dir)/etc/qlustar/images/gpu/image.json: compression 'lz4x' is not zstd, gzip or xz")
        }
        // Nothing half-built was published.
        XCTAssertFalse(FileManager.default.fileExists(atPath: images + "/gpu.img"))
    }

    func testHardLinkedLayersGiveTheSameImageAsTheOverlayAndLeaveModulesUntouched() throws {
        try standardSetup()
        let before = try TreeListing(of: modules).text
        let overlay = try builder().build(ImageName("compute"), force: true).record.sha256
        let b = try builder()
        b.useOverlay = false
        let linked = try b.build(ImageName("compute"), force: true).record.sha256
        XCTAssertEqual(linked, overlay)
        XCTAssertEqual(try TreeListing(of: modules).text, before, "building never writes into a module")
        XCTAssertEqual(try cat("etc/shadow"), "root:$6$salt$headhash:19000:0:99999:7:::\n")
        XCTAssertEqual(
            try String(contentsOfFile: modules + "/core/1.0/tree/etc/shadow", encoding: .utf8),
            "root:*:19000:0:99999:7:::\n")
    }

    func testKernelAndExtraInitrdFilesArePublishedAndTrackedAsInputs() throws {
        try standardSetup()
        try sh(
            "mkdir -p \(dir)/boot && head -c 5000 /dev/urandom > \(dir)/boot/vmlinuz && echo module > \(dir)/boot/e1000.ko"
        )
        var definition = try ImageDefinition.load(root, ImageName("compute"))
        definition.kernel = dir + "/boot/vmlinuz"
        definition.initrdFiles = ["lib/modules/e1000.ko": dir + "/boot/e1000.ko"]
        try definition.store(root, ImageName("compute"))
        let b = try builder()
        XCTAssertTrue(try b.build(ImageName("compute")).rebuilt)
        XCTAssertEqual(try Lab.sha256(images + "/compute.vmlinuz"), try Lab.sha256(dir + "/boot/vmlinuz"))
        XCTAssertTrue(try sh("zcat \(images)/compute.initrd | cpio -it --quiet").contains("lib/modules/e1000.ko\n"))
        XCTAssertFalse(try b.build(ImageName("compute")).rebuilt)
        try sh("echo newer >> \(dir)/boot/vmlinuz")
        XCTAssertTrue(try b.build(ImageName("compute")).rebuilt, "a new kernel is a new input")
        XCTAssertEqual(try Lab.sha256(images + "/compute.vmlinuz"), try Lab.sha256(dir + "/boot/vmlinuz"))
        definition.initrdFiles = ["../escape": dir + "/boot/e1000.ko"]
        try definition.store(root, ImageName("compute"))
        XCTAssertThrowsError(try b.build(ImageName("compute"))) { error in
            XCTAssertTrue(
                (error as? QlustarError)?.message.hasSuffix(
                    "initrd file '../escape' must be a relative path without '..'") ?? false, "\(error)")
        }
    }
}
