import FoundationEssentials
import Logging
import Platform

#if canImport(Glibc)
    import Glibc
#endif

/// The union root of step 4 of the boot: under `DIR/union`, `image` (the squashfs image,
/// unpacked or mounted), `rw` (runtime changes: a tmpfs when mounting) and `chroot` (reserved,
/// empty, for an optional chroot added later); when mounting, `root` is the union of the three
/// (overlayfs: chroot over image read-only, changes in rw) that the node switches to.
///
/// Without `mount`, the image is unpacked with `unsquashfs` into a fresh directory that replaces
/// the old one only when complete, and `rw` is a plain directory: no privileges needed, which is
/// how the tests run it. With `mount` (root, in the initrd), `image` is a read-only loop mount
/// of the squashfs and `rw` a tmpfs.
public struct UnionLayout: Sendable {
    public let directory: String
    public let mount: Bool

    public init(directory: String, mount: Bool) {
        self.directory = directory
        self.mount = mount
    }

    public var union: String { directory + "/union" }
    public var image: String { union + "/image" }
    public var readWrite: String { union + "/rw" }
    public var chroot: String { union + "/chroot" }
    /// The merged root (mounted only with `mount`).
    public var root: String { union + "/root" }

    /// Lays out the union for the verified image file `imageFile`.
    /// - Throws: `.union` naming the step and the tool's own message.
    public func build(from imageFile: String, log: Logger) throws(QlustarError) {
        try checkSquashfs(imageFile)
        do {
            try FileSystem.makeDirectories(union)
            try FileSystem.makeDirectories(readWrite)
            try FileSystem.makeDirectories(chroot)
        } catch {
            throw QlustarError(.union, error.message)
        }
        if mount {
            try FileSystem.makeDirectories(image)
            try run("/bin/mount", ["-t", "squashfs", "-o", "loop,ro", imageFile, image], step: "mount the image")
            try run("/bin/mount", ["-t", "tmpfs", "-o", "mode=0755", "tmpfs", readWrite], step: "mount the tmpfs")
            do {
                for dir in [readWrite + "/upper", readWrite + "/work", root] { try FileSystem.makeDirectories(dir) }
            } catch {
                throw QlustarError(.union, error.message)
            }
            try run(
                "/bin/mount",
                [
                    "-t", "overlay", "-o",
                    "lowerdir=\(chroot):\(image),upperdir=\(readWrite)/upper,workdir=\(readWrite)/work", "overlay",
                    root,
                ],
                step: "mount the union root")
        } else {
            let fresh = union + "/.image.new"
            try? FileSystem.removeTree(fresh)
            try run(
                Self.unsquashfs, ["-no-progress", "-quiet", "-f", "-d", fresh, imageFile], step: "unpack the image")
            try? FileSystem.removeTree(image)
            do { try FileSystem.rename(fresh, to: image) } catch { throw QlustarError(.union, error.message) }
        }
        log.info(
            "union root laid out in \(union) (image \(mount ? "mounted" : "unpacked"), rw, chroot reserved\(mount ? "; merged in \(root)" : ""))"
        )
    }

    static var unsquashfs: String {
        Subprocess.locate(["/usr/bin/unsquashfs", "/usr/sbin/unsquashfs", "/bin/unsquashfs", "/sbin/unsquashfs"])
    }

    /// A squashfs starts with "hsqs": anything else gets a clear error, not a tool's confusion.
    private func checkSquashfs(_ path: String) throws(QlustarError) {
        let magic: [UInt8]
        do { magic = try FileSystem.readPrefix(path, count: 4) } catch { throw QlustarError(.union, error.message) }
        guard magic == Array("hsqs".utf8) else {
            throw QlustarError(.union, "\(path) is not a squashfs image; cannot lay out the union root")
        }
    }

    private func run(_ tool: String, _ arguments: [String], step: String) throws(QlustarError) {
        try Subprocess.run(tool, arguments, step: step, code: .union)
    }
}
