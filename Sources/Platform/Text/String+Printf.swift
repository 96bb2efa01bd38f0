import Glibc

extension String {
    /// `format` filled in by the C library's `vsnprintf`, as `printf(3)` describes.
    ///
    /// Foundation's `String(format:)` lives in the ICU-backed part of Foundation; the programs
    /// that go into a node's initrd must not carry that (it is 39 MB), so everything on their
    /// path formats numbers here. Only C conversions work (`%d`, `%ld`, `%f`, `%x`, `%s` with a C
    /// string); `%@` does not.
    /// - Parameters:
    ///   - format: a `printf(3)` format.
    ///   - arguments: its arguments, in order.
    public init(printf format: String, _ arguments: CVarArg...) {
        var capacity = 128
        while true {
            var buffer = [CChar](repeating: 0, count: capacity)
            let length = withVaList(arguments) { list in
                buffer.withUnsafeMutableBufferPointer { vsnprintf($0.baseAddress, capacity, format, list) }
            }
            guard length >= 0 else {
                self = format
                return
            }
            if Int(length) < capacity {
                self = String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
                return
            }
            capacity = Int(length) + 1
        }
    }

    /// One line of text as another host sent it, safe to print on a terminal or log: every
    /// control character (newlines, escape sequences) becomes a space.
    public var printableLine: String {
        String(map { c in c.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7f } ? c : " " })
    }

    /// Without the whitespace and newlines at either end.
    public var trimmed: String {
        let isSpace: (Character) -> Bool = { $0.isWhitespace || $0.isNewline }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(self[first...last])
    }

    /// Everything before the last `/` (`""` when there is none; `/` for a file in the root), as
    /// `dirname` without its `.`.
    public var parentPath: String {
        guard let slash = lastIndex(of: "/") else { return "" }
        return slash == startIndex ? "/" : String(self[..<slash])
    }
}

extension Substring {
    /// One line of text as another host sent it, safe to print on a terminal or log: every
    /// control character (newlines, escape sequences) becomes a space.
    public var printableLine: String {
        String(map { c in c.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7f } ? c : " " })
    }

    /// Without the whitespace and newlines at either end.
    public var trimmed: String { String(self).trimmed }
}
