/// systemd's unit names for paths (`systemd-escape --path`): `/srv/home-1` → `srv-home\x2d1`.
public enum SystemdUnitName {
    /// The escaped form of an absolute, normalised path (no `//`, `.` or `..`).
    public static func escape(path: String) -> String {
        let trimmed = path.split(separator: "/").joined(separator: "/")
        guard !trimmed.isEmpty else { return "-" }
        var out = ""
        for (i, byte) in trimmed.utf8.enumerated() {
            let keep =
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x3A || byte == 0x5F || (byte == 0x2E && i > 0)
            if byte == 0x2F {
                out += "-"
            } else if keep {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "\\x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
            }
        }
        return out
    }
}
