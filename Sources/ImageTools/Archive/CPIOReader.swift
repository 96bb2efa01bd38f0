import Platform

#if canImport(Glibc)
    import Glibc
#endif

/// Reads a `newc` cpio archive from memory (the format `CPIOWriter` writes). Every field is
/// checked before it is used: a truncated or corrupt archive is an error naming the entry, never
/// a crash or a read past the end.
public enum CPIOReader {
    public struct Entry: Sendable, Equatable {
        public var name: String
        /// File type and permission bits, as `st_mode`.
        public var mode: UInt32
        public var uid: UInt32
        public var gid: UInt32
        /// File content, or the target of a symbolic link.
        public var data: [UInt8]

        public var type: UInt32 { mode & UInt32(S_IFMT) }
    }

    /// The entries of `archive`, up to the trailer.
    /// - Throws: `.integrity` naming the offset and what is wrong.
    public static func entries(_ archive: [UInt8]) throws(QlustarError) -> [Entry] {
        var out: [Entry] = []
        var at = 0
        while true {
            guard at + 110 <= archive.count else { throw corrupt(at, "truncated header") }
            guard
                archive[at..<(at + 6)].elementsEqual("070701".utf8)
                    || archive[at..<(at + 6)].elementsEqual("070702".utf8)
            else {
                throw corrupt(at, "not a newc cpio header")
            }
            var fields: [UInt32] = []
            for i in 0..<13 {
                let start = at + 6 + i * 8
                guard let value = UInt32(String(decoding: archive[start..<(start + 8)], as: UTF8.self), radix: 16)
                else {
                    throw corrupt(at, "header field \(i) is not hex")
                }
                fields.append(value)
            }
            let (mode, uid, gid, size, nameSize) = (fields[1], fields[2], fields[3], Int(fields[6]), Int(fields[11]))
            let nameStart = at + 110
            guard nameSize >= 2, nameStart + nameSize <= archive.count, archive[nameStart + nameSize - 1] == 0 else {
                throw corrupt(at, "bad name")
            }
            let nameBytes = archive[nameStart..<(nameStart + nameSize - 1)]
            guard !nameBytes.contains(0) else { throw corrupt(at, "name contains NUL") }
            let name = String(decoding: nameBytes, as: UTF8.self)
            let dataStart = align(nameStart + nameSize)
            guard size >= 0, dataStart + size <= archive.count else {
                throw corrupt(at, "\(name): data runs past the end")
            }
            if name == "TRAILER!!!" { return out }
            out.append(
                Entry(name: name, mode: mode, uid: uid, gid: gid, data: Array(archive[dataStart..<(dataStart + size)])))
            at = align(dataStart + size)
        }
    }

    private static func align(_ n: Int) -> Int { (n + 3) & ~3 }

    private static func corrupt(_ offset: Int, _ what: String) -> QlustarError {
        QlustarError(.integrity, "cpio archive is corrupt at byte \(offset): \(what)")
    }
}
