import ImageService
import LabSupport
import LabTestSupport
import NodeConfig
import NodeRegistry
import Platform
import XCTest

final class ConfigClassTests: XCTestCase {
    private func rejects(
        _ cls: ConfigClass, _ json: String, _ expected: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        do {
            _ = try cls.canonical(Array(json.utf8), name: "x")
            XCTFail("accepted \(json)", file: file, line: line)
        } catch {
            XCTAssertEqual(error.code, .invalidArgument, file: file, line: line)
            XCTAssertTrue(
                error.message.contains(expected), "\(error.message) does not say \(expected)", file: file, line: line)
        }
    }

    func testBadValuesAreRefusedNamingTheField() {
        rejects(.network, #"{"interfaces":[{"name":"eth0\nauto evil","address":"boot"}]}"#, "interfaces[0].name")
        rejects(
            .network, #"{"interfaces":[{"name":"eth0","address":"boot","mtu":"9000"}]}"#,
            "interfaces[0].mtu: expected a number")
        rejects(.network, #"{"interfaces":[{"name":"eth0","address":"10.1.0.5/16"}]}"#, "host bits set")
        rejects(.network, #"{"interfaces":[{"name":"eth0","address":"10.1.0.0/33"}]}"#, "not a network")
        rejects(
            .network, #"{"interfaces":[{"name":"eth0","address":"boot"},{"name":"eth0","address":"dhcp"}]}"#,
            "listed twice")
        rejects(.network, #"{"interfaces":[{"name":"bond0","type":"bond","address":"boot"}]}"#, "a bond needs slaves")
        rejects(
            .network, #"{"interfaces":[{"name":"v","type":"vlan","vlan":5000,"parent":"eth0","address":"dhcp"}]}"#,
            "tag 1–4094")
        rejects(.network, #"{"interfaces":[{"name":"eth0","type":"wifi","address":"boot"}]}"#, "interfaces[0].type")
        rejects(.network, #"{"interfaces":"eth0"}"#, "interfaces: expected a list")
        rejects(.network, #"{"interfaces":[{"address":"boot"}]}"#, "interfaces[0].name is missing")
        rejects(.network, "{not json", "not valid JSON")
        rejects(.networkFS, #"{"mounts":[{"source":"h:/x","path":"/srv/../etc","type":"nfs"}]}"#, "without '.', '..'")
        rejects(.networkFS, #"{"mounts":[{"source":"h:/x","path":"relative","type":"nfs"}]}"#, "absolute path")
        rejects(.networkFS, #"{"mounts":[{"source":"h:/x","path":"/a b","type":"nfs"}]}"#, "spaces")
        rejects(
            .networkFS, #"{"mounts":[{"source":"h:/x","path":"/x","type":"nfs\nExecStart=/bin/sh"}]}"#,
            "file system type")
        rejects(.sshKeys, #"{"keys":["ssh-ed25519 bm90IGEga2V5 x"]}"#, "not a valid ssh-ed25519 public key")
        rejects(.sshKeys, #"{"keys":["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA\ncommand=evil"]}"#, "line break")
        rejects(.ipmi, #"{"network":"10.2.0.0/16","channel":99}"#, "1–15")
        rejects(.openSM, #"{"enabled":"yes"}"#, "enabled: expected true or false")
        rejects(.openSM, #"{"enabled":true,"ports":["0xzz"]}"#, "port GUID")
        rejects(.chroot, #"{"chroot":"../etc"}"#, "chroot name")
        rejects(.time, #"{"servers":[]}"#, "give 1–8 servers")
        rejects(.time, #"{"servers":["head; rm -rf /"]}"#, "must not contain spaces")
        rejects(.time, #"{"servers":["head$x"]}"#, "not a host name or address")
        rejects(
            .disk, #"{"disks":[{"device":"/etc/passwd","action":"format","fsType":"ext4","mountpoint":"/x"}]}"#,
            "is not below /dev")
        rejects(
            .disk, #"{"disks":[{"device":"/dev/sdb","action":"wipe","fsType":"ext4","mountpoint":"/x"}]}"#,
            "disks[0].action")
        rejects(.disk, #"{"disks":[{"device":"/dev/sdb","action":"format","fsType":"ext4"}]}"#, "needs a mountpoint")
        rejects(
            .disk, #"{"disks":[{"device":"/dev/sdb","action":"format","fsType":"ext4","mountpoint":"/"}]}"#,
            "cannot mount over /")
    }

    func testBodiesAreStoredCanonically() throws {
        let a = try ConfigClass.openSM.canonical(Array(#"{ "priority": 3, "enabled": true }"#.utf8), name: "x")
        let b = try ConfigClass.openSM.canonical(Array(#"{"enabled":true,"priority":3}"#.utf8), name: "x")
        XCTAssertEqual(a, b)
        XCTAssertEqual(String(decoding: a, as: UTF8.self), #"{"enabled":true,"priority":3}"#)
    }

    func testUnknownClassListsTheClasses() {
        XCTAssertThrowsError(try ConfigClass(parsing: "nfs")) { error in
            XCTAssertTrue((error as! QlustarError).message.contains("network-fs"))
        }
    }

    func testSystemdPathEscapingMatchesSystemdEscape() throws {
        let tool = try InstalledTool.path("systemd-escape", "systemd")
        for path in ["/home", "/", "/opt/site-apps", "/srv/a b", "/x/.hidden/y", "/mnt/ü", "/data_1/x:y", "/a.b/c"] {
            let expected = try Lab.run(tool, ["--path", path]).trimmingCharacters(in: .newlines)
            XCTAssertEqual(SystemdUnitName.escape(path: path), expected, path)
        }
    }
}

final class RegistryConfigTests: XCTestCase {
    func testNodeAssignmentOverridesGroupPerClass() throws {
        let f = try ConfigFixture()
        try f.registry.addGroup("compute")
        _ = try f.registry.addNode(
            name: "beo-01", macs: ["52:54:00:00:00:01"], ip: "10.0.0.1/16", image: nil, group: "compute")
        _ = try f.registry.addNode(
            name: "beo-02", macs: ["52:54:00:00:00:02"], ip: "10.0.0.2/16", image: nil, group: "compute")
        try f.config(.openSM, "off", #"{"enabled":false}"#, to: .group("compute"))
        try f.config(.openSM, "on", #"{"enabled":true}"#, to: .node("beo-02"))
        try f.config(
            .sshKeys, "a",
            #"{"keys":["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOhlL0l1lhVcEwAm/1Se3MGKdCpIpz3mYjt+3CAXWqlq a"]}"#,
            to: .group("compute"))
        try f.config(
            .sshKeys, "b",
            #"{"keys":["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOhlL0l1lhVcEwAm/1Se3MGKdCpIpz3mYjt+3CAXWqlq b"]}"#,
            to: .group("compute"))
        let one = try f.registry.options(for: try f.registry.node("beo-01"))
        let two = try f.registry.options(for: try f.registry.node("beo-02"))
        XCTAssertEqual(one.config(OpenSMConfig.self)?.enabled, false)
        XCTAssertEqual(two.config(OpenSMConfig.self)?.enabled, true)
        XCTAssertEqual(one.configs(SSHKeysConfig.self).map(\.name), ["a", "b"])
        XCTAssertEqual(two.node.name, "beo-02")
        // Single-valued: assigning another replaces; several-valued: both stay.
        try f.config(.openSM, "prio", #"{"enabled":true,"priority":5}"#, to: .group("compute"))
        XCTAssertEqual(
            try f.registry.options(for: try f.registry.node("beo-01")).config(OpenSMConfig.self)?.priority, 5)
        XCTAssertEqual(try f.registry.config(.openSM, "off").assignedTo, [])
        XCTAssertThrowsError(try f.registry.removeConfig(.sshKeys, "a")) { error in
            XCTAssertTrue((error as! QlustarError).message.contains("assigned to group compute"))
        }
        try f.registry.removeNode("beo-02")
        XCTAssertEqual(try f.registry.config(.openSM, "on").assignedTo, [])
        XCTAssertThrowsError(try f.registry.assign(.openSM, "on", to: .node("nobody")))
    }

    func testTokensAreStoredAsDigestsAndCompared() throws {
        let f = try ConfigFixture()
        _ = try f.registry.addNode(
            name: "beo-01", macs: ["52:54:00:00:00:01"], ip: "10.0.0.1/16", image: nil, group: nil)
        XCTAssertTrue(try f.registry.tokenMatches("beo-01", token: nil))
        try f.registry.setToken("beo-01", token: "correct horse battery staple")
        XCTAssertTrue(try f.registry.tokenMatches("beo-01", token: "correct horse battery staple"))
        XCTAssertFalse(try f.registry.tokenMatches("beo-01", token: "correct horse battery stapler"))
        XCTAssertFalse(try f.registry.tokenMatches("beo-01", token: nil))
        for file in [f.registry.path, f.registry.path + "-wal"] {
            let bytes = (try? Data(contentsOf: URL(fileURLWithPath: file))) ?? Data()
            XCTAssertNil(bytes.range(of: Data("correct horse".utf8)), "the token itself is never stored (\(file))")
        }
        XCTAssertThrowsError(try f.registry.setToken("beo-01", token: "short"))
    }
}
