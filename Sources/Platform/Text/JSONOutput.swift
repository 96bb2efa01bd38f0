import FoundationEssentials

/// The `--json` convention of every tool: pretty-printed, keys sorted, one document on
/// standard output; the text form otherwise.
public enum JSONOutput {
    /// `value` as the tools print it for scripts.
    public static func text<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// Prints `value` as JSON (and a line end) when `json`, else `text()` as it is.
    public static func print<T: Encodable>(_ value: T, json: Bool, text: () -> String) throws {
        if json {
            Swift.print(try Self.text(value))
        } else {
            Swift.print(text(), terminator: "")
        }
    }
}
