import Foundation
import Platform

/// SHA-256 and `ldd` results of files, remembered per file version (its `FileIdentity`) in
/// `/var/lib/qlustar/image-build/hashes.json`: the initrd's ~130 MB of programs and libraries are
/// hashed, and `ldd` run, once per version, so checking an unchanged image only stats files.
final class FileFactsCache {
    struct Entry: Codable {
        var identity: FileIdentity
        var sha256: String?
        /// What `ldd` listed, kept while every one of them is still there.
        var libraries: [String]?
    }

    private let path: String
    private var entries: [String: Entry]

    init(path: String) {
        self.path = path
        let bytes = (try? FileSystem.readFile(path, limit: 16 << 20)) ?? []
        entries = (try? JSONDecoder().decode([String: Entry].self, from: Data(bytes))) ?? [:]
    }

    /// The entry of `file` for its current version (a new, empty one when it changed).
    private func entry(_ file: String) throws(QlustarError) -> Entry {
        guard let id = try FileSystem.identity(of: file) else {
            throw QlustarError(.notFound, "\(file) does not exist")
        }
        if let known = entries[file], known.identity == id { return known }
        return Entry(identity: id)
    }

    func sha256(of file: String) throws(QlustarError) -> String {
        var e = try entry(file)
        if let known = e.sha256 { return known }
        e.sha256 = try TreeListing.hashFile(file)
        entries[file] = e
        return e.sha256!
    }

    /// The shared libraries `program` loads (as `ldd` resolves them), the dynamic loader included.
    func libraries(of program: String) throws(QlustarError) -> [String] {
        var e = try entry(program)
        if let known = e.libraries, known.allSatisfy(FileSystem.isRegularFile) { return known }
        // ldd fails on a static program (busybox-static): it loads nothing.
        guard try ELFFile(program).isDynamic else {
            e.libraries = []
            entries[program] = e
            return []
        }
        let text = try Subprocess.run("/usr/bin/ldd", [program], step: "list the libraries of \(program)")
        var found: [String] = []
        for line in text.split(separator: "\n") {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            if let arrow = words.firstIndex(of: "=>"), arrow + 1 < words.count, words[arrow + 1].hasPrefix("/") {
                found.append(words[arrow + 1])
            } else if let first = words.first, first.hasPrefix("/") {
                found.append(first)
            }
        }
        e.libraries = found
        entries[program] = e
        return found
    }

    /// Writes the cache, keeping only files that are still the version it describes.
    func save() {
        let current = entries.filter { file, e in ((try? FileSystem.identity(of: file)) ?? nil) == e.identity }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(current) else { return }
        try? FileSystem.writeAtomically(path, Array(data))
    }
}
