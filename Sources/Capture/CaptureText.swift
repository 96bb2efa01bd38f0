import Foundation

/// The analysis as an administrator reads it, and as JSON.
public enum CaptureText {
    public static func json(_ a: CaptureAnalysis) throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try e.encode(a), as: UTF8.self)
    }

    public static func table(_ a: CaptureAnalysis) -> String {
        var out = ""
        for s in a.sessions {
            let object = s.object.map { "\($0)" + (s.size.map { " (\($0) bytes)" } ?? "") } ?? "object \(s.objectID)"
            out += String(
                format: "session 0x%08x  %@  sender %@ → %@\n", s.sessionID, object, s.sender.isEmpty ? "?" : s.sender,
                s.group)
            let seconds = max(s.lastSeconds - s.firstSeconds, 1e-6)
            out +=
                "  data \(s.data)  parity \(s.parity) (FEC \(String(format: "%.1f", s.fecOverhead * 100)) %)  repairs \(s.repairs)"
                + "  NAKs \(s.naks) (entries \(s.nakEntries), blocks \(s.distinctNakedBlocks), repeated "
                + String(format: "%.0f %%", s.nakRedundancy * 100) + ")  announces \(s.announces)  FIN \(s.fins)"
                + "  status \(s.statusReports)\n"
            out += String(
                format: "  %.1f MB in %.2f s: %.1f MB/s", Double(s.bytes) / 1e6, seconds,
                Double(s.bytes) / 1e6 / seconds)
            out += "; per second: " + s.rateOverTime.map { String(format: "%.0f", $0) }.joined(separator: " ") + "\n"
            if !s.receivers.isEmpty {
                out += "  receiver          NAKs  symbols asked  loss est.  status\n"
                for r in s.receivers {
                    out +=
                        "  " + r.address.padding(toLength: 16, withPad: " ", startingAt: 0)
                        + String(
                            format: "%6d  %13d  %8.2f %%  %6d\n", r.naks, r.symbolsRequested, r.lossEstimate * 100,
                            r.statusReports)
                }
            }
        }
        let malformed = a.malformed.values.reduce(0, +)
        out +=
            "packets \(a.packets), sessions \(a.sessions.count), foreign \(a.foreign), malformed \(malformed)"
            + (a.malformed.isEmpty
                ? ""
                : " (" + a.malformed.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                    + ")")
            + "\n"
        return out
    }
}
