/// Comma-separated values as RFC 4180 writes them: fields with a comma, a quote or a line break
/// in double quotes, a quote inside doubled; CRLF or LF line ends; a header row names the columns.
public enum CSV {
    /// The rows of `text`, each a list of fields; blank lines are skipped.
    /// - Parameter maxRows: More rows than this are refused.
    /// - Throws: `.invalidArgument` naming the line of a quote that is not closed or text after a
    ///   closing quote.
    public static func rows(_ text: String, maxRows: Int) throws(QlustarError) -> [[String]] {
        var rows: [[String]] = []
        var row: [String] = []
        var field: [UInt8] = []
        var quoted = false
        var afterQuote = false
        var line = 1
        var rowLine = 1
        let bytes = Array(text.utf8)
        var i = 0
        func endField() {
            row.append(String(decoding: field, as: UTF8.self))
            field.removeAll(keepingCapacity: true)
            afterQuote = false
        }
        func endRow() throws(QlustarError) {
            endField()
            if !(row.count == 1 && row[0].isEmpty) {
                guard rows.count < maxRows else {
                    throw QlustarError(.invalidArgument, "more than \(maxRows) rows (line \(line))")
                }
                rows.append(row)
            }
            row = []
        }
        while i < bytes.count {
            let b = bytes[i]
            i += 1
            if quoted {
                if b == UInt8(ascii: "\"") {
                    if i < bytes.count, bytes[i] == UInt8(ascii: "\"") {
                        field.append(b)
                        i += 1
                    } else {
                        quoted = false
                        afterQuote = true
                    }
                } else {
                    if b == UInt8(ascii: "\n") { line += 1 }
                    field.append(b)
                }
                continue
            }
            switch b {
            case UInt8(ascii: ","):
                endField()
            case UInt8(ascii: "\r") where i < bytes.count && bytes[i] == UInt8(ascii: "\n"):
                continue
            case UInt8(ascii: "\n"):
                try endRow()
                line += 1
                rowLine = line
            case UInt8(ascii: "\"") where field.isEmpty && !afterQuote:
                quoted = true
            default:
                guard !afterQuote else {
                    throw QlustarError(.invalidArgument, "line \(line): text after a closing quote")
                }
                field.append(b)
            }
        }
        guard !quoted else { throw QlustarError(.invalidArgument, "line \(rowLine): a quote is not closed") }
        if !field.isEmpty || !row.isEmpty || afterQuote { try endRow() }
        return rows
    }

    /// `fields` as one line (without its line end), quoting what needs it.
    public static func line(_ fields: [String]) -> String {
        fields.map { f in
            f.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                ? "\"" + String(f.flatMap { $0 == "\"" ? ["\"", "\""] : [$0] }) + "\"" : f
        }.joined(separator: ",")
    }
}
