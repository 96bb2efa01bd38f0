import GRDB
import Platform

#if canImport(Glibc)
    import Glibc
#endif

/// The registry in one SQLite file (the embedded default for one head node): WAL mode and a busy
/// timeout, so two administrators writing at once are serialised, never interleaved.
final class SQLiteStore: RegistryStore {
    let path: String
    private let queue: DatabaseQueue
    var description: String { path }
    var dialect: SQLDialect { .sqlite }

    /// Opens (creating and migrating) the database at `path`, whose directory exists.
    init(path: String) throws(QlustarError) {
        self.path = path
        var config = Configuration()
        config.busyMode = .timeout(10)
        config.journalMode = .wal
        // Two tools opening a new registry at once must not both run a migration: the migrator
        // checks what is applied and applies the rest in separate transactions, so the whole
        // upgrade runs under an exclusive lock on a file beside the database.
        let lock = try FileSystem.at("cannot open the lock", path + ".lock") { () throws(SystemCallError) in
            try Posix.open(path + ".lock", O_RDWR | O_CREAT, 0o600)
        }
        defer { Posix.close(lock) }
        try FileSystem.at("cannot lock", path + ".lock") { () throws(SystemCallError) in try Posix.flock(lock, LOCK_EX)
        }
        defer { try? Posix.flock(lock, LOCK_UN) }
        do {
            // The registry holds enrollment tokens and BMC credentials: only its owner reads it,
            // from the moment it exists (the WAL and shared-memory files SQLite makes beside it
            // take the database's mode).
            if let fd = try? Posix.open(path, O_RDWR | O_CREAT, 0o600) {
                try? Posix.fchmod(fd, 0o600)
                Posix.close(fd)
            }
            queue = try DatabaseQueue(path: path, configuration: config)
            var migrator = DatabaseMigrator()
            for m in RegistrySchema.migrations {
                migrator.registerMigration(m.name) { db in
                    for statement in m.statements(.sqlite) { try db.execute(sql: statement) }
                }
            }
            try migrator.migrate(queue)
        } catch {
            throw QlustarError(.io, "cannot open the node registry \(path): \(error)")
        }
    }

    func write<T>(_ body: (any SQLSession) throws(QlustarError) -> T) throws(QlustarError) -> T {
        // `DatabaseQueue.write` may throw anything; the registry's own errors pass through it
        // unchanged, GRDB's become `.io` naming the file.
        try run { try queue.write { db in try body(Session(db: db)) } }
    }

    func read<T>(_ body: (any SQLSession) throws(QlustarError) -> T) throws(QlustarError) -> T {
        try run { try queue.read { db in try body(Session(db: db)) } }
    }

    private func run<T>(_ work: () throws -> T) throws(QlustarError) -> T {
        do { return try work() } catch let e as QlustarError { throw e } catch {
            throw QlustarError(.io, "node registry \(path): \(error)")
        }
    }

    /// One GRDB connection inside a transaction.
    struct Session: SQLSession {
        let db: Database
        var dialect: SQLDialect { .sqlite }

        func execute(_ sql: String, _ arguments: [SQLValue]) throws(QlustarError) {
            do { try db.execute(sql: sql, arguments: Session.arguments(arguments)) } catch {
                throw QlustarError(.io, "node registry: \(error)")
            }
        }

        func rows(_ sql: String, _ arguments: [SQLValue]) throws(QlustarError) -> [SQLRow] {
            do {
                return try Row.fetchAll(db, sql: sql, arguments: Session.arguments(arguments)).map { row in
                    SQLRow(
                        columns: Array(row.columnNames),
                        values: row.databaseValues.map { v in
                            switch v.storage {
                            case .null, .blob: .null
                            case .int64(let i): .integer(i)
                            case .double(let d): .real(d)
                            case .string(let s): .text(s)
                            }
                        })
                }
            } catch { throw QlustarError(.io, "node registry: \(error)") }
        }

        static func arguments(_ values: [SQLValue]) -> StatementArguments {
            StatementArguments(
                values.map { v -> DatabaseValue in
                    switch v {
                    case .null: .null
                    case .text(let s): s.databaseValue
                    case .integer(let i): i.databaseValue
                    case .real(let d): d.databaseValue
                    }
                })
        }
    }
}
