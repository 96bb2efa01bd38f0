import Foundation
import Logging
import Platform

#if canImport(Glibc)
    import Glibc
#endif

/// What `qlustar-image-edit` does (boot reference, "Static node OS image customization" and
/// "Dynamic node OS image customization"): edit copy files and Root FS Customization files with
/// the administrator's editor, and edit a built initrd or squashfs in a shell.
public struct ImageEditor {
    public let root: Root
    let log: Logger

    public init(root: Root, log: Logger) {
        self.root = root
        self.log = log
    }

    /// Where an edited file lives.
    public enum Area {
        /// `/etc/qlustar/images/common/copy` (all images).
        case common
        /// `/etc/qlustar/images/IMG/copy`.
        case image(ImageName)
        /// `/var/lib/qlustar/root-fs/CUSTOM` (a Root FS Customization config).
        case rootFS(String)
    }

    public func directory(_ area: Area) throws(QlustarError) -> String {
        switch area {
        case .common: return root.path("/etc/qlustar/images/common/copy")
        case .image(let image):
            guard FileSystem.isRegularFile(root.path("/etc/qlustar/images/\(image.value)/image.json")) else {
                throw QlustarError(
                    .notFound, "image '\(image)' is not defined (qlustar-image define \(image) --modules …)")
            }
            return root.path("/etc/qlustar/images/\(image.value)/copy")
        case .rootFS(let name):
            guard (try? ImageName(name)) != nil else {
                throw QlustarError(
                    .invalidArgument,
                    "Root FS Customization name '\(name)' may only contain letters, digits, '.', '_', '+' and '-'")
            }
            return root.path("/var/lib/qlustar/root-fs/\(name)")
        }
    }

    /// `path` (as it will be on the node, e.g. /etc/motd) inside `base`, refusing anything that
    /// could leave it: `..`, empty, NUL, or a symbolic link on the way that points outside.
    public func resolve(_ path: String, in base: String) throws(QlustarError) -> String {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        guard !parts.isEmpty, !parts.contains(".."), !parts.contains("."), !path.utf8.contains(0) else {
            throw QlustarError(.invalidArgument, "'\(path)' is not a file path inside the image (no '..', not empty)")
        }
        let target = base + "/" + parts.joined(separator: "/")
        // Every existing component must stay inside `base` once links are followed.
        let realBase = URL(fileURLWithPath: base).resolvingSymlinksInPath().path
        var probe = base
        for part in parts {
            probe += "/" + part
            guard FileSystem.exists(probe, followingLinks: false)
            else { break }
            let real = URL(fileURLWithPath: probe).resolvingSymlinksInPath().path
            guard real == realBase || real.hasPrefix(realBase + "/") else {
                throw QlustarError(.invalidArgument, "'\(path)' leads outside \(base) through a symbolic link")
            }
        }
        return target
    }

    /// Creates or edits `path` in `area` with the editor: the file is edited as a copy and put in
    /// place only when the editor succeeds, so a failed edit leaves nothing half-written.
    /// - Parameter editor: The editor command; nil: `$VISUAL`, `$EDITOR`, `sensible-editor`, `vi`.
    public func edit(_ path: String, in area: Area, editor: String? = nil) throws(QlustarError) -> String {
        let base = try directory(area)
        try FileSystem.makeDirectories(base)
        let target = try resolve(path, in: base)
        try FileSystem.makeDirectories((target as NSString).deletingLastPathComponent)
        _ = try resolve(path, in: base)  // again, now that the parents exist
        let scratch = target + ".edit.\(getpid())"
        defer { FileSystem.remove(scratch) }
        if FileSystem.isRegularFile(target) {
            try Subprocess.run("/bin/cp", ["-p", "--", target, scratch], step: "copy \(target) for editing")
        } else {
            try FileSystem.writeAtomically(scratch, [], mode: 0o644)
        }
        let command = editor ?? ImageEditor.defaultEditor()
        let status = try Shell.run(command + " \"$1\"", arguments: [scratch], directory: nil, interactive: true)
        guard status == 0 else {
            throw QlustarError(.io, "the editor '\(command)' exited \(status): \(target) left as it was")
        }
        try FileSystem.rename(scratch, to: target)
        log.info("edited \(target)")
        return target
    }

    /// Deletes `path` of the Root FS Customization `name`.
    public func delete(_ path: String, rootFS name: String) throws(QlustarError) -> String {
        let base = try directory(.rootFS(name))
        let target = try resolve(path, in: base)
        guard FileSystem.exists(target, followingLinks: false)
        else { throw QlustarError(.notFound, "\(target) does not exist") }
        guard !FileSystem.isDirectory(target) || (try? FileSystem.linkTarget(target)) != nil else {
            throw QlustarError(.invalidArgument, "\(target) is a directory; remove directories from a shell")
        }
        try FileSystem.delete(target)
        log.info("deleted \(target)")
        return target
    }

