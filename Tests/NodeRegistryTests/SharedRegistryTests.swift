import Foundation
import LabTestSupport
import NodeRegistry
import Platform
import XCTest

/// Two head nodes on one PostgreSQL registry (issue #19): two administrators, one on each head,
/// adding nodes at once; the location's rules (URL, password file). Runs on a PostgreSQL server
/// of its own (`scripts/postgres`), or the one `QL_TEST_POSTGRES` names.
final class SharedRegistryTests: XCTestCase {
    private var dir = ""
    private var ownServer: String?

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "shared-registry-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        guard !RegistryBackend.isPostgres else { return }
        try Requirements.root("the PostgreSQL server of these tests runs as the postgres user")
        let server = dir + "/pg"
        let port = 56_000 + Int(getpid() % 900)
        let (status, _, stderr) = try ReleaseTool.script("postgres", ["start", server, "\(port)"])
        XCTAssertEqual(status, 0, stderr)
        ownServer = server
        setenv("QL_TEST_POSTGRES", server, 1)
    }

    override func tearDownWithError() throws {
        if let server = ownServer {
            unsetenv("QL_TEST_POSTGRES")
            _ = try ReleaseTool.script("postgres", ["stop", server])
        }
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Two head-node roots whose qlumand.conf name the same new database.
    private func heads() throws -> (Root, Root) {
        let h0 = dir + "/h0"
        let url = try XCTUnwrap(try RegistryBackend.prepare(root: h0))
        let h1 = dir + "/h1"
        try FileManager.default.createDirectory(atPath: h1 + "/etc/qlustar", withIntermediateDirectories: true)
        try "registry = \(url)\n".write(toFile: h1 + "/etc/qlustar/qlumand.conf", atomically: true, encoding: .utf8)
        return (Root(h0), Root(h1))
    }

    private static func qluman(_ root: Root, _ arguments: [String]) throws -> (
        status: Int32, stdout: String, stderr: String
    ) {
        try ReleaseTool.run("qluman", ["--root", root.path("/")] + arguments, environment: ["PATH": "/usr/bin:/bin"])
    }

    func testTwoAdministratorsOnTwoHeadsAddTwoHundredNodesAtOnce() throws {
        let (h0, h1) = try heads()
        // Head 0 adds beo-001…100; head 1 adds gpu-001…100, ten of which take MACs head 0 gives
        // beo-050…059. Whichever head comes second for a MAC is refused, naming the owner.
        func mac(_ i: Int) -> String { String(format: "52:54:00:01:%02x:%02x", i / 256, i % 256) }
        func beo(_ i: Int) -> [String] {
            ["node", "add", String(format: "beo-%03d", i), "--mac", mac(i), "--ip", "10.1.0.\(i)/16"]
        }
        func gpu(_ i: Int) -> [String] {
            let m = (50..<60).contains(i) ? mac(i) : mac(1_000 + i)
            return ["node", "add", String(format: "gpu-%03d", i), "--mac", m, "--ip", "10.1.1.\(i)/16"]
        }
        let results = Results()
        let group = DispatchGroup()
        for (root, commands) in [(h0, (1...100).map(beo)), (h1, (1...100).map(gpu))] {
            group.enter()
            Thread {
                for c in commands { results.add(c[2], try? SharedRegistryTests.qluman(root, c)) }
                group.leave()
            }.start()
        }
        XCTAssertEqual(group.wait(timeout: .now() + 240), .success, "200 adds within 4 minutes")
        let outcomes = results.all
        XCTAssertEqual(outcomes.count, 200)
        var refused: [String] = []
        for (name, r) in outcomes {
            guard let r else {
                XCTFail("\(name): qluman did not run")
                continue
            }
            if r.status == 0 { continue }
            refused.append(name)
            // The loser of each race for a MAC names the node that has it.
            let number = Int(name.suffix(3))!
            XCTAssertTrue((50..<60).contains(number), "\(name) refused: \(r.stderr)")
            let owner = name.hasPrefix("beo") ? String(format: "gpu-%03d", number) : String(format: "beo-%03d", number)
            XCTAssertEqual(
                r.stderr, "Error: MAC \(mac(number)) already belongs to node \(owner)\n", "\(name)")
        }
        XCTAssertEqual(refused.count, 10, "one of each pair sharing a MAC: \(refused.sorted())")
        // Both heads see the same 190 nodes.
        let list0 = try Self.qluman(h0, ["--json", "node", "list"])
        let list1 = try Self.qluman(h1, ["--json", "node", "list"])
        XCTAssertEqual(list0.status, 0, list0.stderr)
        XCTAssertEqual(list0.stdout, list1.stdout)
        let nodes = try JSONSerialization.jsonObject(with: Data(list0.stdout.utf8)) as? [[String: Any]]
        XCTAssertEqual(nodes?.count, 190)
        let names = Set(nodes?.compactMap { ($0["node"] as? [String: Any])?["name"] as? String } ?? [])
        for name in outcomes.keys where !refused.contains(name) { XCTAssertTrue(names.contains(name), name) }
    }

    func testARestartOfTheDatabaseLosesNoAcknowledgedWrite() throws {
        let (h0, _) = try heads()
        let server = try XCTUnwrap(RegistryBackend.postgresDirectory)
        let registry = try Registry(root: h0)
        // 300 writes one after the other (~7 s) while the server restarts twice underneath.
        let outcomes = Results()
        let writer = Thread {
            for i in 1...300 {
                let name = String(format: "beo-%03d", i)
                do {
                    _ = try registry.addNode(
                        name: name, macs: [String(format: "52:54:00:02:%02x:%02x", i / 256, i % 256)],
                        ip: "10.3.\(i / 250).\(1 + i % 250)/16", image: nil, group: nil)
                    outcomes.add(name, (0, "", ""))
                } catch {
                    outcomes.add(name, (1, "", (error as? QlustarError)?.message ?? "\(error)"))
                }
                Thread.sleep(forTimeInterval: 0.02)
            }
        }
        writer.start()
        for _ in 0..<2 {
            Thread.sleep(forTimeInterval: 0.3)
            let (status, _, stderr) = try ReleaseTool.script("postgres", ["restart", server])
            XCTAssertEqual(status, 0, stderr)
        }
        let deadline = Date().addingTimeInterval(120)
        while outcomes.all.count < 300, Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        let all = outcomes.all
        XCTAssertEqual(all.count, 300, "every write answered")
        let stored = Set(try registry.nodes().map(\.name))
        for (name, r) in all {
            if r?.status == 0 {
                XCTAssertTrue(stored.contains(name), "\(name) was acknowledged but is not stored")
            } else {
                // A refusal is a clear one: the database could not be reached, or the commit's
                // outcome is unknown (then the write may be there).
                let message = r?.stderr ?? ""
                XCTAssertTrue(
                    message.hasPrefix("cannot reach the node registry postgresql://")
                        || message.contains("it may or may not be stored"), "\(name): \(message)")
            }
        }
        XCTAssertGreaterThan(stored.count, 150, "the registry came back and took the rest")
        XCTAssertTrue(stored.contains("beo-300"), "writes after the restarts succeed")
        print("restart: \(stored.count) of 300 stored, \(all.filter { $0.value?.status != 0 }.count) refused")
    }

    func testAPromotedStandbyIsTakenOverByBothHeads() throws {
        try Requirements.root("the PostgreSQL servers of this test run as the postgres user")
        // A primary and its streaming standby of this test's own (it stops the primary).
        let primary = dir + "/primary"
        let standby = dir + "/standby"
        let port = 57_000 + Int(getpid() % 400)
        defer {
            for server in [primary, standby] { _ = try? ReleaseTool.script("postgres", ["stop", server]) }
        }
        for (command, arguments) in [
            ("start", [primary, "\(port)"]), ("createdb", [primary, "qluman"]),
            ("standby", [standby, "\(port + 500)", primary]),
        ] {
            let r = try ReleaseTool.script("postgres", [command] + arguments)
            XCTAssertEqual(r.status, 0, "\(command): \(r.stderr)")
        }
        // Both heads list both database hosts; the password file is the standby's copy.
        let url =
            "postgresql://qlustar@127.0.0.1:\(port),127.0.0.1:\(port + 500)/qluman?passfile=\(standby)/password&connect_timeout=2"
        let heads = [Root(dir + "/h0"), Root(dir + "/h1")]
        for h in heads {
            try FileManager.default.createDirectory(atPath: h.path("/etc/qlustar"), withIntermediateDirectories: true)
            try "registry = \(url)\n".write(
                toFile: h.path("/etc/qlustar/qlumand.conf"), atomically: true, encoding: .utf8)
        }
        func add(_ head: Root, _ i: Int) throws -> (status: Int32, stdout: String, stderr: String) {
            try Self.qluman(
                head,
                [
                    "node", "add", "beo-0\(i)", "--mac", String(format: "52:54:00:03:00:%02x", i), "--ip",
                    "10.4.0.\(i)/24",
                ])
        }
        XCTAssertEqual(try add(heads[0], 1).status, 0)
        XCTAssertEqual(try add(heads[1], 2).status, 0)

        // The primary is lost: until the standby is promoted, writes are refused, saying why.
        XCTAssertEqual(try ReleaseTool.script("postgres", ["stop", primary]).status, 0)
        let refused = try add(heads[1], 3)
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("127.0.0.1:\(port + 500): a standby (read-only)"), refused.stderr)
        XCTAssertTrue(refused.stderr.contains("127.0.0.1:\(port): "), refused.stderr)

        // Promoted: both heads write to it, through the same URL, and see the same nodes.
        let promoted = try ReleaseTool.script("postgres", ["promote", standby])
        XCTAssertEqual(promoted.status, 0, promoted.stderr)
        XCTAssertEqual(try add(heads[0], 3).status, 0)
        XCTAssertEqual(try add(heads[1], 4).status, 0)
        for h in heads {
            let listed = try Self.qluman(h, ["node", "list", "-o", "name"]).stdout
            XCTAssertEqual(
                listed.split(separator: "\n").filter { $0.hasPrefix("beo-") },
                ["beo-01", "beo-02", "beo-03", "beo-04"],
                "written before the failover, replicated; after it, on the new primary: \(listed)")
        }
    }

    func testThePasswordIsNeverOnTheCommandLineAndItsFileIsRootsOnly() throws {
        let root = Root(dir)
        XCTAssertThrowsError(try RegistryLocation.parse("postgresql://qlustar:secret@db1/qluman", root: root)) {
            XCTAssertTrue(
                ($0 as? QlustarError)?.message.hasPrefix("registry: a password does not belong in the URL") ?? false)
        }
        let file = dir + "/password"
        try "s3cret\n".write(toFile: file, atomically: true, encoding: .utf8)
        chmod(file, 0o644)
        XCTAssertThrowsError(
            try RegistryLocation.parse("postgresql://qlustar@db1/qluman?passfile=\(file)", root: root)
        ) {
            XCTAssertEqual(
                ($0 as? QlustarError)?.message,
                "registry password file \(file) may be read by others (mode 644); chmod 600 \(file)")
        }
        chmod(file, 0o600)
        guard
            case .postgresql(let p) = try RegistryLocation.parse(
                "postgresql://qlustar@db1:5433,db2/qluman?passfile=\(file)&connect_timeout=3", root: root)
        else { return XCTFail("not a PostgreSQL location") }
        XCTAssertEqual(p.password, "s3cret")
        XCTAssertEqual(p.hosts.map(\.description), ["db1:5433", "db2"])
        XCTAssertEqual(p.connectTimeoutSeconds, 3)
        XCTAssertEqual(p.description, "postgresql://qlustar@db1:5433,db2/qluman", "no password in what is shown")
        for bad in [
            "postgresql://db1/qluman", "postgresql://qlustar@/qluman", "postgresql://qlustar@db1",
            "postgresql://qlustar@db1:99999/qluman", "postgresql://qlustar@db1/qluman?sslmode=x", "mysql://a@b/c",
        ] {
            XCTAssertThrowsError(try RegistryLocation.parse(bad, root: root), bad)
        }
        XCTAssertEqual(try RegistryLocation.parse("/var/lib/x.db", root: root), .sqlite(path: "/var/lib/x.db"))
    }

    func testAnUnreachableDatabaseIsAClearErrorNamingEveryHost() throws {
        let location = try RegistryLocation.parse("postgresql://qlustar@127.0.0.1:1,127.0.0.1:2/none", root: Root(dir))
        XCTAssertThrowsError(try Registry(location: location)) {
            let message = ($0 as? QlustarError)?.message ?? "\($0)"
            XCTAssertTrue(
                message.hasPrefix(
                    "cannot reach the node registry postgresql://qlustar@127.0.0.1:1,127.0.0.1:2/none: 127.0.0.1:1: "),
                message)
            XCTAssertTrue(message.contains("; 127.0.0.1:2: "), message)
        }
    }

    /// The outcomes of the two administrators' threads.
    private final class Results: @unchecked Sendable {
        // @unchecked: every access holds `lock`.
        private let lock = NSLock()
        private var outcomes: [String: (status: Int32, stdout: String, stderr: String)?] = [:]
        func add(_ name: String, _ r: (status: Int32, stdout: String, stderr: String)?) {
            lock.lock()
            outcomes[name] = r
            lock.unlock()
        }
        var all: [String: (status: Int32, stdout: String, stderr: String)?] {
            lock.lock()
            defer { lock.unlock() }
            return outcomes
        }
    }
}
