import Foundation

/// Test hosts made by `scripts/lab` (network namespaces on one bridge), for the multi-host
/// tests and the benchmarks: start processes on a host under a time bound, wait with a bound,
/// and remove every process and namespace again.
public final class Lab {
    public let prefix: String
    public let root: URL
    public let hosts: Int
    private var processes: [Process] = []

    /// Creates `hosts` hosts (replacing any lab of the same prefix).
    /// - Parameters:
    ///   - root: The repository root (where `scripts/lab` is).
    public init(prefix: String, root: URL, hosts: Int, mtu: Int = 1500) throws {
        self.prefix = prefix
        self.root = root
        self.hosts = hosts
        try lab(["up", "\(hosts)", "--mtu", "\(mtu)"])
    }

    /// Host `i`'s address (h0 is the head node).
    public func address(_ i: Int) -> String { "198.18.0.\(10 + i)" }

    /// Runs `scripts/lab` with our prefix; returns its output.
    @discardableResult
    public func lab(_ args: [String]) throws -> String {
        try Lab.run(root.appendingPathComponent("scripts/lab").path, args, environment: ["QL_LAB_PREFIX": prefix])
    }

    /// Starts `command` on host `i` under `timeout` seconds; output goes to `log`.
    public func start(on i: Int, _ command: [String], timeout: Int = 120, log: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        p.arguments = ["-k", "5", "\(timeout)", "ip", "netns", "exec", "\(prefix)-h\(i)"] + command
        FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        processes.append(p)
        return p
    }

    /// Sends `signal` to the program `start` ran on a host, by its pid: the one child of its
    /// `timeout` (`ip netns exec` execs the program in place). Signalling `timeout` itself would
    /// not do: it cannot pass SIGKILL on, and passing any other signal on arms its kill timer.
    public func signal(_ p: Process, _ signal: Int32) throws {
        let pid = p.processIdentifier
        let children = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        guard let child = children.split(separator: " ").first.flatMap({ Int32($0) }) else {
            throw LabError("pid \(pid) runs no program (ended already?)")
        }
        try Lab.run("/bin/kill", ["-s", "\(signal)", "\(child)"])
    }

    /// Waits for `p` at most `seconds`, terminating it then; returns its exit status.
    public func wait(_ p: Process, seconds: Double = 150) -> Int32 {
        let deadline = Date().addingTimeInterval(seconds)
        while p.isRunning && Date() < deadline { usleep(5_000) }
        if p.isRunning {
            p.terminate()
            p.waitUntilExit()
        }
        return p.terminationStatus
    }

    /// Runs a command on host `i` to completion and returns its output.
    @discardableResult
    public func exec(on i: Int, _ command: [String]) throws -> String {
        try Lab.run("/usr/sbin/ip", ["netns", "exec", "\(prefix)-h\(i)"] + command)
    }

    /// Kills what is still running and removes the hosts.
    public func down() {
        for p in processes where p.isRunning {
            p.terminate()
            p.waitUntilExit()
        }
        processes.removeAll()
        _ = try? lab(["down"])
    }

    /// Runs a program to completion; throws with its output when it fails.
    @discardableResult
    public static func run(_ path: String, _ args: [String], environment: [String: String] = [:]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard p.terminationStatus == 0 else { throw LabError("\(path) \(args.joined(separator: " ")) failed: \(text)") }
        return text
    }

    /// `sha256sum` of a file.
    public static func sha256(_ path: String) throws -> String {
        String(try run("/usr/bin/sha256sum", [path]).prefix(64))
    }
}

public struct LabError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
