import Platform

extension FilePlan {
    /// What writing a plan did.
    public struct Outcome: Sendable, Equatable {
        public var written = 0
        /// Entries whose owner could not be set (not running as root).
        public var ownersNotSet = 0
    }

    /// Writes every entry below `root` (the node's `/`, or a preview directory) — the one code
    /// path of `qluman-execd --configure` and `qluman preview --dir`.
    /// - Throws: `.io` naming the first path that cannot be written; `.invalidArgument` for a path
    ///   that is not absolute.
    public func write(below root: String) throws(QlustarError) -> Outcome {
        let tree = try RootedTree(root: root)
        var outcome = Outcome()
        for entry in entries {
            let owned: Bool
            switch entry.content {
            case .file(let bytes):
                owned = try tree.writeFile(entry.path, bytes, mode: entry.mode, uid: entry.uid, gid: entry.gid)
            case .directory:
                owned = try tree.makeDirectory(entry.path, mode: entry.mode, uid: entry.uid, gid: entry.gid)
            case .symlink(let target):
                owned = try tree.makeSymlink(entry.path, target: target, uid: entry.uid, gid: entry.gid)
            }
            outcome.written += 1
            if !owned { outcome.ownersNotSet += 1 }
        }
        for edit in edits {
            let existing = try tree.readFile(edit.path)
            let old = existing.map { String(decoding: $0.bytes, as: UTF8.self) } ?? ""
            let new = edit.apply(to: old)
            guard new != old else { continue }
            let (mode, uid, gid) = existing.map { ($0.mode, $0.uid, $0.gid) } ?? (0o644, 0, 0)
            if !(try tree.writeFile(edit.path, Array(new.utf8), mode: mode, uid: uid, gid: gid)) {
                outcome.ownersNotSet += 1
            }
            outcome.written += 1
        }
        // Each directory written into is synced once, after all its files.
        try tree.syncDirectories()
        return outcome
    }
}
