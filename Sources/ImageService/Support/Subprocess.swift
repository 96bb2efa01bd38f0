import Foundation

/// The external programs the tools run (cp, tar, ldd, mksquashfs, unsquashfs, mount): run to
/// completion; a failure becomes an error naming the step and carrying the program's own message.
package enum Subprocess {
    /// Runs `program` and returns its standard output.
    /// - Parameter code: The error code for a failure (the caller's domain: `.io`, `.union`…).
    @discardableResult
    package static func run(
        _ program: String, _ arguments: [String], step: String, code: ServiceError.Code = .io
    ) throws(ServiceError) -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        do { try process.run() } catch {
            throw ServiceError(code, "cannot \(step): cannot run \(program): \(error.localizedDescription)")
        }
        // Read both pipes before waiting: a full pipe would block the child. stderr on a thread.
        let errorBox = ErrorOutput()
        let reader = Thread { errorBox.data = errors.fileHandleForReading.readDataToEndOfFile() }
        reader.start()
        let outData = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while !errorBox.done { usleep(1_000) }
        guard process.terminationStatus == 0 else {
            let text = String(decoding: errorBox.data ?? Data(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw ServiceError(code, "cannot \(step): \(program) exited \(process.terminationStatus): \(text.suffix(500))")
        }
        return String(decoding: outData, as: UTF8.self)
    }

    /// The first executable of `candidates`, else the last one's base name (found on PATH).
    package static func locate(_ candidates: [String]) -> String {
        candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? (candidates.last.map { ($0 as NSString).lastPathComponent } ?? "")
    }
}

/// Standard error collected on a reader thread. `@unchecked Sendable`: written once by the
/// reader before `done` is set, read only after `done`.
private final class ErrorOutput: @unchecked Sendable {
    private let lock = NSLock()
    private var _data: Data?
    var data: Data? {
        get { lock.withLock { _data } }
        set { lock.withLock { _data = newValue } }
    }
    var done: Bool { lock.withLock { _data != nil } }
}
