/// Slurm's hostlist syntax, both ways: `beo-[001-100,105]`, `rack[1-2]-n[01-16]` and comma lists
/// expand to names; a list of names folds back to its shortest hostlist.
///
/// A range keeps the width of its lower bound when that has leading zeros (`[001-100]` gives
/// `001` … `100`); several bracket groups in one word multiply (`rack[1-2]-n[01-02]` is four
/// names). Commas inside brackets separate ranges, outside them words.
public enum Hostlist {
    /// The most names one expression may expand to.
    public static let maxNames = 100_000

    /// The names `expression` stands for, in order, without repeats.
    /// - Throws: `.invalidArgument` naming the character at fault, or when the expression stands
    ///   for more than `maxNames` names.
    public static func expand(_ expression: String) throws(QlustarError) -> [String] {
        let chars = Array(expression)
        var names: [String] = []
        var seen = Set<String>()
        var start = 0
        var depth = 0
        for i in 0...chars.count {
            let c: Character? = i < chars.count ? chars[i] : nil
            if c == "[" {
                guard depth == 0 else { throw error(expression, i, "'[' inside brackets") }
                depth = 1
            } else if c == "]" {
                guard depth == 1 else { throw error(expression, i, "']' without '['") }
                depth = 0
            } else if c == nil || (c == "," && depth == 0) {
                guard depth == 0 else { throw error(expression, i, "'[' is not closed") }
                guard i > start else { throw error(expression, i, "an empty name") }
                for name in try expandWord(chars, start..<i, expression, room: maxNames - names.count)
                where seen.insert(name).inserted {
                    names.append(name)
                }
                start = i + 1
            } else if let c, !(c.isASCII && (c.isLetter || c.isNumber || "-_.".contains(c) || c == ",")) {
                throw error(expression, i, "'\(c)' cannot be part of a host name")
            }
        }
        return names
    }

    /// One word (no top-level comma): its bracket groups multiplied out.
    private static func expandWord(_ chars: [Character], _ range: Range<Int>, _ expression: String, room: Int)
        throws(QlustarError) -> [String]
    {
        var results = [""]
        var i = range.lowerBound
        while i < range.upperBound {
            if chars[i] != "[" {
                var j = i
                while j < range.upperBound, chars[j] != "[" { j += 1 }
                let literal = String(chars[i..<j])
                results = results.map { $0 + literal }
                i = j
                continue
            }
            var close = i + 1
            while chars[close] != "]" { close += 1 }
            let values = try groupValues(chars, (i + 1)..<close, expression)
            guard results.count * values.count <= room else {
                throw QlustarError(
                    .invalidArgument, "hostlist '\(expression)' stands for more than \(maxNames) names")
            }
            results = results.flatMap { prefix in values.map { prefix + $0 } }
            i = close + 1
        }
        return results
    }

    /// The values of one bracket group: `1-3,7,010-012`.
    private static func groupValues(_ chars: [Character], _ range: Range<Int>, _ expression: String)
        throws(QlustarError) -> [String]
    {
        guard !range.isEmpty else { throw error(expression, range.lowerBound, "empty brackets") }
        var values: [String] = []
        var start = range.lowerBound
        for i in range.lowerBound...range.upperBound where i == range.upperBound || chars[i] == "," {
            let part = String(chars[start..<i])
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            // At most 9 ASCII digits each: Int holds them.
            guard (1...2).contains(bounds.count), bounds.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCII) }),
                bounds.allSatisfy({ $0.allSatisfy(\.isNumber) }), bounds.allSatisfy({ $0.count <= 9 }),
                let low = Int(bounds[0]), let high = Int(bounds[bounds.count - 1])
            else { throw error(expression, start, "'\(part)' is not a number or a range like 01-16") }
            guard low <= high else { throw error(expression, start, "the range \(part) runs backwards") }
            guard high - low < maxNames, values.count + (high - low + 1) <= maxNames else {
                throw QlustarError(
                    .invalidArgument, "hostlist '\(expression)' stands for more than \(maxNames) names")
            }
            let width = bounds[0].count
            for v in low...high { values.append(pad(v, width)) }
            start = i + 1
        }
        return values
    }

    private static func pad(_ v: Int, _ width: Int) -> String {
        let digits = String(v)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }

    private static func error(_ expression: String, _ index: Int, _ what: String) -> QlustarError {
        QlustarError(
            .invalidArgument,
            "hostlist '\(expression)': \(what) at character \(index + 1)\n  \(expression)\n  "
                + String(repeating: " ", count: index) + "^")
    }

    /// The shortest hostlist for `names`: names that differ only in their last number fold into
    /// one bracket group of ranges (`beo-001,beo-002,beo-007` → `beo-[001-002,007]`), zero-padded
    /// numbers with those of the same width (and unpadded ones long enough to need no padding);
    /// the rest stay as they are. Sorted by prefix, then number.
    public static func fold(_ names: [String]) -> String {
        struct Key: Hashable {
            var prefix: String
            var suffix: String
            var width: Int
        }
        var numbered: [(key: Key, value: Int, digits: Int)] = []
        var plain: [String] = []
        for name in Set(names) {
            let chars = Array(name)
            // The last run of digits splits the name into prefix, number and suffix.
            var end = chars.count
            while end > 0, !(chars[end - 1].isASCII && chars[end - 1].isNumber) { end -= 1 }
            var begin = end
            while begin > 0, chars[begin - 1].isASCII, chars[begin - 1].isNumber { begin -= 1 }
            guard begin < end, end - begin <= 9, let value = Int(String(chars[begin..<end])) else {
                plain.append(name)
                continue
            }
            let digits = end - begin
            let padded = chars[begin] == "0" && digits > 1
            numbered.append(
                (
                    Key(prefix: String(chars[0..<begin]), suffix: String(chars[end...]), width: padded ? digits : 0),
                    value, digits
                ))
        }
        // An unpadded number joins the padded group of its own width (100 belongs with 001–099).
        let paddedWidths = Set(numbered.map(\.key).filter { $0.width > 0 })
        var groups: [Key: [Int]] = [:]
        for var n in numbered {
            if n.key.width == 0 {
                let joined = Key(prefix: n.key.prefix, suffix: n.key.suffix, width: n.digits)
                if paddedWidths.contains(joined) { n.key = joined }
            }
            groups[n.key, default: []].append(n.value)
        }
        var words: [(sort: String, number: Int, text: String)] = plain.map { ($0, 0, $0) }
        for (key, values) in groups {
            let sorted = values.sorted()
            var ranges: [String] = []
            var low = sorted[0]
            var high = sorted[0]
            for v in sorted.dropFirst() + [Int.min] {
                if v == high + 1 {
                    high = v
                    continue
                }
                ranges.append(low == high ? pad(low, key.width) : pad(low, key.width) + "-" + pad(high, key.width))
                low = v
                high = v
            }
            let text =
                sorted.count == 1
                ? key.prefix + pad(sorted[0], key.width) + key.suffix
                : key.prefix + "[" + ranges.joined(separator: ",") + "]" + key.suffix
            words.append((key.prefix + "\u{0}" + key.suffix, sorted[0], text))
        }
        return words.sorted { ($0.sort, $0.number) < ($1.sort, $1.number) }.map(\.text).joined(separator: ",")
    }
}
