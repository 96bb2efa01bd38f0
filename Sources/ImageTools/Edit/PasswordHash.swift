import CCrypt
import Platform

/// SHA-512 crypt hashes (`$6$salt$…`, what /etc/shadow holds) with libcrypt.
public enum PasswordHash {
    /// Hashes `password` with a fresh random salt.
    /// - Throws: `.io` when libcrypt cannot make a salt or a hash.
    public static func sha512(_ password: String) throws(QlustarError) -> String {
        guard let setting = crypt_gensalt_ra("$6$", 0, nil, 0) else {
            throw QlustarError(.io, "libcrypt cannot make a SHA-512 salt")
        }
        defer { free(setting) }
        return try hash(password, setting: String(cString: setting))
    }

    /// Hashes `password` with the salt (and rounds) of `setting` (`$6$salt$` or a whole hash).
    public static func hash(_ password: String, setting: String) throws(QlustarError) -> String {
        var data = crypt_data()
        // A result starting with "*" (0x2A) means failure.
        guard let out = crypt_r(password, setting, &data), out.pointee != 0x2A else {
            throw QlustarError(.io, "libcrypt cannot hash with '\(setting.prefix(20))'")
        }
        return String(cString: out)
    }

    /// Whether `hash` is a well-formed SHA-512 crypt hash.
    public static func isSHA512(_ hash: String) -> Bool {
        let parts = hash.split(separator: "$", omittingEmptySubsequences: false)
        return hash.hasPrefix("$6$") && parts.count >= 4 && parts.last!.count == 86
    }
}

#if canImport(Glibc)
    import Glibc
#endif
