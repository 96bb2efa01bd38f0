/// A seeded, reproducible packet-drop model for tests and benchmarks (the kernel here has no
/// netem). Parsed from the `--loss` option:
///
/// - `none`
/// - `random:P` — each datagram dropped independently with probability P (0…1, or `5%`)
/// - `burst:P:L` — Gilbert–Elliott two-state model with mean loss P and mean burst length L
///   datagrams (every datagram in the bad state is lost)
/// - the short forms `P` (random) and `P,L` (burst)
///
/// optionally followed by `@SEED`.
public struct LossModel: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case none
        case random(Double)
        case burst(loss: Double, meanBurst: Double)
    }

    public let kind: Kind
    public let seed: UInt64
    private var rng: SplitMix64
    private var bad = false

    public init(_ kind: Kind, seed: UInt64 = 1) {
        self.kind = kind
        self.seed = seed
        rng = SplitMix64(seed: seed)
    }

    public static let none = LossModel(.none)

    /// The one loss syntax of every tool (`ql-mcast --loss`, `ql-mcast-client` and `ql-mcastd
    /// --simulate-loss`), as help texts state it.
    public static let syntax = "none, random:P, burst:P:LENGTH (short: P, P,LENGTH), optionally @SEED"

    /// Parses `none`, `random:0.05`, `random:5%`, `burst:0.05:8` and the short forms `0.05`
    /// (random) and `0.05,8` (burst), each optionally `@SEED` (default 1).
    public init(parsing text: String) throws(TransportError) {
        let (model, _) = try Self.parse(text)
        self = model
    }

    /// As `init(parsing:)`, also saying whether a seed was given (a caller may pick its own then).
    public static func parse(_ text: String) throws(TransportError) -> (model: LossModel, seed: UInt64?) {
        var spec = Substring(text)
        var given: UInt64?
        if let at = spec.firstIndex(of: "@") {
            guard let s = UInt64(spec[spec.index(after: at)...]) else {
                throw TransportError(.invalidArgument, "loss seed in '\(text)' is not a number")
            }
            given = s
            spec = spec[..<at]
        }
        let seed = given ?? 1
        // The short forms: P is random:P, P,LENGTH is burst:P:LENGTH.
        var parts = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        if parts.count == 1, let first = parts.first,
            first.first.map({ $0.isASCII && ($0.isNumber || $0 == ".") }) == true
        {
            let short = first.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            parts = short.count == 2 ? ["burst"] + short : ["random", first]
        }
        // Random loss may be total (a host multicast never reaches); burst loss must leave a good state.
        func fraction(_ s: String, allowAll: Bool) throws(TransportError) -> Double {
            let v = s.hasSuffix("%") ? Double(s.dropLast()).map { $0 / 100 } : Double(s)
            guard let v, v >= 0, allowAll ? v <= 1 : v < 1 else {
                throw TransportError(
                    .invalidArgument,
                    "loss '\(s)' must be a fraction \(allowAll ? "0…1" : "0…1, below 1,") (or a percentage)")
            }
            return v
        }
        switch parts.first {
        case "none" where parts.count == 1: return (LossModel(.none, seed: seed), given)
        case "random" where parts.count == 2:
            return (LossModel(.random(try fraction(parts[1], allowAll: true)), seed: seed), given)
        case "burst" where parts.count == 3:
            guard let l = Double(parts[2]), l >= 1 else {
                throw TransportError(.invalidArgument, "mean burst length in '\(text)' must be ≥ 1")
            }
            return (LossModel(.burst(loss: try fraction(parts[1], allowAll: false), meanBurst: l), seed: seed), given)
        default:
            throw TransportError(.invalidArgument, "loss '\(text)' is not one of: \(syntax)")
        }
    }

    /// Whether to drop the next datagram.
    public mutating func drop() -> Bool {
        switch kind {
        case .none: return false
        case .random(let p): return p > 0 && nextUnit() < p
        case .burst(let loss, let meanBurst):
            guard loss > 0 else { return false }
            // Bad → good with r = 1/L; good → bad with p chosen so the stationary loss is `loss`:
            // loss = p / (p + r)  ⇒  p = loss · r / (1 − loss).
            let r = 1 / meanBurst
            let p = loss * r / (1 - loss)
            if bad { if nextUnit() < r { bad = false } } else if nextUnit() < p { bad = true }
            return bad
        }
    }

    mutating func nextUnit() -> Double { rng.unit() }

    public var description: String {
        switch kind {
        case .none: "none"
        case .random(let p): "random:\(p)@\(seed)"
        case .burst(let l, let b): "burst:\(l):\(b)@\(seed)"
        }
    }

    public static func == (a: LossModel, b: LossModel) -> Bool { a.kind == b.kind && a.seed == b.seed }
}
