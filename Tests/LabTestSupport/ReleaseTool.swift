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
