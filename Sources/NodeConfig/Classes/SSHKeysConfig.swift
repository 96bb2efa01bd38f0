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
    public func validate() throws(QlustarError) {
        guard !keys.isEmpty else { throw FieldCheck.fail("ssh-keys", "needs at least one key") }
        for (i, key) in keys.enumerated() {
            let what = "keys[\(i)]"
            _ = try FieldCheck.line(key, what, limit: 16_384)
            let fields = key.split(separator: " ", maxSplits: 2)
            guard fields.count >= 2, Self.types.contains(String(fields[0])) else {
                throw FieldCheck.fail(
                    what, "must start with a key type (\(Self.types.sorted().joined(separator: ", "))) and the key")
            }
            let type = Array(fields[0].utf8)
            guard let blob = Data(base64Encoded: String(fields[1])), blob.count > 4 + type.count,
                Array(blob.prefix(4)) == [0, 0, 0, UInt8(type.count)],
                Array(blob.dropFirst(4).prefix(type.count)) == type
            else { throw FieldCheck.fail(what, "the key data is not a valid \(fields[0]) public key") }
        }
    }
}

extension ConfigClass {
    public static let sshKeys = ConfigClass(declaring: "ssh-keys")
}

extension SSHKeysConfig: NodeConfigClass {
    public static var kind: ConfigClass { .sshKeys }
    public static var optionsKey: String? { "sshKeys" }
    public static var allowsSeveral: Bool { true }
    public static var example: String { #"{"keys":["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA… admin@head"]}"# }

    /// `/root/.ssh/authorized_keys` (0600, in a 0700 directory) with the keys of every config.
    public static func render(
        _ configs: [NodeOptions.Named<Self>], into plan: inout FilePlan, _ context: inout RenderContext
    ) {
        guard !configs.isEmpty else { return }
        let origin = context.source(kind)
        plan.directory("/root/.ssh", mode: 0o700, origin: origin)
        var text = context.header(origin)
        for named in configs { text += named.config.keys.map { $0 + "\n" }.joined() }
        plan.file("/root/.ssh/authorized_keys", text, mode: 0o600, origin: origin)
    }
}
