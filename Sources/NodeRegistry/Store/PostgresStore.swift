import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Platform
import PostgresNIO

/// The registry in a PostgreSQL database that several head nodes share (`RegistryLocation`).
///
/// One connection per process, opened on first use and again after it broke: a head that lost
/// its database keeps serving what it has, and its next registry call tries every host of the
/// location again, taking the first that accepts writes (so heads given a primary and its standby
/// follow a promotion). Calls are blocking — the registry's callers are synchronous — and run on
/// an event loop group of the store's own, never on the caller's.
///
/// Every write is one SERIALIZABLE transaction. Two heads changing the registry at once are
/// serialised by the database: the loser of a race gets a serialization failure (or a unique
/// violation) and its whole transaction runs again, where its checks see the winner's rows and
/// name the owner ("MAC … already belongs to node …"). A write whose COMMIT got no answer is
/// reported as failed-or-unknown, never retried and never acknowledged.
final class PostgresStore: RegistryStore, @unchecked Sendable {
    // @unchecked: `connection` is only touched under `lock`, which also serialises the calls.
    let location: RegistryLocation.Postgres
    var description: String { location.description }
    var dialect: SQLDialect { .postgresql }
    private let lock = NIOLock()
    private var connection: PostgresConnection?
    /// When (monotonic ns) the database last failed slowly — a connect that took a second or more
    /// (hosts that do not answer, not a refusal), or a statement without an answer — and for how
    /// long after that connects give up after a second: while the database's machine is gone no
    /// caller waits out the full connect timeout, and a restarted server is found again at once.
    private var unreachable: (at: UInt64, quietSeconds: UInt64)?
    static let quietSeconds: UInt64 = 15
    /// After a statement that got no answer at all: shorter, as a server cutting its connections
    /// in a fast shutdown was seen to leave one unanswered too.
    static let quietAfterTimeoutSeconds: UInt64 = 5
    private let group: MultiThreadedEventLoopGroup
    private let logger = Logger(label: "qlustar.registry.postgresql")
    /// Transactions that lost a race run again at most this often.
    static let attempts = 12
    /// The advisory lock key under which migrations run ("qlustar" in ASCII).
    static let migrationLock: Int64 = 0x716c_7573_7461_72

    init(_ location: RegistryLocation.Postgres) throws(QlustarError) {
        self.location = location
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        lock.lock()
        defer { lock.unlock() }
        try migrate()
    }

    deinit {
        if let c = connection { try? PostgresStore.block(c.close(), timeoutSeconds: 5) }
        try? group.syncShutdownGracefully()
    }

    // MARK: - Transactions

    func write<T>(_ body: (any SQLSession) throws(QlustarError) -> T) throws(QlustarError) -> T {
        try attempts(Self.attempts) { (session, last) throws(QlustarError) -> T? in
            let result: T
            do throws(QlustarError) {
                try session.execute("BEGIN ISOLATION LEVEL SERIALIZABLE", [])
                result = try body(session)
            } catch {
                // Lost a race, or the connection broke before COMMIT (the server rolled the
                // transaction back): run it again, on a new connection for the latter.
                rollBack(session)
                if session.raced || session.connectionLost, !last { return nil }
                throw error
            }
            do throws(QlustarError) {
                try session.execute("COMMIT", [])
                return result
            } catch {
                if session.raced, !last { return nil }
                if session.connectionLost {
                    drop()
                    throw QlustarError(
                        .io,
                        "node registry \(description): the connection broke while the change was being "
                            + "committed; it may or may not be stored (look before trying again)")
                }
                throw error
            }
        }
    }

    func read<T>(_ body: (any SQLSession) throws(QlustarError) -> T) throws(QlustarError) -> T {
        // A connection that broke since the last call (a database restart): once more on a new one.
        try attempts(2) { (session, last) throws(QlustarError) -> T? in
            do throws(QlustarError) {
                try session.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", [])
                let result = try body(session)
                try session.execute("COMMIT", [])
                return result
            } catch {
                rollBack(session)
                if session.connectionLost, !last { return nil }
                throw error
            }
        }
    }

