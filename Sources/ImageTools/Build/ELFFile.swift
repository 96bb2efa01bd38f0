import Platform

/// The little the image builder needs to know about an executable or library: whether it is a
/// 64-bit ELF file, and whether it loads shared libraries (has a `PT_INTERP` or `PT_DYNAMIC`
/// program header). Static programs (busybox-static) need no `ldd` — which fails on them — and
/// scripts or data files are never stripped.
struct ELFFile {
    /// Whether the file is an ELF object (executable or shared library).
    let isELF: Bool
    /// Whether it is dynamically linked (loads shared libraries).
    let isDynamic: Bool

    /// Reads the ELF header and program headers of `path`.
    /// - Throws: `.io` when the file cannot be read.
    init(_ path: String) throws(QlustarError) {
        let head = try FileSystem.readPrefix(path, count: 64 << 10)
        guard head.count >= 64, head[0] == 0x7F, head[1] == 0x45, head[2] == 0x4C, head[3] == 0x46, head[4] == 2,
            head[5] == 1
        else {
            isELF = false
            isDynamic = false
            return
        }
        isELF = true
        func u16(_ at: Int) -> Int { Int(head[at]) | Int(head[at + 1]) << 8 }
        func u64(_ at: Int) -> Int { (0..<8).reduce(0) { $0 | Int(head[at + $1]) << (8 * $1) } }
        let table = u64(32)  // e_phoff
        let entrySize = u16(54)  // e_phentsize
        let count = u16(56)  // e_phnum
        var dynamic = false
        for i in 0..<count {
            let at = table + i * entrySize
            guard entrySize >= 4, at >= 0, at + 4 <= head.count else { break }
            let type = u16(at) | u16(at + 2) << 16
            if type == 2 || type == 3 { dynamic = true }  // PT_DYNAMIC, PT_INTERP
        }
        isDynamic = dynamic
    }
}
