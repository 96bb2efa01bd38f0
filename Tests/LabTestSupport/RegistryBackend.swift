import Foundation
import LabSupport
import XCTest

/// The backend the registry's tests run against: SQLite (the default), or — with
/// `QL_TEST_POSTGRES=DIR`, a server `scripts/postgres start DIR PORT` runs — PostgreSQL, a
/// fresh database for every root a test prepares (its `qlumand.conf` names it, so the library,
/// `qluman` and the daemons all open it). `scripts/test` runs the registry tests both ways.
public enum RegistryBackend {
    /// The scripts/postgres directory, when the tests run on PostgreSQL.
    public static var postgresDirectory: String? {
        ProcessInfo.processInfo.environment["QL_TEST_POSTGRES"].flatMap { $0.isEmpty ? nil : $0 }
    }

    public static var isPostgres: Bool { postgresDirectory != nil }

    /// Points `root` at a new, empty PostgreSQL database when the tests run on PostgreSQL (else
    /// nothing: the registry is the SQLite file below `root`). Returns the registry's URL or nil.
    @discardableResult
    public static func prepare(root: String) throws -> String? {
        guard let dir = postgresDirectory else { return nil }
        let name = "t\(getpid())_\(UInt32.random(in: 0...UInt32.max))"
        let script = LabHarness.repositoryRoot.appendingPathComponent("scripts/postgres").path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: script)
        p.arguments = ["createdb", dir, name]
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw LabError("scripts/postgres createdb \(dir) \(name) failed") }
        let port = try String(contentsOfFile: dir + "/port", encoding: .utf8).trimmingCharacters(
            in: .whitespacesAndNewlines)
        let url = "postgresql://qlustar@127.0.0.1:\(port)/\(name)?passfile=\(dir)/password"
        let etc = root + "/etc/qlustar"
        try FileManager.default.createDirectory(atPath: etc, withIntermediateDirectories: true)
        let conf = etc + "/qlumand.conf"
        let existing = (try? String(contentsOfFile: conf, encoding: .utf8)) ?? ""
        try (existing + "registry = \(url)\n").write(toFile: conf, atomically: true, encoding: .utf8)
        return url
    }
}
