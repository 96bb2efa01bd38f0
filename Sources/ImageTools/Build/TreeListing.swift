import Foundation
import Platform
import Transport

#if canImport(Glibc)
    import Glibc
#endif

/// What a tree holds, path by path: type, mode, owner, size and content hash (or link target).
/// Two listings compared give the files changed between two module versions; a listing hashed
/// gives the identity of a copy directory.
public struct TreeListing: Sendable, Equatable {
    /// Path (relative, `/`-separated) → "type mode uid:gid size sha256-or-target".
    public var entries: [String: String] = [:]

    public init() {}

    /// Lists the directory `root` (missing: empty listing).
    public init(of root: String) throws(QlustarError) {
        guard FileSystem.isDirectory(root) else { return }
        try walk(root, prefix: "")
    }

    private mutating func walk(_ dir: String, prefix: String) throws(QlustarError) {
        let children = try FileSystem.list(dir)
        for child in children {
            let path = dir + "/" + child
            let name = prefix.isEmpty ? child : prefix + "/" + child
            let st = try FileSystem.status(path, followingLinks: false)
            let mode = String(st.st_mode & 0o7777, radix: 8)
            let owner = "\(st.st_uid):\(st.st_gid)"
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                entries[name] = "d \(mode) \(owner) 0 -"
                try walk(path, prefix: name)
            case S_IFREG:
                entries[name] = "f \(mode) \(owner) \(st.st_size) \(try TreeListing.hashFile(path))"
            case S_IFLNK:
                entries[name] = "l \(mode) \(owner) 0 \(try FileSystem.linkTarget(path))"
            default:
                entries[name] = "o \(String(st.st_mode, radix: 8)) \(owner) 0 -"
            }
        }
    }

    static func hashFile(_ path: String) throws(QlustarError) -> String {
        do {
            let file = try MappedFile.open(readingFrom: path)
            return SHA256.hash(file.bytes).hex
        } catch {
            throw QlustarError(.io, "cannot read \(path): \(error.message)")
        }
    }

    /// The listing as text, one "path\tdescription" line per entry in byte order.
    public var text: String {
        entries.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }.map {
            "\($0)\t\(entries[$0]!)\n"
        }.joined()
    }

    public init(text: String) {
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "\t", maxSplits: 1)
            if parts.count == 2 { entries[String(parts[0])] = String(parts[1]) }
        }
    }

    /// What changed from `old` to this listing: "added", "removed", "changed" lines, sorted.
    public func changes(since old: TreeListing) -> [String] {
        var out: [String] = []
        for path in Set(entries.keys).union(old.entries.keys).sorted(by: {
            Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8))
        }) {
            switch (old.entries[path], entries[path]) {
            case (nil, .some): out.append("added   /\(path)")
            case (.some, nil): out.append("removed /\(path)")
            case (.some(let a), .some(let b)) where a != b: out.append("changed /\(path)")
            default: break
            }
        }
        return out
    }
}
