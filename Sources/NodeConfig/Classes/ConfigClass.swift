import Foundation
import Platform

/// The name of a config class of QluMan (`network`, `ssh-keys`, …): named configurations stored
/// in the registry, assigned to node groups and overridden per node. A node's own assignment of a
/// class replaces its group's; classes that allow several (network FS mounts, ssh keys, Root FS
/// Customizations) may be assigned several times, and the node gets all of them, by name.
///
/// Everything else about a class lives in its body type (`NodeConfigClass`), one file per class.
public struct ConfigClass: RawRepresentable, Hashable, Codable, Sendable, CustomStringConvertible {
    public let rawValue: String

    /// A known class by its name; nil for any other name.
    public init?(rawValue: String) {
        guard ConfigClass.all.contains(where: { $0.kind.rawValue == rawValue }) else { return nil }
        self.rawValue = rawValue
    }

    /// Declares a class: only the class's own type does this, for its `kind`.
    init(declaring name: String) { rawValue = name }

    public var description: String { rawValue }

    // Codable as its name (RawRepresentable's default): an unknown name does not decode.

    /// Every class, in the order administrators read them (`--help`, errors) and in which a
    /// node's plan is rendered. A new class adds its body type here.
    public static let all: [any NodeConfigClass.Type] = [
        NetworkConfig.self, DiskConfig.self, NetworkFSConfig.self, OpenSMConfig.self, IPMIConfig.self,
        ChrootConfig.self, SSHKeysConfig.self, RootFSConfig.self, MiscConfig.self, TimeConfig.self,
        SSSDConfig.self, NISConfig.self,
    ]

    public static var allCases: [ConfigClass] { all.map { $0.kind } }

    /// The body type of the class.
    public var body: any NodeConfigClass.Type {
        // Every ConfigClass value is one of `all` (the only initialisers check or declare it).
        ConfigClass.all.first { $0.kind == self }!
    }

    public var allowsSeveral: Bool { body.allowsSeveral }

    /// An example body, for `--help` and error messages.
    public var example: String { body.example }

    /// The class named `text`.
    /// - Throws: `.invalidArgument` listing the classes.
    public init(parsing text: String) throws(QlustarError) {
        guard let c = ConfigClass(rawValue: text) else {
            throw QlustarError(
                .invalidArgument,
                "no config class \(ImageName.quoted(text)); classes: \(ConfigClass.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        self = c
    }

    /// Checks a body of this class and returns it in canonical form (sorted keys).
    /// - Throws: `.invalidArgument` naming the class, the config and the field that is wrong.
    public func canonical(_ json: [UInt8], name: String) throws(QlustarError) -> [UInt8] {
        try body.canonical(json, what: "\(rawValue) config \(ImageName.quoted(name))")
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
