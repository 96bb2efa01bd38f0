import Foundation
import LabSupport
import LabTestSupport
import XCTest

/// ql-mcastd and ql-mcast-client as an administrator meets them: one clear line and a
/// documented exit status for every mistake.
final class ToolCLITests: XCTestCase {
    func run(_ tool: String, _ args: [String]) throws -> (status: Int32, stderr: String, stdout: String) {
        let dir = NSTemporaryDirectory() + "cli-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try ReleaseTool.run(tool, args, environment: ["QLUSTAR_ROOT": dir, "PATH": "/usr/bin:/bin"])
        return (r.status, r.stderr, r.stdout)
    }

    func testDaemonConfigurationMistakesAreOneLineExitOne() throws {
        let conf = NSTemporaryDirectory() + "bad-\(getpid()).conf"
        try "interface = 198.18.0.10\nwindow = 2 seconds\n".write(toFile: conf, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: conf) }
        let cases: [([String], String)] = [
            ([], "Error: no --interface: give the address of the head node's interface to the compute nodes\n"),
            (
                ["--interface", "1.2.3"],
                "Error: interface = '1.2.3': expected the name or IPv4 address of a local interface\n"
            ),
            (
                ["--interface", "127.0.0.1", "--group-pool", "10.0.0.0/24"],
                "Error: group-pool = '10.0.0.0/24': expected a multicast CIDR like 239.255.1.0/24 (group pool 10.0.0.0/24 is not inside 224.0.0.0/4)\n"
            ),
            (
                ["--interface", "127.0.0.1", "--config", conf],
                "Error: \(conf):2: window = '2 seconds': expected seconds in 0.0…60.0\n"
            ),
            (
                ["--interface", "127.0.0.1", "--config", "/nonexistent.conf"],
                "Error: configuration file: cannot open /nonexistent.conf: No such file or directory\n"
            ),
        ]
        for (args, expected) in cases {
            let r = try run("ql-mcastd", args)
            XCTAssertEqual(r.status, 1, args.joined(separator: " "))
            XCTAssertEqual(r.stderr, expected, args.joined(separator: " "))
        }
    }

    func testClientMistakesAndUnreachableServer() throws {
        let bad = try run("ql-mcast-client", ["--server", "127.0.0.1", "--image", "../etc", "-o", "/tmp/x"])
        XCTAssertEqual(bad.status, 64)
        XCTAssertTrue(
            bad.stderr.hasPrefix(
                "Error: image name '../etc' may only contain letters, digits, '.', '_', '+' and '-'\n"), bad.stderr)
        let loss = try run(
            "ql-mcast-client", ["--server", "127.0.0.1", "--image", "a", "-o", "/tmp/x", "--simulate-loss", "lots"])
        XCTAssertEqual(loss.status, 64)
        XCTAssertTrue(
            loss.stderr.hasPrefix(
                "Error: --simulate-loss: loss 'lots' is not one of: none, random:P, burst:P:LENGTH (short: P, P,LENGTH), optionally @SEED\n"
            ), loss.stderr)
        let away = try run(
            "ql-mcast-client",
            ["--server", "127.0.0.1:1", "--image", "a", "-o", "/tmp/x", "--server-timeout", "1", "--quiet"])
        XCTAssertEqual(away.status, 4)
        XCTAssertTrue(
            away.stderr.hasSuffix(
                "error cannot reach ql-mcastd at 127.0.0.1:1 within 1 s: cannot reach the control port 127.0.0.1:1: Connection refused\n"
            ),
            away.stderr)
    }

    func testClientTakesAListOfHeadNodesAndRefusesABadOne() throws {
        for (list, message) in [
            ("a,a", "Error: --server: 'a,a' names head node a:7799 twice\n"),
            ("a,", "Error: --server: empty address\n"),
            ("a,b:99999", "Error: --server: 'b:99999' is not HOST[:PORT]\n"),
            ("1,2,3,4,5,6,7,8,9", "Error: --server: '1,2,3,4,5,6,7,8,9' names more than 8 head nodes\n"),
        ] {
            let r = try run("ql-mcast-client", ["--server", list, "--image", "a", "-o", "/tmp/x"])
            XCTAssertEqual(r.status, 64, list)
            XCTAssertTrue(r.stderr.hasPrefix(message), r.stderr)
        }
        // Neither head answers: both are named, each with its reason.
        let away = try run(
            "ql-mcast-client",
            ["--server", "127.0.0.1:1,127.0.0.1:2", "--image", "a", "-o", "/tmp/x", "--server-timeout", "1", "--quiet"])
        XCTAssertEqual(away.status, 4)
        XCTAssertTrue(
            away.stderr.hasSuffix(
                "error cannot reach ql-mcastd at 127.0.0.1:1, 127.0.0.1:2 within 1 s: cannot reach the control port 127.0.0.1:1: Connection refused; cannot reach the control port 127.0.0.1:2: Connection refused\n"
            ),
            away.stderr)
    }

    func testDaemonFollowsTheRegistryQlumandConfNames() throws {
        // A head whose qlumand.conf names the registry: ql-mcastd, not told otherwise, uses it too.
        let dir = NSTemporaryDirectory() + "conf-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/etc/qlustar", withIntermediateDirectories: true)
        try "registry = \(dir)/shared.db\n".write(
            toFile: dir + "/etc/qlustar/qlumand.conf", atomically: true, encoding: .utf8)
        let r = try ReleaseTool.run(
            "ql-mcastd", ["--interface", "127.0.0.1", "--root", dir], environment: ["PATH": "/usr/bin:/bin"])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(
            r.stderr,
            "Error: registry \(dir)/shared.db does not exist (create it with qluman, or give --registry none)\n")
        // $QLUSTAR_REGISTRY comes first, as for qluman.
        let env = try ReleaseTool.run(
            "ql-mcastd", ["--interface", "127.0.0.1", "--root", dir],
            environment: ["PATH": "/usr/bin:/bin", "QLUSTAR_REGISTRY": dir + "/other.db"])
        XCTAssertEqual(
            env.stderr,
            "Error: registry \(dir)/other.db does not exist (create it with qluman, or give --registry none)\n")
    }

    func testHelpDocumentsOptionsExitCodesAndDefaults() throws {
        let client = try run("ql-mcast-client", ["--help"]).stdout
        for text in [
            "--server", "--image", "--output", "--union", "--mount", "--unicast", "--simulate-loss", "Exit status:",
            "3  verification failed",
        ] {
            XCTAssertTrue(client.contains(text), "ql-mcast-client --help lacks \(text)")
        }
        let daemon = try run("ql-mcastd", ["serve", "--help"]).stdout
        for text in [
            "--root", "--listen", "--interface", "--group-pool", "--port-range", "--window", "--rate", "--config",
            "--max-sessions", "--max-clients",
        ] {
            XCTAssertTrue(daemon.contains(text), "ql-mcastd serve --help lacks \(text)")
        }
    }

    /// `--union DIR --mount` as the initrd runs it (root): the image loop-mounted read-only, a
    /// tmpfs for changes, the chroot reserved, and their union mounted where the node switches to. Unicast from a daemon on 127.0.0.1, so it runs
    /// in this host's mount namespace and the test can look at and remove the mounts.
    func testUnionWithMountLoopMountsTheImageAndATmpfs() throws {
        try Requirements.root("mounting the image needs root")
        let dir = NSTemporaryDirectory() + "mount-\(getpid())"
        let images = dir + "/head/var/lib/qlustar/images"
        try FileManager.default.createDirectory(atPath: images, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/tree/etc", withIntermediateDirectories: true)
        try "mounted\n".write(toFile: dir + "/tree/etc/motd", atomically: true, encoding: .utf8)
        try Lab.run("/usr/bin/mksquashfs", [dir + "/tree", images + "/compute.img", "-noappend", "-quiet"])
        let union = dir + "/node/union"
        defer {
            _ = try? Lab.run("/bin/umount", [union + "/root"])
            _ = try? Lab.run("/bin/umount", [union + "/image"])
            _ = try? Lab.run("/bin/umount", [union + "/rw"])
            try? FileManager.default.removeItem(atPath: dir)
        }
        let daemon = Process()
        daemon.executableURL = try LabHarness.releaseBinary("ql-mcastd")
        daemon.arguments = [
            "--root", dir + "/head", "--interface", "127.0.0.1", "--listen", "127.0.0.1:17799", "--shutdown-grace", "0",
        ]
        daemon.standardError = FileHandle.nullDevice
        try daemon.run()
        defer {
            daemon.terminate()
            daemon.waitUntilExit()
        }
        let r = try run(
            "ql-mcast-client",
            [
                "--server", "127.0.0.1:17799", "--image", "compute", "-o", dir + "/node/compute.img", "--unicast",
                "--union",
                dir + "/node", "--mount", "--quiet", "--server-timeout", "20",
            ])
        XCTAssertEqual(r.status, 0, r.stderr)
        let mounts = try String(contentsOfFile: "/proc/mounts", encoding: .utf8)
        XCTAssertTrue(mounts.contains(" \(union)/image squashfs ro"), mounts)
        XCTAssertTrue(mounts.contains(" \(union)/rw tmpfs rw"), mounts)
        XCTAssertEqual(try String(contentsOfFile: union + "/image/etc/motd", encoding: .utf8), "mounted\n")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: union + "/chroot"), [])
        // The merged root: the image's files, changes going to the tmpfs, the image untouched.
        XCTAssertTrue(mounts.contains(" \(union)/root overlay rw"), mounts)
        XCTAssertEqual(try String(contentsOfFile: union + "/root/etc/motd", encoding: .utf8), "mounted\n")
        try "changed\n".write(toFile: union + "/root/etc/motd", atomically: false, encoding: .utf8)
        XCTAssertEqual(try String(contentsOfFile: union + "/rw/upper/etc/motd", encoding: .utf8), "changed\n")
        XCTAssertEqual(try String(contentsOfFile: union + "/image/etc/motd", encoding: .utf8), "mounted\n")
    }
}
