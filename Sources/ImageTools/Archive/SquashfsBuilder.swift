import Foundation
import Platform

/// Builds a squashfs with the real `mksquashfs`, reproducibly: every inode and the filesystem
/// itself get one fixed time, entries are sorted (mksquashfs always sorts directories), extended
/// attributes are left out, and owners and modes come from the tree. The same tree gives the same
/// bytes, so the same SHA-256 — what lets ql-mcastd's cached manifests and the "unchanged
/// image is not rebuilt" check work. Written beside the target and renamed into place.
public struct SquashfsBuilder: Sendable {
    public enum Compression: String, Sendable, CaseIterable {
        /// zstd level 3: ~20 × faster to build than gzip -9 and faster to unpack (LIMITS.md).
        case zstd
        case gzip
        case xz
    }

    public var compression = Compression.zstd
    public var level: Int?
    /// The time given to every file and the filesystem (seconds since the epoch).
    public var time: UInt32 = 0
    /// Threads for compression (nil: all cores; the output does not depend on it).
    public var processors: Int?

    public init() {}

    static var mksquashfs: String {
        Subprocess.locate(["/usr/bin/mksquashfs", "/usr/sbin/mksquashfs", "/sbin/mksquashfs"])
    }

    /// The arguments after source and target.
    func options() -> [String] {
        var args = [
            "-noappend", "-quiet", "-no-progress", "-no-xattrs", "-all-time", "\(time)", "-mkfs-time", "\(time)",
        ]
        args += ["-comp", compression.rawValue]
        switch compression {
        case .zstd: args += ["-Xcompression-level", "\(level ?? 3)"]
        case .gzip: args += ["-Xcompression-level", "\(level ?? 9)"]
        case .xz: break
        }
        if let processors { args += ["-processors", "\(processors)"] }
        return args
    }

    /// Packs the directory `tree` into `target` (mode 0600).
    /// - Throws: `.io` with mksquashfs's own message when it fails.
    public func build(tree: String, target: String) throws(QlustarError) {
        let temporary = target + ".tmp.\(getpid())"
        FileSystem.remove(temporary)
        do {
            try Subprocess.run(Self.mksquashfs, [tree, temporary] + options(), step: "pack \(tree) with mksquashfs")
        } catch {
            FileSystem.remove(temporary)
            throw error
        }
        // A node's root holds secrets (the root password hash in /etc/shadow, host keys): only
        // root (ql-mcastd) reads the image file.
        try FileSystem.publish(temporary, to: target, mode: 0o600)
    }
}
