import Foundation
import LabSupport
import XCTest

/// The multi-host tests' view of the lab: hosts, the release binaries, and a RAM-backed
/// scratch directory, all removed in `tearDown`, also when a test fails. Shared by the test
/// targets (a library only they depend on, so XCTest stays out of the tools).
public final class LabHarness {
    public let lab: Lab
    /// The release `ql-mcast`.
    public let binary: URL
    public let work: URL

    /// Network namespaces need root. CI runs as root, so there a non-root run is a failure; a
    /// developer's non-root run skips these tests, saying why. A missing release binary fails.
    public init(hosts: Int, mtu: Int = 1500, prefix: String = "qlt") throws {
        try Requirements.root("multi-host tests need root to create network namespaces")
        binary = try Self.releaseBinary("ql-mcast")
        // RAM-backed scratch, like a diskless node's image area.
        work = URL(fileURLWithPath: "/dev/shm").appendingPathComponent(
            "qlt-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        lab = try Lab(prefix: prefix, root: Self.repositoryRoot, hosts: hosts, mtu: mtu)
    }

    public static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent()
        .deletingLastPathComponent()

    /// A release tool the multi-process tests drive (from QL_MCAST_BIN, else .build/release).
    /// - Throws: when it is not built, naming the command that builds it.
    public static func releaseBinary(_ name: String) throws -> URL {
        let dir =
            ProcessInfo.processInfo.environment["QL_MCAST_BIN"]
            ?? repositoryRoot.appendingPathComponent(".build/release").path
        let binary = URL(fileURLWithPath: dir).appendingPathComponent(name)
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw LabError(
                "\(binary.path) missing: build it with `swift build -c release --product \(name)` (scripts/test does)")
        }
        return binary
    }

    public func address(_ host: Int) -> String { lab.address(host) }
    public func path(_ name: String) -> String { work.appendingPathComponent(name).path }

    public func start(on host: Int, _ command: [String], timeout: Int = 120, log: String) throws -> Process {
        try lab.start(on: host, command, timeout: timeout, log: path(log))
    }

    public func wait(_ p: Process, seconds: Double = 150) -> Int32 { lab.wait(p, seconds: seconds) }

    public func log(_ name: String) -> String { (try? String(contentsOfFile: path(name), encoding: .utf8)) ?? "" }

    public func json(_ name: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path(name)))) as! [String: Any]
    }

    /// A file of `size` random bytes and its SHA-256.
    public func makeObject(_ name: String, size: Int) throws -> (path: String, sha: String) {
        let p = path(name)
        try Lab.run("/bin/sh", ["-c", "head -c \(size) /dev/urandom > \(p)"])
        return (p, try Lab.sha256(p))
    }

    public func sha256(_ path: String) throws -> String { try Lab.sha256(path) }

    public func tearDown() {
        lab.down()
        try? FileManager.default.removeItem(at: work)
    }
}