    /// Runs `once` under the lock, each time on a session of the current (or a new) connection,
    /// until it returns a value; nil asks for another run, which the last (`last` true) may not.
    private func attempts<T>(
        _ count: Int, _ once: (Session, _ last: Bool) throws(QlustarError) -> T?
    ) throws(QlustarError) -> T {
        lock.lock()
        defer { lock.unlock() }
        for attempt in 1...count {
            let session = Session(connection: try connected(), logger: logger)
            let result: T?
            defer {
                // No answer at all: the machine may be gone; the next connects are hurried.
                if session.timedOut { unreachable = (MonotonicClock.nanoseconds(), Self.quietAfterTimeoutSeconds) }
            }
            result = try once(session, attempt == count)
            if let result { return result }
            // Two heads that lost a race to each other must not run again in step and lose again:
            // a random pause, growing with each attempt (2–20 ms, then up to 8 × that).
            usleep(UInt32.random(in: 2_000...20_000) * UInt32(min(attempt, 8)))
        }
        throw QlustarError(.io, "node registry \(description): no outcome after \(count) attempts")
    }

    private func rollBack(_ session: Session) {
        if session.connectionLost {
            drop()
        } else {
            try? session.execute("ROLLBACK", [])
        }
    }

    /// Waits for `future` on the calling thread. Not `EventLoopFuture.wait()`, which NIO forbids
    /// on any event loop thread: qlumand calls the registry from its own server's event loops,
    /// and waiting there for this store's group (never the same loop) is what a synchronous
    /// SQLite call there does too.
    ///
    /// Bounded: a query on a connection the server is cutting (a fast shutdown) was seen never to
    /// complete; past `timeoutSeconds` the wait ends with `Timeout`, and the caller drops the
    /// connection.
    static func block<T: Sendable>(_ future: EventLoopFuture<T>, timeoutSeconds: Int = queryTimeoutSeconds) throws -> T
    {
        let done = DispatchSemaphore(value: 0)
        let outcome = NIOLockedValueBox<Result<T, any Error>?>(nil)
        future.whenComplete { result in
            outcome.withLockedValue { $0 = result }
            done.signal()
        }
        guard done.wait(timeout: .now() + .seconds(timeoutSeconds)) == .success,
            let result = outcome.withLockedValue({ $0 })
        else { throw Timeout(seconds: timeoutSeconds) }
        return try result.get()
    }

    /// No answer from the database within the bound.
    struct Timeout: Error, CustomStringConvertible {
        let seconds: Int
        var description: String { "no answer from the database within \(seconds) s" }
    }

    /// The longest any one statement may take; the registry's take milliseconds.
    static let queryTimeoutSeconds = 5

    // MARK: - The connection

    /// The open connection, or a new one to the first host that accepts writes.
    private func connected() throws(QlustarError) -> PostgresConnection {
        if let c = connection, !c.isClosed { return c }
        connection = nil
        let now = MonotonicClock.nanoseconds()
        // Shortly after the database did not answer: a connect that gives up after a second, so
        // that while its machine is gone no caller waits out the full connect timeout.
        let hurried = unreachable.map { now >= $0.at && now - $0.at < $0.quietSeconds * 1_000_000_000 } ?? false
        let connectTimeout = hurried ? 1 : location.connectTimeoutSeconds
        var problems: [String] = []
        for host in location.hosts {
            var config = PostgresConnection.Configuration(
                host: host.name, port: host.port, username: location.user, password: location.password,
                database: location.database, tls: .disable)
            config.options.connectTimeout = .seconds(Int64(connectTimeout))
            do {
                let c = try PostgresStore.block(
                    PostgresConnection.connect(on: group.next(), configuration: config, id: 1, logger: logger),
                    timeoutSeconds: connectTimeout + (hurried ? 1 : 5))
                let standby =
                    try PostgresStore.block(c.query("SELECT pg_is_in_recovery()", logger: logger))
                    .first?.decode(Bool.self) ?? false
                if standby {
                    problems.append("\(host): a standby (read-only)")
                    try? PostgresStore.block(c.close(), timeoutSeconds: 5)
                    continue
                }
                connection = c
                unreachable = nil
                return c
            } catch {
                problems.append("\(host): \(Session.describe(error))")
            }
        }
        let error = QlustarError(
            .io,
            "cannot reach the node registry \(description): " + problems.joined(separator: "; ")
                + " (is PostgreSQL running there, and the password file right?)")
        let failedAt = MonotonicClock.nanoseconds()
        unreachable = failedAt - now >= 1_000_000_000 ? (failedAt, Self.quietSeconds) : nil
        throw error
    }

    private func drop() {
        if let c = connection { try? PostgresStore.block(c.close(), timeoutSeconds: 5) }
        connection = nil
    }

