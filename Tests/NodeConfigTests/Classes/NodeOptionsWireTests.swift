import Foundation
import NodeConfig
import Platform
import XCTest

/// `NodeOptions` is what qlumand sends an execd — also the execd inside an image built by an
/// older version. Its JSON must stay what it was when every class was a stored property: `node`,
/// `sources`, `rootFS`, each single class under its key (absent when unassigned), each
/// several-valued class as a list of `{config, name}` (present, maybe empty).
final class NodeOptionsWireTests: XCTestCase {
    static let sshKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOhlL0l1lhVcEwAm/1Se3MGKdCpIpz3mYjt+3CAXWqlq admin@head"

    /// Every class assigned, as the pre-protocol encoder wrote it (sorted keys).
    static let everything =
        #"{"chroot":{"chroot":"devel"},"disk":{"disks":[{"action":"format","device":"/dev/sdb","fsType":"xfs","mountpoint":"/scratch"}]},"ipmi":{"gateway":"10.2.0.1","network":"10.2.0.0/16"},"misc":{"mailRelay":"head","sshSlurmOnly":true},"network":{"interfaces":[{"address":"boot","name":"eth0"}]},"networkFS":[{"config":{"mounts":[{"path":"/home","source":"head:/srv/home","type":"nfs"}]},"name":"home"},{"config":{"mounts":[{"path":"/apps","source":"head:/srv/apps","type":"nfs4"}]},"name":"apps"}],"nis":{"domain":"cluster","servers":["198.18.0.1"]},"node":{"ip":"198.18.0.7","macs":["52:54:00:00:00:07"],"name":"beo-07","prefix":16},"openSM":{"enabled":true,"priority":3},"rootFS":[{"name":"site","sha256":"00","size":10}],"sources":{"chroot":["devel"],"disk":["scratch"],"ipmi":["bmc"],"misc":["site"],"network":["net"],"network-fs":["home","apps"],"nis":["yp"],"opensm":["sm"],"root-fs":["site"],"ssh-keys":["admins"],"sssd":["ldap"],"time":["heads"]},"sshKeys":[{"config":{"keys":["\#(sshKey)"]},"name":"admins"}],"sssd":{"domains":[{"name":"example","provider":"ldap","searchBase":"dc=example,dc=com","uris":["ldaps://ldap.example.com"]}]},"time":{"servers":["198.18.0.10"]}}"#

    /// Nothing assigned: the lists are there, the single classes are not.
    static let nothing =
        #"{"networkFS":[],"node":{"ip":"198.18.0.7","macs":["52:54:00:00:00:07"],"name":"beo-07","prefix":16},"rootFS":[],"sources":{},"sshKeys":[]}"#

    static let identity = NodeOptions.Identity(
        name: "beo-07", ip: "198.18.0.7", prefix: 16, macs: ["52:54:00:00:00:07"])

