#if canImport(Glibc)
    import Glibc
#endif
import Foundation
import Platform

/// `qluman-execd --run-initd`: runs the executables in `/lib/qlustar/init.d` (placed there by
/// Root FS Customizations) in alphanumeric (byte) order, each with a time limit. Each script's
/// output goes to `/var/log/qlustar/init.d/NAME.log`, its status to the execd log; one failing
/// script is reported and the others still run.
public struct InitDRunner {
    public static let directory = "/lib/qlustar/init.d"

    public struct Result: Sendable, Codable, Equatable {
        public var script: String
        /// Exit status; nil when skipped (not executable) or killed at the time limit.
        public var status: Int32?
        public var outcome: String
        public var seconds: Double
    }

    public let root: Root
    public var timeoutSeconds = 600.0
    let log: EventLog

    public init(root: Root, log: EventLog) {
        self.root = root
        self.log = log
    }

    /// Runs them all; returns one result per entry of the directory (none when it is missing).
    public func run() -> [Result] {
        let dir = root.path(Self.directory)
        guard let names = try? FileSystem.list(dir) else {
            log.info("no \(dir): no init.d scripts to run")
            return []
        }
        let logDir = root.logs + "/init.d"
        try? FileSystem.makeDirectories(logDir)
        var results: [Result] = []
        for name in names.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) where !name.hasPrefix(".") {
            let path = dir + "/" + name
            guard FileSystem.isExecutableFile(path) else {
                log.warning("init.d: \(name) skipped (not an executable file)")
                results.append(Result(script: name, status: nil, outcome: "skipped", seconds: 0))
                continue
            }
            results.append(runOne(name, path: path, output: logDir + "/" + name + ".log"))
        }
        let failed = results.filter { $0.outcome != "ok" && $0.outcome != "skipped" }
        log.info("init.d: \(results.count) scripts, \(failed.count) failed" + (failed.isEmpty ? "" : ": " + failed.map(\.script).joined(separator: ", ")))
        return results
    }

    private func runOne(_ name: String, path: String, output: String) -> Result {
        let started = Date()
        log.info("init.d: running \(name)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.currentDirectoryURL = URL(fileURLWithPath: root.prefix)
        var environment = ProcessInfo.processInfo.environment
        environment[Root.environmentVariable] = root.prefix
        process.environment = environment
        guard FileManager.default.createFile(atPath: output, contents: nil), let handle = FileHandle(forWritingAtPath: output) else {
            log.error("init.d: \(name): cannot open its log \(output)")
            return Result(script: name, status: nil, outcome: "failed to start", seconds: 0)
        }
        defer { try? handle.close() }
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch {
            log.error("init.d: \(name) cannot start: \(error.localizedDescription)")
            return Result(script: name, status: nil, outcome: "failed to start", seconds: 0)
        }
        // Polled: the script runs in its own process group, and a child it leaves behind must
        // not hold up the wait (Foundation's termination handler can lag until it exits).
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while process.isRunning, Date() < deadline { usleep(5_000) }
        if process.isRunning {
            try? Posix.kill(-process.processIdentifier, SIGKILL)
            try? Posix.kill(process.processIdentifier, SIGKILL)
            while process.isRunning { usleep(5_000) }
            let seconds = Date().timeIntervalSince(started)
            log.error("init.d: \(name) killed after \(Int(timeoutSeconds)) s (output: \(output))")
            return Result(script: name, status: nil, outcome: "timed out", seconds: seconds)
        }
        let seconds = Date().timeIntervalSince(started)
        let status = process.terminationStatus
        let killed = process.terminationReason == .uncaughtSignal
        let outcome = killed ? "killed by signal \(status)" : (status == 0 ? "ok" : "exit \(status)")
        if outcome == "ok" {
            log.info(String(format: "init.d: %@ ok (%.2f s)", name, seconds))
        } else {
            log.error("init.d: \(name) failed: \(outcome) (output: \(output))")
        }
        return Result(script: name, status: killed ? nil : status, outcome: outcome, seconds: seconds)
    }
}
