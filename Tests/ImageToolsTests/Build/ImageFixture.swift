import Foundation
import ImageService
import ImageTools
import LabSupport
import LabTestSupport
import Logging
import Platform
import XCTest

/// A root prefix with modules, copy files and an image definition, for the image tooling tests.
/// Builds set file owners, so it needs root (as CI runs); elsewhere the tests skip, saying why.
final class ImageFixture {
    let dir: String
    let root: Root

    init() throws {
        try Requirements.root("image builds set file owners")
        dir = NSTemporaryDirectory() + "images-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        root = Root(dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(atPath: dir) }

    @discardableResult
    func sh(_ command: String) throws -> String { try Lab.run("/bin/sh", ["-c", command]) }

    var modules: String { dir + "/var/lib/qlustar/image-modules" }
    var images: String { dir + "/var/lib/qlustar/images" }

    /// Installs module `name` `version` from a shell script that fills `$T` (its tree).
    func install(
        _ name: String, _ version: String, packages: [(String, String)], changelog: String? = nil, tar: Bool = false,
        _ fill: String
    ) throws {
        let base = "\(modules)/\(name)/\(version)"
        let tree = tar ? dir + "/src-\(name)-\(version)" : base + "/tree"
        try sh("mkdir -p \(base) \(tree) && cd \(tree) && T=\(tree) && \(fill)")
        if tar { try sh("tar -C \(tree) --numeric-owner -cf \(base)/tree.tar . && rm -rf \(tree)") }
        let manifest = ModuleManifest(
            name: name, version: version, packages: packages.map { .init(name: $0.0, version: $0.1) },
            changelog: changelog)
        try JSONEncoder().encode(manifest).write(to: URL(fileURLWithPath: base + "/module.json"))
    }

    func builder() throws -> ImageBuilder {
        ImageBuilder(
            root: root, log: Logger(root: root, name: "qlustar-image", echo: false),
            clientBinary: try LabHarness.releaseBinary("ql-mcast-client").path)
    }

    func standardSetup() throws {
        try install(
            "core", "1.0", packages: [("bash", "5.2-1"), ("coreutils", "9.1-1")],
            changelog: "core (1.0)\n  * First release.\n",
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
}
