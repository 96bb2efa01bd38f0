import Foundation
import XCTest

/// Test hosts for multi-process tests: `scripts/lab` namespaces, the release `ql-mcast`
/// binary, bounded waits, and cleanup of every process and namespace, also on failure.
final class LabHarness {
    static let prefix = "qlt"
    let root: URL
    let binary: URL
    let work: URL
    private var processes: [Process] = []

    /// Skips when not root (namespaces need it); fails when the release binary is missing.
    init(hosts: Int, mtu: Int = 1500) throws {
        guard getuid() == 0 else { throw XCTSkip("multi-host tests need root (network namespaces)") }
        root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let binDir = ProcessInfo.processInfo.environment["QL_MCAST_BIN"] ?? root.appendingPathComponent(".build/release").path
        binary = URL(fileURLWithPath: binDir).appendingPathComponent("ql-mcast")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            XCTFail("\(binary.path) missing: build it with `swift build -c release` (scripts/test does)")
            throw XCTSkip("no release binary")
        }
        // RAM-backed scratch, like a diskless node's image area.
        work = URL(fileURLWithPath: "/dev/shm").appendingPathComponent("qlt-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        try lab(["up", "\(hosts)", "--mtu", "\(mtu)"])
    }

    func address(_ host: Int) -> String { "198.18.0.\(10 + host)" }

    @discardableResult
    func lab(_ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = root.appendingPathComponent("scripts/lab")
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(["QL_LAB_PREFIX": LabHarness.prefix]) { $1 }
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard p.terminationStatus == 0 else { throw LabError("lab \(args.joined(separator: " ")) failed: \(text)") }
        return text
    }

    /// Starts `command` on `host` (under `timeout`, so nothing outlives its bound).
    func start(on host: Int, _ command: [String], timeout: Int = 120, log: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        p.arguments = ["-k", "5", "\(timeout)", "ip", "netns", "exec", "\(LabHarness.prefix)-h\(host)"] + command
        let logURL = work.appendingPathComponent(log)
        FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let handle = try FileHandle(forWritingTo: logURL)
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        processes.append(p)
        return p
    }

    /// Waits for a process with a bound; returns its exit status.
    func wait(_ p: Process, seconds: Double = 150) -> Int32 {
        let deadline = Date().addingTimeInterval(seconds)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        if p.isRunning {
            p.terminate()
            p.waitUntilExit()
        }
        return p.terminationStatus
    }

    func log(_ name: String) -> String {
        (try? String(contentsOf: work.appendingPathComponent(name), encoding: .utf8)) ?? ""
    }

    func json(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: work.appendingPathComponent(name))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    func path(_ name: String) -> String { work.appendingPathComponent(name).path }

    /// Creates a file of `size` random bytes; returns its path and SHA-256 (from sha256sum).
    func makeObject(_ name: String, size: Int) throws -> (path: String, sha: String) {
        let path = self.path(name)
        try shell("head -c \(size) /dev/urandom > \(path)")
        return (path, try sha256(path))
    }

    func sha256(_ path: String) throws -> String {
        String(try shell("sha256sum \(path)").prefix(64))
    }

    @discardableResult
    func shell(_ script: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", script]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw LabError("'\(script)' exited \(p.terminationStatus)") }
        return String(decoding: data, as: UTF8.self)
    }

    /// Kills what is left, removes the hosts and the scratch directory.
    func tearDown() {
        for p in processes where p.isRunning {
            p.terminate()
            p.waitUntilExit()
        }
        _ = try? lab(["down"])
        try? FileManager.default.removeItem(at: work)
    }
}

struct LabError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