    /// Applies the migrations not yet applied, all in one transaction under an advisory lock:
    /// two heads starting at once wait for each other, and a half-applied upgrade cannot exist.
    private func migrate() throws(QlustarError) {
        let session = Session(connection: try connected(), logger: logger)
        try session.execute("BEGIN", [])
        do {
            try session.execute("SELECT pg_advisory_xact_lock(\(Self.migrationLock))", [])
            try session.execute(
                "CREATE TABLE IF NOT EXISTS registry_migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
                    + "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())", [])
            let applied = Set(try session.rows("SELECT name FROM registry_migrations", []).map { $0.text("name") })
            for (i, m) in RegistrySchema.migrations.enumerated() where !applied.contains(m.name) {
                for statement in m.statements(.postgresql) { try session.execute(statement, []) }
                try session.execute(
                    "INSERT INTO registry_migrations (id, name) VALUES (?, ?)", [.integer(Int64(i + 1)), .text(m.name)])
            }
            try session.execute("COMMIT", [])
        } catch {
            rollBack(session)
            throw QlustarError(.io, "cannot upgrade the node registry \(description): \(error.message)")
        }
    }

    /// One connection inside a transaction; remembers whether the database refused a statement
    /// because a concurrent transaction won (worth running again) or the connection broke.
    final class Session: SQLSession {
        let connection: PostgresConnection
        let logger: Logger
        var dialect: SQLDialect { .postgresql }
        private(set) var raced = false
        private(set) var connectionLost = false
        /// The database did not answer within `queryTimeoutSeconds` (its machine may be gone).
        private(set) var timedOut = false

        init(connection: PostgresConnection, logger: Logger) {
            self.connection = connection
            self.logger = logger
        }

        func execute(_ sql: String, _ arguments: [SQLValue]) throws(QlustarError) {
            _ = try run(sql, arguments)
        }

        func rows(_ sql: String, _ arguments: [SQLValue]) throws(QlustarError) -> [SQLRow] {
            try run(sql, arguments).map { row in
                var columns: [String] = []
                var values: [SQLValue] = []
                for cell in row {
                    columns.append(cell.columnName)
                    values.append(Session.value(cell))
                }
                return SQLRow(columns: columns, values: values)
            }
        }

        private func run(_ sql: String, _ arguments: [SQLValue]) throws(QlustarError) -> PostgresQueryResult {
            var binds = PostgresBindings(capacity: arguments.count)
            for a in arguments {
                switch a {
                case .null: binds.appendNull()
                case .text(let s): binds.append(s)
                case .integer(let i): binds.append(i)
                case .real(let d): binds.append(d)
                }
            }
            let query = PostgresQuery(unsafeSQL: Session.numbered(sql), binds: binds)
            do {
                return try PostgresStore.block(connection.query(query, logger: logger))
            } catch {
                if let p = error as? PSQLError {
                    let state = p.serverInfo?[.sqlState] ?? ""
                    // 40001 serialization failure, 40P01 deadlock, 23505 a unique key a concurrent
                    // transaction took first.
                    if ["40001", "40P01", "23505"].contains(state) { raced = true }
                    // Not the server's answer, or the server saying it is going away (class 57:
                    // shutdown, restart; class 08: connection exception): the connection is done.
                    if p.code != .server || state.hasPrefix("57") || state.hasPrefix("08") { connectionLost = true }
                } else {
                    connectionLost = true
                    if error is Timeout { timedOut = true }
                }
                throw QlustarError(.io, "node registry: \(Session.describe(error))")
            }
        }

        /// `?` placeholders as PostgreSQL's `$1, $2, …` (outside quoted text).
        static func numbered(_ sql: String) -> String {
            var out = ""
            var n = 0
            var quoted = false
            for ch in sql {
                if ch == "'" { quoted.toggle() }
                if ch == "?", !quoted {
                    n += 1
                    out += "$\(n)"
                } else {
                    out.append(ch)
                }
            }
            return out
        }

        static func value(_ cell: PostgresCell) -> SQLValue {
            guard cell.bytes != nil else { return .null }
            switch cell.dataType {
            case .int2, .int4, .int8: return (try? cell.decode(Int64.self)).map { .integer($0) } ?? .null
            case .float4, .float8: return (try? cell.decode(Double.self)).map { .real($0) } ?? .null
            case .bool: return (try? cell.decode(Bool.self)).map { .integer($0 ? 1 : 0) } ?? .null
            default: return (try? cell.decode(String.self)).map { .text($0) } ?? .null
            }
        }

        /// The server's own message (and detail) for its errors, the cause for the rest.
        static func describe(_ error: any Error) -> String {
            guard let p = error as? PSQLError else { return "\(error)" }
            if let message = p.serverInfo?[.message] {
                return message + (p.serverInfo?[.detail].map { " (\($0))" } ?? "")
            }
            return "\(p.code)" + (p.underlying.map { ": \($0)" } ?? "")
        }
    }
}
