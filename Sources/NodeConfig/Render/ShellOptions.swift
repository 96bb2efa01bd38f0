/// An option file in `/etc/qlustar/options.d`: `KEY='value'` lines a shell script can source.
struct ShellOptions {
    private(set) var text: String

    init(header: String) { text = header }

    mutating func set(_ key: String, _ value: String) {
        text += "\(key)=\(Self.quote(value))\n"
    }

    mutating func set(_ key: String, _ value: Bool) { set(key, value ? "yes" : "no") }

    /// Single-quoted for the shell: `'` becomes `'\''`.
    static func quote(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }
}
