/// One value of a registry row or statement argument, the same on every backend: the registry
/// stores text, integers and real numbers only.
public enum SQLValue: Sendable, Equatable {
    case null
    case text(String)
    case integer(Int64)
    case real(Double)

    public var string: String? {
        if case .text(let s) = self { return s }
        return nil
    }

    public var int64: Int64? {
        switch self {
        case .integer(let i): i
        case .real(let d): d.isFinite && d.rounded() == d && abs(d) < 9e18 ? Int64(d) : nil
        default: nil
        }
    }

    public var double: Double? {
        switch self {
        case .real(let d): d
        case .integer(let i): Double(i)
        default: nil
        }
    }
}

/// What may be bound to a `?` of a registry statement.
public protocol SQLBindable {
    var sqlValue: SQLValue { get }
}

extension String: SQLBindable { public var sqlValue: SQLValue { .text(self) } }
extension Int: SQLBindable { public var sqlValue: SQLValue { .integer(Int64(self)) } }
extension Int64: SQLBindable { public var sqlValue: SQLValue { .integer(self) } }
extension Double: SQLBindable { public var sqlValue: SQLValue { .real(self) } }

extension Optional: SQLBindable where Wrapped: SQLBindable {
    public var sqlValue: SQLValue { self?.sqlValue ?? .null }
}

/// One result row, its values by column name or position.
public struct SQLRow: Sendable {
    public let columns: [String]
    public let values: [SQLValue]

    public init(columns: [String], values: [SQLValue]) {
        self.columns = columns
        self.values = values
    }

    public subscript(_ column: String) -> SQLValue {
        guard let i = columns.firstIndex(of: column) else { return .null }
        return values[i]
    }

    public subscript(_ index: Int) -> SQLValue { index < values.count ? values[index] : .null }

    /// The text in `column` ("" when it is NULL or not text: columns declared NOT NULL TEXT).
    public func text(_ column: String) -> String { self[column].string ?? "" }
}
