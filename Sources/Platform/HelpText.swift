/// `--help` text as it is written in the source: prose hard-wrapped at the source's width,
/// examples indented. ArgumentParser keeps every newline and wraps again at the terminal's
/// width, which leaves half-empty lines in the middle of sentences; `paragraphs` joins the
/// lines of each prose paragraph so that only the terminal's wrapping remains.
public enum HelpText {
    /// Joins a line to the one before when both are prose: neither blank, the line not
    /// indented nor a list item (`- `, `* `), the one before not indented (an example, a table
    /// row). Blank lines and indented lines stay as they are.
    public static func paragraphs(_ text: String) -> String {
        var out: [String] = []
        var previousIsProse = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let isBlank = line.allSatisfy { $0 == " " }
            let indented = line.first == " " || line.first == "\t"
            let listItem = line.hasPrefix("- ") || line.hasPrefix("* ")
            if previousIsProse, !isBlank, !indented, !listItem, let last = out.popLast() {
                out.append(last + " " + line)
            } else {
                out.append(String(line))
            }
            previousIsProse = !isBlank && !indented
        }
        return out.joined(separator: "\n")
    }
}
