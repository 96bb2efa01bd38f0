import Foundation
import Platform

/// The config classes of QluMan: named configurations stored in the registry, assigned to node
/// groups and overridden per node. A node's own assignment of a class replaces its group's.
///
/// Classes marked `allowsSeveral` (network FS mounts, ssh keys, Root FS Customizations) may be
/// assigned several times to one node or group; the node then gets all of them, by name.
public enum ConfigClass: String, CaseIterable, Codable, Sendable {
    case network
    case disk
    case networkFS = "network-fs"
    case openSM = "opensm"
    case ipmi
    case chroot
    case sshKeys = "ssh-keys"
    case rootFS = "root-fs"
    case misc
    case time
    case sssd
    case nis

    public var allowsSeveral: Bool { self == .networkFS || self == .sshKeys || self == .rootFS }

    /// The class named `text`.
    /// - Throws: `.invalidArgument` listing the classes.
    public init(parsing text: String) throws(QlustarError) {
        guard let c = ConfigClass(rawValue: text) else {
            throw QlustarError(
                .invalidArgument,
                "no config class \(ImageName.quoted(text)); classes: \(ConfigClass.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self = c
    }

    /// An example body, for `--help` and error messages.
    public var example: String {
        switch self {
        case .network:
            return #"{"interfaces":[{"name":"eth0","address":"boot","gateway":"192.168.52.1"},{"name":"ib0","type":"ipoib","address":"10.1.0.0/16"}]}"#
        case .disk: return #"{"disks":[{"device":"/dev/sdb","action":"format","fsType":"ext4","mountpoint":"/scratch","options":"noatime"}]}"#
        case .networkFS: return #"{"mounts":[{"source":"head:/srv/home","path":"/home","type":"nfs","options":"rw,hard","automount":true}]}"#
        case .openSM: return #"{"enabled":true,"priority":10}"#
        case .ipmi: return #"{"network":"10.2.0.0/16","gateway":"10.2.0.1"}"#
        case .chroot: return #"{"chroot":"devel"}"#
        case .sshKeys: return #"{"keys":["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA… admin@head"]}"#
        case .rootFS: return #"{"description":"site scripts"} (tree: /var/lib/qlustar/root-fs/NAME)"#
        case .misc: return #"{"mailRelay":"head","sshSlurmOnly":true}"#
        case .time: return #"{"servers":["192.168.52.1","192.168.52.2"]}"#
        case .sssd:
            return #"{"domains":[{"name":"example","provider":"ldap","uris":["ldaps://ldap.example.com"],"searchBase":"dc=example,dc=com","accessFilter":"(memberOf=cn=hpc,ou=groups,dc=example,dc=com)"}],"createHomes":true}"#
        case .nis: return #"{"domain":"cluster","servers":["192.168.52.1"]}"#
        }
    }

    /// Checks a body of this class and returns it in canonical form (sorted keys).
    /// - Throws: `.invalidArgument` naming the class, the config and the field that is wrong.
    public func canonical(_ json: [UInt8], name: String) throws(QlustarError) -> [UInt8] {
        let what = "\(rawValue) config \(ImageName.quoted(name))"
        do {
            switch self {
            case .network: return try Self.check(NetworkConfig.self, json, what) { c throws(QlustarError) in try c.validate() }
            case .disk: return try Self.check(DiskConfig.self, json, what) { c throws(QlustarError) in try c.validate() }
            case .networkFS: return try Self.check(NetworkFSConfig.self, json, what) { c throws(QlustarError) in try c.validate() }
            case .openSM: return try Self.check(OpenSMConfig.self, json, what) { c throws(QlustarError) in try c.validate() }
            case .ipmi: return try Self.check(IPMIConfig.self, json, what) { c throws(QlustarError) in try c.validate() }
            case .chroot: return try Self.check(ChrootConfig.self, json, what) { c throws(QlustarError) in try c.validate() }
            case .sshKeys: return try Self.check(SSHKeysConfig.self, json, what) { c throws(QlustarError) in try c.validate() }
            case .rootFS: return try Self.check(RootFSConfig.self, json, what) { c throws(QlustarError) in try c.validate() }
            case .misc: return try Self.check(MiscConfig.self, json, what) { c throws(QlustarError) in try c.validate() }
            case .time: return try Self.check(TimeConfig.self, json, what) { c throws(QlustarError) in try c.validate() }
            case .sssd: return try Self.check(SSSDConfig.self, json, what) { c throws(QlustarError) in try c.validate() }
            case .nis: return try Self.check(NISConfig.self, json, what) { c throws(QlustarError) in try c.validate() }
            }
        }
    }

    private static func check<T: Codable>(
        _ type: T.Type, _ json: [UInt8], _ what: String, _ validate: (T) throws(QlustarError) -> Void
    ) throws(QlustarError) -> [UInt8] {
        guard json.count <= 256 * 1024 else { throw QlustarError(.invalidArgument, "\(what): larger than 256 KiB") }
        let value: T
        do { value = try JSONDecoder().decode(T.self, from: Data(json)) } catch {
            throw QlustarError(.invalidArgument, "\(what): \(describe(error))")
        }
        do { try validate(value) } catch { throw QlustarError(.invalidArgument, "\(what): \(error.message)") }
        return canonicalJSON(value)
    }

    /// A decoding error as an administrator reads it: the field path and what was expected.
    static func describe(_ error: Error) -> String {
        func path(_ keys: [CodingKey]) -> String {
            let p = keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return p.hasPrefix(".") ? String(p.dropFirst()) : (p.isEmpty ? "the body" : p)
        }
        switch error as? DecodingError {
        case .typeMismatch(let type, let c)?: return "\(path(c.codingPath)): expected \(name(type))"
        case .valueNotFound(let type, let c)?: return "\(path(c.codingPath)): expected \(name(type)), found null"
        case .keyNotFound(let key, let c)?: return "\(path(c.codingPath + [key])) is missing"
        case .dataCorrupted(let c)?:
            return c.codingPath.isEmpty ? "not valid JSON" : "\(path(c.codingPath)): \(c.debugDescription)"
        default: return "\(error)"
        }
    }

    private static func name(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type: return "a number"
        case is Bool.Type: return "true or false"
        default: return type is any Collection.Type ? "a list" : "an object"
        }
    }
}

/// JSON with sorted keys: the same value always encodes to the same bytes.
package func canonicalJSON<T: Encodable>(_ value: T) -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    // Encoding plain Codable structs of strings, numbers and arrays cannot fail.
    return Array(try! encoder.encode(value))
}
