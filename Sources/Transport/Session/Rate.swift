/// A sending rate in bytes per second; 0 means unpaced.
public struct Rate: Sendable, Equatable, Codable, CustomStringConvertible {
    public var bytesPerSecond: UInt64

    public init(bytesPerSecond: UInt64) { self.bytesPerSecond = bytesPerSecond }

    public static let unpaced = Rate(bytesPerSecond: 0)
    public var isUnpaced: Bool { bytesPerSecond == 0 }

    /// Parses network-style bit rates: `2g` = 2 Gbit/s, `500m`, `100k`, a plain number of bit/s,
    /// or `0`/`unlimited` for no pacing. Suffixes are decimal (×10³, ×10⁶, ×10⁹).
    public init(parsing text: String) throws(TransportError) {
        let t = text.lowercased()
        if t == "0" || t == "unlimited" || t == "unpaced" {
            self = .unpaced
            return
        }
        var digits = Substring(t)
        var mult = 1.0
        if let last = digits.last, let m = ["k": 1e3, "m": 1e6, "g": 1e9][String(last)] {
            mult = m
            digits = digits.dropLast()
        }
        if digits.hasSuffix("bit") { digits = digits.dropLast(3) }
        guard let v = Double(digits), v > 0, v * mult >= 8_000 else {
            throw TransportError(.invalidArgument, "rate '\(text)' is not a bit rate like 2g, 500m or 100k (≥ 8k)")
        }
        bytesPerSecond = UInt64(v * mult / 8)
    }

    public var description: String {
        if isUnpaced { return "unpaced" }
        let bits = Double(bytesPerSecond) * 8
        if bits >= 1e9 { return "\(Double(Int(bits / 1e7)) / 100)g" }
        if bits >= 1e6 { return "\(Double(Int(bits / 1e4)) / 100)m" }
        return "\(Int(bits / 1e3))k"
    }
}
