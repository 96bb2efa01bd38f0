import Foundation
import Logging
import Platform

#if canImport(Glibc)
    import Glibc
#endif

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
    let log: Logger

    public init(root: Root, log: Logger) {
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
        for name in names.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) })
        where !name.hasPrefix(".") {
            let path = dir + "/" + name
            guard FileSystem.isExecutableFile(path) else {
                log.warning("init.d: \(name) skipped (not an executable file)")
                results.append(Result(script: name, status: nil, outcome: "skipped", seconds: 0))
                continue
            }
            results.append(runOne(name, path: path, output: logDir + "/" + name + ".log"))
        }
        let failed = results.filter { $0.outcome != "ok" && $0.outcome != "skipped" }
        let failures = failed.isEmpty ? "" : ": " + failed.map(\.script).joined(separator: ", ")
        log.info("init.d: \(results.count) scripts, \(failed.count) failed\(failures)")
        return results
    }

    private func runOne(_ name: String, path: String, output: String) -> Result {
        let started = Date()
        log.info("init.d: running \(name)")
        let process: Subprocess
        do {
            process = try Subprocess(
                path, [], adding: [Root.environmentVariable: root.prefix], directory: root.prefix,
                output: .file(output),
                errors: .sameAsOutput)
        } catch {
            log.error("init.d: \(name) cannot start: \(error.message)")
            return Result(script: name, status: nil, outcome: "failed to start", seconds: 0)
        }
        // The script runs in its own process group; a child it leaves behind holds up nothing:
        // only the script's own end is waited for.
        guard let end = process.wait(seconds: timeoutSeconds) else {
            process.kill()
            _ = process.wait()
            let seconds = Date().timeIntervalSince(started)
            log.error("init.d: \(name) killed after \(Int(timeoutSeconds)) s (output: \(output))")
            return Result(script: name, status: nil, outcome: "timed out", seconds: seconds)
        }
        let seconds = Date().timeIntervalSince(started)
        let outcome = end.description
        var status: Int32?
        if case .exited(let s) = end { status = s }
        if outcome == "ok" {
            log.info("\(String(format: "init.d: %@ ok (%.2f s)", name, seconds))")
        } else {
            log.error("init.d: \(name) failed: \(outcome) (output: \(output))")
        }
        return Result(script: name, status: status, outcome: outcome, seconds: seconds)
    }
}
