/// Shared options given before the subcommand (`qluman --root R node add …`), moved to where
/// ArgumentParser reads them: after the subcommand's own words, before a `--` that starts a remote
/// command's arguments. Each subcommand declares these options itself, so one meaning holds
/// wherever they are written.
public enum LeadingOptions {
    /// `arguments` (without the program name) with the options in front of the first word moved
    /// behind the others.
    /// - Parameters:
    ///   - valued: Options that take a value (`--root R` or `--root=R`).
    ///   - flags: Options without one (`--json`).
    public static func hoist(_ arguments: [String], valued: Set<String>, flags: Set<String>) -> [String] {
        var leading: [String] = []
        var i = 0
        while i < arguments.count {
            let word = arguments[i]
            let name = String(word.split(separator: "=", maxSplits: 1).first ?? "")
            if flags.contains(word) || (valued.contains(name) && word.contains("=")) {
                leading.append(word)
                i += 1
            } else if valued.contains(word), i + 1 < arguments.count {
                leading += [word, arguments[i + 1]]
                i += 2
            } else {
                break
            }
        }
        guard !leading.isEmpty, i < arguments.count else { return arguments }
        var rest = Array(arguments[i...])
        let end = rest.firstIndex(of: "--") ?? rest.count
        rest.insert(contentsOf: leading, at: end)
        return rest
    }
}
