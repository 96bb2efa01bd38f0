import Platform

/// The SQL the two backends spell differently; everything else the registry writes is SQL both
/// accept (upserts as `INSERT … ON CONFLICT`, `RETURNING`, `CAST(? AS TEXT)` for a NULL test).
public enum SQLDialect: String, Sendable {
    case sqlite, postgresql

    /// An aggregate joining `expression` of a group's rows with `separator`, in the order of the
    /// subquery it reads.
    public func joined(_ expression: String, separator: String) -> String {
        switch self {
        case .sqlite: "group_concat(\(expression), '\(separator)')"
        case .postgresql: "string_agg(\(expression), '\(separator)')"
        }
    }
}

/// A transaction in progress: statements with `?` placeholders, arguments bound in order.
public protocol SQLSession {
    var dialect: SQLDialect { get }
    func execute(_ sql: String, _ arguments: [SQLValue]) throws(QlustarError)
    func rows(_ sql: String, _ arguments: [SQLValue]) throws(QlustarError) -> [SQLRow]
}

/// Where the registry lives: an SQLite file on this head node, or a PostgreSQL database that
/// several head nodes share. Every change runs in `write` as one transaction, all of it or
/// nothing; `read` sees one consistent state.
public protocol RegistryStore: Sendable {
    /// What an administrator calls it in a message (a path, or `postgresql://host/db`).
    var description: String { get }
    var dialect: SQLDialect { get }
    /// Runs `body` in one transaction and commits it. A transaction the database refuses because
    /// another one got there first (PostgreSQL's serialization failures) runs again from the
    /// start, so a check in `body` ("MAC … already belongs to node …") sees the winner's rows.
    func write<T>(_ body: (any SQLSession) throws(QlustarError) -> T) throws(QlustarError) -> T
    func read<T>(_ body: (any SQLSession) throws(QlustarError) -> T) throws(QlustarError) -> T
}
