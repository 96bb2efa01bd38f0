import Foundation
import ImageService
import LabSupport
import LabTestSupport
import NodeConfig
import NodeRegistry
import Platform
import XCTest

/// A head-node root in a temporary directory with a registry, for the configuration tests.
final class ConfigFixture {
    let dir: String
    let root: Root
    let registry: Registry

    init() throws {
        dir = NSTemporaryDirectory() + "qlcfg-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        root = Root(dir + "/head")
        try RegistryBackend.prepare(root: dir + "/head")
        registry = try Registry(root: root)
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }

    /// Stores a config and assigns it to `target`.
    @discardableResult
    func config(_ cls: ConfigClass, _ name: String, _ json: String, to target: ConfigTarget? = nil) throws
        -> StoredConfig
    {
        let stored = try registry.putConfig(cls, name: name, json: Array(json.utf8))
        if let target { try registry.assign(cls, name, to: target) }
        return stored
    }

    /// A realistic option set on group `compute`: network (Ethernet, bond, VLAN, IPoIB), disk,
    /// two mounts, OpenSM, IPMI, chroot, ssh keys, misc, time.
    func realisticGroup(sshKey: String) throws {
        try registry.addGroup("compute")
        for (cls, name) in try Self.storeRealisticConfigs(in: registry, sshKey: sshKey) {
            try registry.assign(cls, name, to: .group("compute"))
        }
    }

    /// Stores the realistic configs in `registry`; returns their classes and names.
    static func storeRealisticConfigs(in registry: Registry, sshKey: String) throws -> [(ConfigClass, String)] {
        let configs: [(ConfigClass, String, String)] = [
            (
                .network, "compute-net",
                #"{"interfaces":[{"name":"eth0","address":"boot","gateway":"198.18.0.1"},{"name":"eth1","address":"manual"},{"name":"eth2","address":"manual"},{"name":"bond0","type":"bond","slaves":["eth1","eth2"],"bondMode":"802.3ad","address":"10.3.0.0/16","mtu":9000},{"name":"eth3.100","type":"vlan","vlan":100,"parent":"eth3","address":"10.4.0.0/16"},{"name":"ib0","type":"ipoib","address":"10.1.0.0/16","connectedMode":true,"mtu":65520}],"nameservers":["198.18.0.1"],"searchDomains":["cluster.local"]}"#
            ),
            (
                .disk, "scratch",
                #"{"disks":[{"device":"/dev/sdb","action":"format","fsType":"xfs","mountpoint":"/scratch"},{"device":"/dev/sdc","action":"keep","fsType":"swap"}]}"#
            ),
            (
                .networkFS, "home",
                #"{"mounts":[{"source":"head:/srv/home","path":"/home","type":"nfs","options":"rw,hard","automount":true},{"source":"head:/srv/apps","path":"/opt/site-apps","type":"nfs4","options":"ro"}]}"#
            ),
            (.openSM, "sm", #"{"enabled":true,"priority":10}"#),
            (.ipmi, "bmc", #"{"network":"10.2.0.0/16","gateway":"10.2.0.1"}"#),
            (.chroot, "devel", #"{"chroot":"devel"}"#),
            (.sshKeys, "admins", "{\"keys\":[\"\(sshKey)\"]}"),
            (.misc, "site", #"{"mailRelay":"head","sshSlurmOnly":true}"#),
            (.time, "heads", #"{"servers":["198.18.0.10"]}"#),
        ]
        for (cls, name, json) in configs { _ = try registry.putConfig(cls, name: name, json: Array(json.utf8)) }
        return configs.map { ($0.0, $0.1) }
    }

    /// A real ed25519 public key made by ssh-keygen.
    func sshKey() throws -> String {
        try Requirements.require(
            FileManager.default.isExecutableFile(atPath: "/usr/bin/ssh-keygen"), "needs ssh-keygen (openssh-client)")
        let key = dir + "/id_ed25519"
        try Lab.run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "admin@head", "-f", key])
        return try String(contentsOfFile: key + ".pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Writes a Root FS Customization tree with owners, modes, links and an empty directory.
    func rootFSTree(_ name: String, head: Root? = nil) throws -> String {
        let tree = (head ?? root).path("/var/lib/qlustar/root-fs/\(name)")
        let sh = """
            set -e
            mkdir -p '\(tree)/etc/site' '\(tree)/lib/qlustar/init.d' '\(tree)/var/empty-dir' '\(tree)/home/alice'
            printf 'site file\\n' > '\(tree)/etc/site/site.conf'
            printf '#!/bin/sh\\necho hello from 10-first\\n' > '\(tree)/lib/qlustar/init.d/10-first'
            chmod 0755 '\(tree)/lib/qlustar/init.d/10-first'
            printf 'secret\\n' > '\(tree)/etc/site/key'
            chmod 0640 '\(tree)/etc/site/key'
            chown 0:42 '\(tree)/etc/site/key'
            chown 1234:1235 '\(tree)/home/alice'
            chmod 0750 '\(tree)/home/alice'
            chmod 1777 '\(tree)/var/empty-dir'
            ln -s site.conf '\(tree)/etc/site/current'
            ln -s /etc/site/site.conf '\(tree)/etc/site-link'
            """
        try Lab.run("/bin/sh", ["-c", sh])
        return tree
    }
}
