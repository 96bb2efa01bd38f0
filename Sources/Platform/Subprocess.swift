import Foundation

/// The external programs the tools run (cp, tar, ldd, mksquashfs, unsquashfs, mount): run to
/// completion; a failure becomes an error naming the step and carrying the program's own message.
package enum Subprocess {
    /// Runs `program` and returns its standard output.
    /// - Parameter code: The error code for a failure (the caller's domain: `.io`, `.union`…).
    @discardableResult
    package static func run(
        _ program: String, _ arguments: [String], step: String, code: QlustarError.Code = .io
    ) throws(QlustarError) -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        do { try process.run() } catch {
            throw QlustarError(code, "cannot \(step): cannot run \(program): \(error.localizedDescription)")
        }
        // Read both pipes before waiting: a full pipe would block the child. stderr on a thread.
        let errorOutput = ErrorOutput()
        let stderrDone = DispatchSemaphore(value: 0)
        Thread {
            errorOutput.data = errors.fileHandleForReading.readDataToEndOfFile()
            stderrDone.signal()
        }.start()
        let outData = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        stderrDone.wait()
        guard process.terminationStatus == 0 else {
            let text = String(decoding: errorOutput.data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw QlustarError(code, "cannot \(step): \(program) exited \(process.terminationStatus): \(text.suffix(500))")
        }
        return String(decoding: outData, as: UTF8.self)
    }

    /// The first executable of `candidates`, else the last one's base name (found on PATH).
    package static func locate(_ candidates: [String]) -> String {
        candidates.first { FileSystem.isExecutableFile($0) } ?? (candidates.last.map { ($0 as NSString).lastPathComponent } ?? "")
    }
}

/// Standard error collected on a reader thread. `@unchecked Sendable`: written once by the
/// reader before it signals, read only after the wait.
private final class ErrorOutput: @unchecked Sendable {
    var data = Data()
}
