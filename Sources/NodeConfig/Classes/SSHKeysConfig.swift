import Foundation
import Platform

/// The SSH authorized_keys config class: public keys allowed to log in to the node as root.
public struct SSHKeysConfig: Codable, Sendable, Equatable {
    public var keys: [String]

    static let types: Set<String> = [
        "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
    ]

    /// Each key is one line `TYPE BASE64 [COMMENT]` whose blob really is a key of that type (the
    /// blob starts with the type name, length-prefixed, as OpenSSH encodes it).
    func validate() throws(QlustarError) {
        guard !keys.isEmpty else { throw FieldCheck.fail("ssh-keys", "needs at least one key") }
        for (i, key) in keys.enumerated() {
            let what = "keys[\(i)]"
            _ = try FieldCheck.line(key, what, limit: 16_384)
            let fields = key.split(separator: " ", maxSplits: 2)
            guard fields.count >= 2, Self.types.contains(String(fields[0])) else {
                throw FieldCheck.fail(what, "must start with a key type (\(Self.types.sorted().joined(separator: ", "))) and the key")
            }
            let type = Array(fields[0].utf8)
            guard let blob = Data(base64Encoded: String(fields[1])), blob.count > 4 + type.count,
                Array(blob.prefix(4)) == [0, 0, 0, UInt8(type.count)], Array(blob.dropFirst(4).prefix(type.count)) == type
            else { throw FieldCheck.fail(what, "the key data is not a valid \(fields[0]) public key") }
        }
    }
}