    static func defaultEditor() -> String {
        let env = ProcessInfo.processInfo.environment
        if let v = env["VISUAL"], !v.isEmpty { return v }
        if let e = env["EDITOR"], !e.isEmpty { return e }
        return FileSystem.isExecutableFile("/usr/bin/sensible-editor") ? "/usr/bin/sensible-editor" : "vi"
    }

    // MARK: - Editing built images

    public enum Part: String { case initrd, squashfs }

    /// Unpacks the initrd or squashfs of `image` into a temporary tree, runs `command` (default:
    /// an interactive `$SHELL`) there, and regenerates and publishes it when the command exits 0;
    /// any other status throws the changes away and leaves the published file untouched.
    /// - Returns: Whether the image was regenerated.
    public func editBuilt(_ image: ImageName, _ part: Part, command: String?) throws(QlustarError) -> Bool {
        let published = root.images + "/" + image.value + (part == .initrd ? ".initrd" : ".img")
        guard FileSystem.isRegularFile(published) else {
            throw QlustarError(.notFound, "image '\(image)' has no \(part) at \(published) (build it first)")
        }
        let work = root.path("/var/cache/qlustar/image-edit/\(image.value).\(part.rawValue).\(getpid())")
        try? FileSystem.removeTree(work)
        try FileSystem.makeDirectories(work)
        defer { try? FileSystem.removeTree(work) }
        // An initrd is edited in the format it was built in.
        let compression = part == .initrd ? try InitrdCompression.detect(published) : nil
        switch part {
        case .initrd:
            guard let compression else {
                throw QlustarError(
                    .configuration, "\(published) is neither gzip nor zstd: not an initrd qlustar-image built")
            }
            try Subprocess.run(
                "/bin/sh",
                [
                    "-c",
                    "cd \"$1\" && \(compression.decompressor) \"$2\" | cpio -id --quiet --preserve-modification-time --no-absolute-filenames",
                    "sh", work, published,
                ],
                step: "unpack the initrd of '\(image)'")
        case .squashfs:
            try Subprocess.run(
                "/usr/bin/unsquashfs", ["-quiet", "-no-progress", "-f", "-d", work + "/tree", published],
                step: "unpack '\(image)'")
        }
        let tree = part == .initrd ? work : work + "/tree"
        let shell = command ?? (ProcessInfo.processInfo.environment["SHELL"] ?? "/bin/sh")
        log.info("editing the \(part) of '\(image)' in \(tree): 'exit' regenerates it, 'exit 1' discards the changes")
        let status = try Shell.run(
            command ?? "exec \"\(shell)\" -i", arguments: [], directory: tree, interactive: command == nil)
        guard status == 0 else {
            log.info("\(part) of '\(image)': changes discarded (exit \(status))")
            return false
        }
        switch part {
        case .initrd:
            let cpio = CPIOWriter(writingTo: try (compression ?? .gzip).writer(path: published))
            try cpio.addTree(tree)
            try cpio.finish()
        case .squashfs:
            try SquashfsBuilder().build(tree: tree, target: published)
        }
        try markEdited(image)
        log.info("\(part) of '\(image)' regenerated (temporary: the next rebuild from modules replaces it)")
        return true
    }
}

extension ImageEditor {
    /// Records that the published files of `image` were edited by hand: they count as published
    /// (no rebuild while the inputs stay the same) until the next build from modules replaces them.
    func markEdited(_ image: ImageName) throws(QlustarError) {
        guard var record = try? BuildRecord.load(root, image) else { return }
        record.imageIdentity = try FileSystem.identity(of: root.images + "/" + image.fileName)
        record.initrdIdentity = try FileSystem.identity(of: root.images + "/" + image.value + ".initrd")
        record.edited = true
        try record.store(root)
    }
}

/// Runs a shell command, attached to the terminal when interactive.
enum Shell {
    static func run(_ script: String, arguments: [String], directory: String?, interactive: Bool) throws(QlustarError)
        -> Int32
    {
        // In our process group (the terminal's), so Ctrl-C and job control reach the shell.
        let process = try Subprocess(
            "/bin/sh", ["-c", script, "sh"] + arguments, directory: directory, input: interactive, output: .inherit,
            errors: .inherit, newProcessGroup: false)
        switch process.wait() {
        case .exited(let status): return status
        case .signalled(let signal): return 128 + signal
        }
    }
}
