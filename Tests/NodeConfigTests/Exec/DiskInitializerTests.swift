import Foundation
import ImageService
import LabSupport
import LabTestSupport
import Logging
import NodeConfig
import Platform
import XCTest

/// Local disks on loop devices this test makes: only the disks the configuration names are
/// touched; dry-run touches none.
final class DiskInitializerTests: XCTestCase {
    private var loops: [String] = []
    private var mounted: [String] = []
    private var fixture: ConfigFixture?

    override func tearDown() {
        for m in mounted.reversed() { _ = try? Lab.run("/bin/umount", [m]) }
        for l in loops { _ = try? Lab.run("/usr/sbin/losetup", ["-d", l]) }
        fixture = nil
    }

    private func loop(_ f: ConfigFixture, _ name: String) throws -> String {
        let file = f.dir + "/" + name + ".disk"
        try Lab.run("/bin/sh", ["-c", "head -c \(48 << 20) /dev/urandom > '\(file)'"])
        let device = try Lab.run("/usr/sbin/losetup", ["-f", "--show", file]).trimmingCharacters(
            in: .whitespacesAndNewlines)
        loops.append(device)
        return device
    }

    func testOnlyTheNamedDisksAreInitialisedAndMountedDryRunTouchesNothing() throws {
        try Requirements.root("loop devices and mounts need root")
        let f = try ConfigFixture()
        fixture = f
        let scratch = try loop(f, "scratch")
        let other = try loop(f, "other")
        let otherBefore = try Lab.sha256(other)
        let root = Root(f.dir + "/node")
        let log = Logger(root: root, name: "qluman-execd", echo: false)
        let config = try DiskConfig.parse(
            "# DEVICE ACTION FSTYPE MOUNTPOINT OPTIONS\n\(scratch) format ext4 /scratch noatime\n/dev/qlustar-absent keep xfs /data -\n"
        )

        var dry = DiskInitializer(root: root, log: log)
        dry.dryRun = true
        XCTAssertEqual(
            dry.run(config).map(\.detail),
            [
                "would run: mkfs.ext4 -F -q \(scratch)",
                "would run: mount -t ext4 -o noatime \(scratch) \(root.path("/scratch"))",
                "/dev/qlustar-absent is not present (or not a block device): skipped",
            ])
        XCTAssertEqual(
            try? Lab.run("/usr/sbin/blkid", ["-o", "value", "-s", "TYPE", scratch]), nil, "dry-run made no file system")

        let steps = DiskInitializer(root: root, log: log).run(config)
        XCTAssertEqual(steps.map(\.action), ["mkfs", "mount", "absent"])
        mounted.append(root.path("/scratch"))
        XCTAssertEqual(try Lab.run("/usr/sbin/blkid", ["-o", "value", "-s", "TYPE", scratch]), "ext4\n")
        let mounts = try String(contentsOfFile: "/proc/mounts", encoding: .utf8)
        XCTAssertTrue(mounts.contains("\(scratch) \(root.path("/scratch")) ext4 rw,noatime"), mounts)
        XCTAssertEqual(try Lab.sha256(other), otherBefore, "a disk the configuration does not name is untouched")

        // keep: the file system stays (and what is on it); another kind is refused, not formatted.
        try "kept\n".write(toFile: root.path("/scratch/marker"), atomically: false, encoding: .utf8)
        try Lab.run("/bin/umount", [root.path("/scratch")])
        mounted.removeAll()
        let keep = try DiskConfig.parse("\(scratch) keep ext4 /scratch -\n")
        XCTAssertEqual(DiskInitializer(root: root, log: log).run(keep).map(\.action), ["mount"])
        mounted.append(root.path("/scratch"))
        XCTAssertEqual(try String(contentsOfFile: root.path("/scratch/marker"), encoding: .utf8), "kept\n")
        try Lab.run("/bin/umount", [root.path("/scratch")])
        mounted.removeAll()
        let wrong = try DiskConfig.parse("\(scratch) keep xfs /scratch -\n")
        XCTAssertEqual(
            DiskInitializer(root: root, log: log).run(wrong).map(\.detail),
            ["\(scratch) holds ext4, the configuration says xfs: left alone"])
        XCTAssertEqual(try Lab.run("/usr/sbin/blkid", ["-o", "value", "-s", "TYPE", scratch]), "ext4\n")
    }

    func testADiskConfigFileWithMistakesNamesTheLine() {
        XCTAssertThrowsError(try DiskConfig.parse("/dev/sdb format ext4 /scratch -\n/dev/sdc format btrfs /x -\n")) {
            error in
            XCTAssertEqual(
                (error as! QlustarError).message,
                "disk-config line 2: expected DEVICE format|keep ext4|xfs|swap MOUNTPOINT OPTIONS")
        }
        XCTAssertThrowsError(try DiskConfig.parse("/etc/shadow format ext4 /x -\n")) { error in
            XCTAssertTrue((error as! QlustarError).message.contains("is not below /dev"))
        }
    }
}
