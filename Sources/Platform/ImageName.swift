/// The name of an image: the file `NAME.img` in the image directory.
///
/// Names come off the network, so they are checked before they touch a path: 1–64 characters
/// from `A–Z a–z 0–9 . _ + -`, not starting with a dot or dash — no `/`, no `..`, no control
/// characters, nothing that could leave the image directory.
public struct ImageName: Sendable, Hashable, Codable, CustomStringConvertible {
    public let value: String

    public init(_ text: String) throws(QlustarError) {
        let bytes = Array(text.utf8)
        guard (1...64).contains(bytes.count) else {
            throw QlustarError(.invalidArgument, "image name must be 1–64 characters (got \(bytes.count))")
        }
        for c in bytes {
            let ok =
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                || c == 0x2E || c == 0x5F || c == 0x2B || c == 0x2D
            guard ok else {
                throw QlustarError(
                    .invalidArgument,
                    "image name \(ImageName.quoted(text)) may only contain letters, digits, '.', '_', '+' and '-'")
            }
        }
        guard bytes[0] != 0x2E, bytes[0] != 0x2D else {
            throw QlustarError(.invalidArgument, "image name \(ImageName.quoted(text)) must not start with '.' or '-'")
        }
        value = text
    }

    /// The image's file name in the image directory.
    public var fileName: String { value + ".img" }
    public var description: String { value }

    /// `text` printable for a message, whatever it contains (control characters escaped, cut).
    package static func quoted(_ text: String) -> String {
        let shown = text.unicodeScalars.prefix(80).map {
            $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F ? String($0) : "\\u{\(String($0.value, radix: 16))}"
        }
        return "'" + shown.joined() + (text.unicodeScalars.count > 80 ? "…" : "") + "'"
    }
}
