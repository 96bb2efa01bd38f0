import Foundation
import Platform

/// Everything qlumand tells one node at configure time: who it is and the config of every class
/// assigned to it (its own assignment, else its group's). Root FS Customization trees travel
/// beside it as archives (`RootFSArchive`), listed in `rootFS`.
public struct NodeOptions: Codable, Sendable, Equatable {
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
    }

    public var node: Identity
    /// The config name per class, for the comments in generated files.
    public var sources: [String: [String]] = [:]
    public var network: NetworkConfig?
    public var disk: DiskConfig?
    public var networkFS: [Named<NetworkFSConfig>] = []
    public var openSM: OpenSMConfig?
    public var ipmi: IPMIConfig?
    public var chroot: ChrootConfig?
    public var sshKeys: [Named<SSHKeysConfig>] = []
    public var rootFS: [RootFSReference] = []
    public var misc: MiscConfig?
    public var time: TimeConfig?
    public var sssd: SSSDConfig?
    public var nis: NISConfig?

    public init(node: Identity) { self.node = node }

    /// Sets the config `name` of `cls` from its stored (canonical) body.
    /// - Throws: `.invalidArgument` when the body does not decode (a registry written by a newer version).
    public mutating func add(_ cls: ConfigClass, name: String, body: [UInt8]) throws(QlustarError) {
        sources[cls.rawValue, default: []].append(name)
        switch cls {
        case .network: network = try Self.decode(body, cls, name)
        case .disk: disk = try Self.decode(body, cls, name)
        case .networkFS: networkFS.append(Named(name: name, config: try Self.decode(body, cls, name)))
        case .openSM: openSM = try Self.decode(body, cls, name)
        case .ipmi: ipmi = try Self.decode(body, cls, name)
        case .chroot: chroot = try Self.decode(body, cls, name)
        case .sshKeys: sshKeys.append(Named(name: name, config: try Self.decode(body, cls, name)))
        case .rootFS: break  // the tree travels as an archive; the server adds the reference
        case .misc: misc = try Self.decode(body, cls, name)
        case .time: time = try Self.decode(body, cls, name)
        case .sssd: sssd = try Self.decode(body, cls, name)
        case .nis: nis = try Self.decode(body, cls, name)
        }
    }

    private static func decode<T: Decodable>(_ body: [UInt8], _ cls: ConfigClass, _ name: String) throws(QlustarError) -> T {
        do { return try JSONDecoder().decode(T.self, from: Data(body)) } catch {
            throw QlustarError(.invalidArgument, "\(cls.rawValue) config \(name): \(ConfigClass.describe(error))")
        }
    }
}

