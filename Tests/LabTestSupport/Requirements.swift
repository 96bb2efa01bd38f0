import Foundation
import LabSupport
import XCTest

/// What some tests need from the machine, checked in one place. CI runs as root with network
/// namespaces, so there an unmet requirement fails the test; elsewhere (a developer without
/// root) the test is skipped with the reason and the command that runs it.
public enum Requirements {
    /// Skips (or, under CI, fails) with `why` unless `met`.
    public static func require(_ met: Bool, _ why: String) throws {
        guard !met else { return }
        let message = why + " (CI runs it as root: sudo scripts/test)"
        if ProcessInfo.processInfo.environment["CI"] != nil { throw LabError(message) }
        throw XCTSkip(message)
    }

    /// Root: network namespaces, mounts, file owners, raised limits.
    public static func root(_ why: String) throws { try require(getuid() == 0, why) }

    /// At least `count` open files: raises the soft limit, and as root the hard limit too.
    public static func descriptors(_ count: rlim_t) throws {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        if limit.rlim_max < count, getuid() == 0 { limit.rlim_max = count }
        limit.rlim_cur = max(limit.rlim_cur, min(count, limit.rlim_max))
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        try require(limit.rlim_cur >= count, "needs \(count) open files; the limit is \(limit.rlim_cur)")
    }
}