    func testOptionsBuiltFromTheRegistryEncodeAsBefore() throws {
        var options = NodeOptions(node: Self.identity)
        let bodies: [(ConfigClass, String, String)] = [
            (.network, "net", #"{"interfaces":[{"address":"boot","name":"eth0"}]}"#),
            (
                .disk, "scratch",
                #"{"disks":[{"action":"format","device":"/dev/sdb","fsType":"xfs","mountpoint":"/scratch"}]}"#
            ),
            (.networkFS, "home", #"{"mounts":[{"path":"/home","source":"head:/srv/home","type":"nfs"}]}"#),
            (.networkFS, "apps", #"{"mounts":[{"path":"/apps","source":"head:/srv/apps","type":"nfs4"}]}"#),
            (.openSM, "sm", #"{"enabled":true,"priority":3}"#),
            (.ipmi, "bmc", #"{"gateway":"10.2.0.1","network":"10.2.0.0/16"}"#),
            (.chroot, "devel", #"{"chroot":"devel"}"#),
            (.sshKeys, "admins", "{\"keys\":[\"\(Self.sshKey)\"]}"),
            (.rootFS, "site", #"{"description":"site scripts"}"#),
            (.misc, "site", #"{"mailRelay":"head","sshSlurmOnly":true}"#),
            (.time, "heads", #"{"servers":["198.18.0.10"]}"#),
            (
                .sssd, "ldap",
                #"{"domains":[{"name":"example","provider":"ldap","searchBase":"dc=example,dc=com","uris":["ldaps://ldap.example.com"]}]}"#
            ),
            (.nis, "yp", #"{"domain":"cluster","servers":["198.18.0.1"]}"#),
        ]
        for (cls, name, json) in bodies {
            try options.add(cls, name: name, body: try cls.canonical(Array(json.utf8), name: name))
        }
        options.rootFS = [.init(name: "site", size: 10, sha256: "00")]
        XCTAssertEqual(String(decoding: canonicalJSON(options), as: UTF8.self), Self.everything)
        XCTAssertEqual(String(decoding: canonicalJSON(NodeOptions(node: Self.identity)), as: UTF8.self), Self.nothing)
    }

    func testTheOldWireFormatDecodesAndEncodesToTheSameBytes() throws {
        for text in [Self.everything, Self.nothing] {
            let options = try JSONDecoder().decode(NodeOptions.self, from: Data(text.utf8))
            XCTAssertEqual(String(decoding: canonicalJSON(options), as: UTF8.self), text)
        }
        let options = try JSONDecoder().decode(NodeOptions.self, from: Data(Self.everything.utf8))
        XCTAssertEqual(options.config(OpenSMConfig.self)?.priority, 3)
        XCTAssertEqual(options.configs(NetworkFSConfig.self).map(\.name), ["home", "apps"])
        XCTAssertEqual(
            options.configs(OpenSMConfig.self).map(\.name), ["sm"], "a single class takes its name from sources")
        XCTAssertNil(options.config(RootFSConfig.self), "Root FS bodies stay on the head node")
    }

    func testASecondAssignmentOfASingleClassReplacesTheFirstAndSeveralAccumulate() throws {
        var options = NodeOptions(node: Self.identity)
        try options.add(.openSM, name: "a", body: Array(#"{"enabled":false}"#.utf8))
        try options.add(.openSM, name: "b", body: Array(#"{"enabled":true}"#.utf8))
        try options.add(.sshKeys, name: "x", body: Array("{\"keys\":[\"\(Self.sshKey)\"]}".utf8))
        try options.add(.sshKeys, name: "y", body: Array("{\"keys\":[\"\(Self.sshKey)\"]}".utf8))
        XCTAssertEqual(options.configs(OpenSMConfig.self).map(\.name), ["b"])
        XCTAssertEqual(options.config(OpenSMConfig.self)?.enabled, true)
        XCTAssertEqual(options.configs(SSHKeysConfig.self).map(\.name), ["x", "y"])
        XCTAssertThrowsError(try options.add(.openSM, name: "bad", body: Array(#"{"enabled":"yes"}"#.utf8))) { error in
            XCTAssertEqual((error as? QlustarError)?.message, "opensm config bad: enabled: expected true or false")
        }
    }

    /// The options as the execd of an older image declares them (every class a stored
    /// property, Codable synthesized): it decodes what today's qlumand sends, and what it
    /// sends decodes here to the same options.
    struct LegacyNodeOptions: Codable, Equatable {
        struct Named<Body: Codable & Equatable>: Codable, Equatable {
            var name: String
            var config: Body
        }
        var node: NodeOptions.Identity
        var sources: [String: [String]] = [:]
        var network: NetworkConfig?
        var disk: DiskConfig?
        var networkFS: [Named<NetworkFSConfig>] = []
        var openSM: OpenSMConfig?
        var ipmi: IPMIConfig?
        var chroot: ChrootConfig?
        var sshKeys: [Named<SSHKeysConfig>] = []
        var rootFS: [NodeOptions.RootFSReference] = []
        var misc: MiscConfig?
        var time: TimeConfig?
        var sssd: SSSDConfig?
        var nis: NISConfig?
    }

    func testAnOlderExecdAndTodaysQlumandUnderstandEachOther() throws {
        for text in [Self.everything, Self.nothing] {
            let legacy = try JSONDecoder().decode(LegacyNodeOptions.self, from: Data(text.utf8))
            XCTAssertEqual(
                String(decoding: canonicalJSON(legacy), as: UTF8.self), text, "the golden is the synthesized format")
            let today = try JSONDecoder().decode(NodeOptions.self, from: Data(canonicalJSON(legacy)))
            XCTAssertEqual(try JSONDecoder().decode(LegacyNodeOptions.self, from: Data(canonicalJSON(today))), legacy)
        }
    }

    func testEveryClassIsDeclaredOnceWithItsOwnName() {
        let names = ConfigClass.allCases.map(\.rawValue)
        XCTAssertEqual(
            names,
            [
                "network", "disk", "network-fs", "opensm", "ipmi", "chroot", "ssh-keys", "root-fs", "misc", "time",
                "sssd", "nis",
            ])
        XCTAssertEqual(Set(names).count, names.count)
        for type in ConfigClass.all { XCTAssertEqual(ConfigClass(rawValue: type.kind.rawValue), type.kind) }
        XCTAssertNil(ConfigClass(rawValue: "nfs"))
    }
}
