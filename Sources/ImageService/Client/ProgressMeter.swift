import FoundationEssentials
import Logging
import Platform
import Transport

#if canImport(Glibc)
    import Glibc
#endif

/// Progress of a long transfer: on a terminal a bar with rate and ETA, redrawn at most ten
/// times a second; otherwise (logs, the serial console of a booting node) one line per 10 %.
public final class ProgressMeter {
    private let total: UInt64
    private let label: String
    private let terminal: Bool
    private let log: Logger?
    private let started = MonotonicClock.nanoseconds()
    private var lastDraw: UInt64 = 0
    private var lastDecile = -1
    private var drawn = false
    public var enabled = true

    public init(total: UInt64, label: String, log: Logger?, terminal: Bool = isatty(2) != 0) {
        self.total = total
        self.label = label
        self.log = log
        self.terminal = terminal
    }

    /// Reports `done` bytes of `total` (by `via`: multicast or unicast).
    public func update(_ done: UInt64, via: String) {
        guard enabled else { return }
        let now = MonotonicClock.nanoseconds()
        let fraction = total == 0 ? 1 : min(1, Double(done) / Double(total))
        let seconds = max(1e-3, Double(now - started) / 1e9)
        let rate = Double(done) / seconds
        if terminal {
            guard now - lastDraw >= 100_000_000 || done >= total else { return }
            lastDraw = now
            let width = 30
            let filled = Int(fraction * Double(width))
            let eta = rate > 0 ? Double(total - min(total, done)) / rate : 0
            let bar = String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled)
            let figures = String(printf: "%3d%% %7.1f MB/s ETA %3.0fs", Int32(fraction * 100), rate / 1e6, eta)
            var line = "\r\(label) [\(bar)] \(figures) (\(via)) "
            line.withUTF8 { try? Posix.writeAll(2, UnsafeRawBufferPointer($0)) }
            drawn = true
        } else {
            let decile = Int(fraction * 10)
            guard decile > lastDecile else { return }
            lastDecile = decile
            log?.info("\(label): \(decile * 10)% (\(String(printf: "%.1f", rate / 1e6)) MB/s, \(via))")
        }
    }

    /// Ends the bar's line on a terminal.
    public func finish() {
        if terminal, drawn {
            "\n".utf8.withContiguousStorageIfAvailable { try? Posix.writeAll(2, UnsafeRawBufferPointer($0)) }
        }
        drawn = false
    }
}
