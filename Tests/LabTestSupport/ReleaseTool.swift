import Foundation

/// Runs a release tool as an administrator would, for the CLI tests: its exit status, standard
/// output and standard error, with `environment` only (no inherited settings).
public enum ReleaseTool {
    public static func run(_ tool: String, _ arguments: [String], environment: [String: String]) throws
        -> (status: Int32, stdout: String, stderr: String)
    {
        let p = Process()
        p.executableURL = try LabHarness.releaseBinary(tool)
        p.arguments = arguments
        p.environment = environment
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // Standard error on a thread: a full pipe must not block the tool while we read the other.
        let errors = Collected()
        let done = DispatchSemaphore(value: 0)
        let reader = err.fileHandleForReading
        let thread = Thread {
            errors.data = reader.readDataToEndOfFile()
            done.signal()
        }
        thread.start()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        done.wait()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: errors.data, as: UTF8.self))
    }

    /// Standard error, read on its thread. `@unchecked Sendable`: written once by the reader
    /// before it signals, read only after the wait.
    private final class Collected: @unchecked Sendable {
        var data = Data()
    }
}

extension ReleaseTool {
    /// Runs one of the project's scripts (`scripts/NAME`) with the test's environment. Its output
    /// goes through files, not pipes: a server the script leaves running may inherit a pipe and
    /// would keep it open for good.
    public static func script(_ name: String, _ arguments: [String]) throws
        -> (status: Int32, stdout: String, stderr: String)
    {
        let base = NSTemporaryDirectory() + "script-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        FileManager.default.createFile(atPath: base + ".out", contents: nil)
        FileManager.default.createFile(atPath: base + ".err", contents: nil)
        defer {
            try? FileManager.default.removeItem(atPath: base + ".out")
            try? FileManager.default.removeItem(atPath: base + ".err")
        }
        let p = Process()
        p.executableURL = LabHarness.repositoryRoot.appendingPathComponent("scripts/" + name)
        p.arguments = arguments
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: base + ".out"))
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: base + ".err"))
        try p.run()
        p.waitUntilExit()
        let o = (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? ""
        let e = (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? ""
        return (p.terminationStatus, o, e)
    }
}
