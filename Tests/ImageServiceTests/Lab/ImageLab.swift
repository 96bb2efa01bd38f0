import Foundation
import LabSupport
import LabTestSupport
import XCTest

/// A head node (h0) running the release `ql-mcastd`, and nodes h1…hN running the release
/// `ql-mcast-client`, on the test hosts. Every process and namespace goes in `tearDown`.
final class ImageLab {
    let harness: LabHarness
    let daemon: URL
    let client: URL
    let head: String
    var daemonProcess: Process?
    var clients: [Int: Process] = [:]
    /// Extra arguments for `ql-mcastd status` (the CA when the daemon speaks TLS).
    var statusArguments: [String] = []

    init(nodes: Int) throws {
        harness = try LabHarness(hosts: nodes + 1, prefix: "qli")
        daemon = try LabHarness.releaseBinary("ql-mcastd")
        client = try LabHarness.releaseBinary("ql-mcast-client")
        head = harness.path("head")
        try FileManager.default.createDirectory(atPath: images, withIntermediateDirectories: true)
    }

    var images: String { head + "/var/lib/qlustar/images" }
    var server: String { harness.address(0) }

    /// A random image of `size` bytes; returns its SHA-256.
    @discardableResult
    func addImage(_ name: String, size: Int) throws -> String {
        try Lab.run("/bin/sh", ["-c", "head -c \(size) /dev/urandom > \(images)/\(name).img"])
        return try Lab.sha256(images + "/\(name).img")
    }

    /// A squashfs image holding /etc/motd and a random blob; returns its SHA-256.
    @discardableResult
    func addSquashfsImage(_ name: String, motd: String) throws -> String {
        let tree = harness.path("tree-\(name)")
        try FileManager.default.createDirectory(atPath: tree + "/etc", withIntermediateDirectories: true)
        try motd.write(toFile: tree + "/etc/motd", atomically: true, encoding: .utf8)
        try Lab.run("/bin/sh", ["-c", "head -c 3000000 /dev/urandom > \(tree)/etc/blob"])
        try Lab.run("/usr/bin/mksquashfs", [tree, images + "/\(name).img", "-noappend", "-quiet", "-comp", "zstd"])
        return try Lab.sha256(images + "/\(name).img")
    }

    /// Starts the daemon and waits (bounded) until its control port answers.
    func startDaemon(_ extra: [String] = [], timeout: Int = 120, statusArguments: [String] = []) throws {
        self.statusArguments = statusArguments
        daemonProcess = try harness.start(
            on: 0,
            [daemon.path, "--root", head, "--interface", server, "--listen", server, "--shutdown-grace", "0"] + extra,
            timeout: timeout, log: "daemon.log")
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            if (try? status()) != nil { return }
            usleep(100_000)
        }
        throw LabError("ql-mcastd did not answer within 15 s: \(harness.log("daemon.log"))")
    }

    func output(_ node: Int, _ image: String) -> String { harness.path("n\(node)/\(image).img") }

    /// Starts `ql-mcast-client` on node `i` for `image`.
    @discardableResult
    func startClient(_ i: Int, _ image: String, _ extra: [String] = [], timeout: Int = 120) throws -> Process {
        let p = try harness.start(
            on: i,
            [
                client.path, "--server", server, "--image", image, "--output", output(i, image), "--root",
                harness.path("n\(i)"),
                "--quiet", "--report-json", harness.path("report\(i).json"),
            ] + extra, timeout: timeout, log: "client\(i).log")
        clients[i] = p
        return p
    }

    /// Waits for node `i`'s client; returns its exit status.
    func wait(_ i: Int, seconds: Double = 120) -> Int32 { harness.wait(clients[i]!, seconds: seconds) }

    func report(_ i: Int) throws -> [String: Any] { try harness.json("report\(i).json") }

    /// `ql-mcastd status --json`, asked from the head node.
    func status() throws -> [String: Any] {
        let text = try harness.lab.exec(
            on: 0, [daemon.path, "status", "--server", server, "--json", "--timeout", "3"] + statusArguments)
        return try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
    }

    func counters() throws -> [String: Any] { try status()["counters"] as! [String: Any] }
    func sessions() throws -> [[String: Any]] { try status()["sessions"] as! [[String: Any]] }

    func tearDown() { harness.tearDown() }
}
