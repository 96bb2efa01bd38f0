import Foundation
import Platform

/// Everything qlumand tells one node at configure time: who it is and the config of every class
/// assigned to it (its own assignment, else its group's). Root FS Customization trees travel
/// beside it as archives (`RootFSArchive`), listed in `rootFS`.
public struct NodeOptions: Sendable {
    public struct Identity: Codable, Sendable, Equatable {
        public var name: String
        public var ip: String
        public var prefix: Int
        public var macs: [String]

        public init(name: String, ip: String, prefix: Int, macs: [String]) {
            self.name = name
            self.ip = ip
            self.prefix = prefix
            self.macs = macs
        }
    }

    /// A config of a class that a node may have several of, with its name.
    public struct Named<Body: Codable & Sendable & Equatable>: Codable, Sendable, Equatable {
        public var name: String
        public var config: Body
    }

    /// One Root FS Customization: the archive that carries its tree is `size` bytes with this SHA-256.
    public struct RootFSReference: Codable, Sendable, Equatable {
        public var name: String
        public var size: Int
        public var sha256: String

        public init(name: String, size: Int, sha256: String) {
            self.name = name
            self.size = size
            self.sha256 = sha256
        }
    }

    /// A config body of any class, with its config name.
    public struct NamedBody: Sendable {
        public var name: String
        public var body: any NodeConfigClass
    }

    public var node: Identity
    /// The config name per class, for the comments in generated files.
    public var sources: [String: [String]] = [:]
    /// The bodies per class (one, or several where the class allows), in assignment order.
    public internal(set) var bodies: [ConfigClass: [NamedBody]] = [:]
    /// The Root FS Customizations the server sends with these options, as archives.
    public var rootFS: [RootFSReference] = []

    public init(node: Identity) { self.node = node }

    /// The configs of class `type` the node has, by name.
    public func configs<C: NodeConfigClass>(_ type: C.Type) -> [Named<C>] { C.named(in: self) }

    /// The config of class `type` the node has (the last assigned), nil when it has none.
    public func config<C: NodeConfigClass>(_ type: C.Type) -> C? { C.named(in: self).last?.config }

    /// Sets the config `name` of `cls` from its stored (canonical) body.
    /// - Throws: `.invalidArgument` when the body does not decode (a registry written by a newer version).
    public mutating func add(_ cls: ConfigClass, name: String, body: [UInt8]) throws(QlustarError) {
        sources[cls.rawValue, default: []].append(name)
        let type = cls.body
        // A class whose bodies stay on the head node (Root FS trees travel as archives; the
        // server adds the references).
        guard type.optionsKey != nil else { return }
        let value = try type.decode(body, what: "\(cls.rawValue) config \(name)")
        let named = NamedBody(name: name, body: value)
        if type.allowsSeveral { bodies[cls, default: []].append(named) } else { bodies[cls] = [named] }
    }
}

// The wire format between qlumand and execd (also the execd of images built by older versions):
// `node`, `sources`, `rootFS`, and each class under its `optionsKey` — a single body, or a list
// of `{name, config}` for classes that allow several (always present, maybe empty).
extension NodeOptions: Codable {
    public struct Key: CodingKey {
        public let stringValue: String
        public init(_ name: String) { stringValue = name }
        public init?(stringValue: String) { self.stringValue = stringValue }
        public var intValue: Int? { nil }
        public init?(intValue: Int) { nil }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        node = try c.decode(Identity.self, forKey: Key("node"))
        sources = try c.decode([String: [String]].self, forKey: Key("sources"))
        rootFS = try c.decode([RootFSReference].self, forKey: Key("rootFS"))
        for type in ConfigClass.all {
            let named = try type.decode(c, sources: sources)
            if !named.isEmpty { bodies[type.kind] = named }
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(node, forKey: Key("node"))
        try c.encode(sources, forKey: Key("sources"))
        try c.encode(rootFS, forKey: Key("rootFS"))
        for type in ConfigClass.all { try type.encode(self, into: &c) }
    }
}

extension NodeOptions: Equatable {
    /// Equal when they say the same: identity, sources, Root FS references and every body
    /// (compared in canonical form).
    public static func == (a: NodeOptions, b: NodeOptions) -> Bool {
        func canonical(_ o: NodeOptions) -> [ConfigClass: [String]] {
            o.bodies.mapValues { $0.map { "\($0.name)=" + String(decoding: canonicalJSON($0.body), as: UTF8.self) } }
        }
        return a.node == b.node && a.sources == b.sources && a.rootFS == b.rootFS && canonical(a) == canonical(b)
    }
}
