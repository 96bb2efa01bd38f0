import FoundationEssentials

/// The root prefix every path of a tool hangs from (DESIGN.md, "Every path has a root").
///
/// A real head node uses `/`; the tests and the demo use a temporary directory, so the whole
/// system runs as an unprivileged layout. Paths are given as the documented absolute paths and
/// joined below the prefix.
public struct Root: Sendable, CustomStringConvertible {
    /// The environment variable that sets the root when `--root` is not given.
    public static let environmentVariable = "QLUSTAR_ROOT"

    public let prefix: String

    /// - Parameter path: `--root` when given; otherwise `$QLUSTAR_ROOT`, otherwise `/`.
    public init(_ path: String? = nil) {
        let chosen = path ?? ProcessInfo.processInfo.environment[Root.environmentVariable] ?? "/"
        var p = chosen.isEmpty ? "/" : chosen
        while p.count > 1, p.hasSuffix("/") { p.removeLast() }
        prefix = p
    }

    /// `absolute` (a documented path such as `/var/lib/qlustar`) below the prefix.
    public func path(_ absolute: String) -> String {
        precondition(absolute.hasPrefix("/"), "paths below a root are written absolute")
        return prefix == "/" ? absolute : prefix + absolute
    }

    /// Where ql-mcastd serves images from (`NAME.img`), and the image tooling publishes to.
    public var images: String { path("/var/lib/qlustar/images") }
    /// Where the boot-phase tools log.
    public var logs: String { path("/var/log/qlustar") }
    /// ql-mcastd's cached image manifests.
    public var manifestCache: String { path("/var/cache/qlustar/ql-mcastd") }

    public var description: String { prefix }
}
