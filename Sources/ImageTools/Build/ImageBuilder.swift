import Foundation
import Logging
import Platform
import Transport

#if canImport(Glibc)
    import Glibc
#endif

/// Builds node OS images from modules and publishes them where ql-mcastd serves them
/// (docs/IMAGES.md, "Building").
///
/// 1. Inputs: the definition, the newest installed version of each module, the copy files
///    (`common/copy`, then `IMG/copy`), the root password hash, and the initrd's programs. Their
///    digest decides whether anything must be built.
/// 2. Stage: layer the modules in order, then the copy files (owner, group and mode kept), set
///    root's password, write the changelogs into `/usr/share/doc/qlustar-image`.
/// 3. Pack: squashfs (`SquashfsBuilder`, reproducible) and the initrd (`newc` cpio, gzip or zstd):
///    `/init`, `ql-mcast-client` and the programs, with their libraries.
/// 4. Publish: `IMG.img` and `IMG.initrd` in `<root>/var/lib/qlustar/images`, each written
///    beside and renamed (a node sees the old file or the new one), then `IMG.manifest`.
public final class ImageBuilder {
    public static let formatVersion = 1

    public let root: Root
    public let modules: ModuleStore
    let log: Logger
    /// The ql-mcast-client binary the initrd carries.
    public var clientBinary: String
    /// The time every file of the image and initrd gets (`SOURCE_DATE_EPOCH`, else 0).
    public var time: UInt32 = UInt32(
        ProcessInfo.processInfo.environment["SOURCE_DATE_EPOCH"].flatMap { UInt32($0) } ?? 0)
    /// How the layers are stacked for mksquashfs: an overlayfs mount (root; no copying), else
    /// hard links. Both give the same image.
    public var useOverlay = true

    public init(root: Root, log: Logger, clientBinary: String) {
        self.root = root
        self.log = log
        self.clientBinary = clientBinary
        modules = ModuleStore(root: root)
    }

    var state: String { root.path("/var/lib/qlustar/image-build") }
    /// File hashes and `ldd` results per file version.
    private lazy var facts = FileFactsCache(path: state + "/hashes.json")
    private func hash(_ path: String) throws(QlustarError) -> String { try facts.sha256(of: path) }

    var images: String { root.images }

    /// The outcome of `build`.
    public struct Result: Sendable {
        public var record: BuildRecord
        /// False when the inputs were unchanged and nothing was built.
        public var rebuilt: Bool
        public var seconds: Double
    }

    // MARK: - Building

    /// Builds `image` unless its inputs are unchanged since the last build (or `force`).
    /// - Throws: `.notFound` (image not defined, module not installed), `.configuration`, `.io`.
    public func build(_ image: ImageName, force: Bool = false) throws(QlustarError) -> Result {
        let t0 = MonotonicClock.nanoseconds()
        let definition = try ImageDefinition.load(root, image)
        let layers = try definition.layers.map { name throws(QlustarError) in try modules.module(name) }
        for module in layers { try remember(module) }
        let programs = try initrdFiles(definition)
        let rootHash = try rootPasswordHash(definition)
        let compression = InitrdCompression(rawValue: definition.initrdCompression ?? "gzip") ?? .gzip
        let initrdInputs = try initrdDigest(image, programs, compression)
        defer { facts.save() }
        let inputs = try inputDigest(image, definition, layers, initrdInputs, rootHash)
        let previous = try? record(image)
        if !force, let previous, previous.inputs == inputs, isPublished(previous) {
            log.info("image '\(image)' unchanged (inputs \(inputs.prefix(12))): not rebuilt")
            return Result(record: previous, rebuilt: false, seconds: seconds(since: t0))
        }
        log.info(
            "building image '\(image)' from \(layers.map { "\($0.name) \($0.manifest.version)" }.joined(separator: ", "))"
        )
        try FileSystem.makeDirectories(images)
        let work = root.path("/var/cache/qlustar/image-build/\(image.value).stage.\(getpid())")
        try? FileSystem.removeTree(work)
        try FileSystem.makeDirectories(work)
        // rm is several times faster than FileManager on a tree of links.
        defer { _ = try? Subprocess.run("/bin/rm", ["-rf", "--", work], step: "remove the stage") }
        let tStage = MonotonicClock.nanoseconds()
        log.debug("inputs checked in \(String(format: "%.3f", seconds(since: t0))) s")
        let copies = [ImageDefinition.directory(root, image) + "/copy", ImageDefinition.commonCopy(root)].filter(
            FileSystem.isDirectory)
        let stage: String
        let overlay =
            !useOverlay
            ? nil
            : try? mountOverlay(
                layers: copies + (try layers.reversed().map { m throws(QlustarError) in try tree(of: m) }), work: work)
        if let overlay {
            stage = overlay
        } else {
            stage = work + "/stage"
            try FileSystem.makeDirectories(stage)
            for module in layers { try layer(module, into: stage) }
            try copyFiles(ImageDefinition.commonCopy(root), into: stage)
            try copyFiles(ImageDefinition.directory(root, image) + "/copy", into: stage)
        }
        defer { if let overlay { _ = try? Subprocess.run("/bin/umount", [overlay], step: "unmount the stage") } }
        log.debug(
            "layers (\(overlay == nil ? "hard links" : "overlay")) in \(String(format: "%.3f", seconds(since: tStage))) s"
        )
        if let rootHash {
            try setRootPassword(rootHash, in: stage)
        } else {
            log.warning("image '\(image)': no root password hash (none defined, none in \(root.path("/etc/shadow")))")
        }
        let doc = stage + "/usr/share/doc/qlustar-image"
        try FileSystem.makeDirectories(doc)
        for module in layers { try Changelogs.write(into: doc, module: module, steps: try steps(module)) }
        try FileSystem.makeDirectories(stage + "/sbin")
        try FileSystem.writeAtomically(stage + InitQlustarScript.path, Array(InitQlustarScript.text.utf8), mode: 0o755)

        var squashfs = SquashfsBuilder()
        squashfs.time = time
        if let c = definition.compression { squashfs.compression = SquashfsBuilder.Compression(rawValue: c) ?? .zstd }
        let imagePath = images + "/" + image.fileName
        let initrdPath = images + "/" + image.value + ".initrd"
        let tPack = MonotonicClock.nanoseconds()
        log.debug("staged in \(String(format: "%.3f", seconds(since: tStage))) s")
        try squashfs.build(tree: stage, target: imagePath)
        log.debug("mksquashfs in \(String(format: "%.3f", seconds(since: tPack))) s")
        // The initrd does not depend on the modules: keep the published one when its own inputs
        // are unchanged and it was not edited by hand.
        let publishedInitrd = try FileSystem.identity(of: initrdPath)
        if force || previous?.initrdInputs != initrdInputs || previous?.edited == true || publishedInitrd == nil
            || publishedInitrd != previous?.initrdIdentity
        {
            try writeInitrd(image, programs: programs, to: initrdPath, compression: compression)
        } else {
            log.info("initrd of '\(image)' unchanged: kept")
        }

        var kernelTarget: String?
        if let kernel = definition.kernel {
            guard FileSystem.isRegularFile(kernel) else {
                throw QlustarError(.notFound, "kernel \(kernel) of image '\(image)' not found")
            }
            let target = images + "/" + image.value + ".vmlinuz"
            try Subprocess.run("/bin/cp", ["--", kernel, target + ".tmp"], step: "publish the kernel")
            try FileSystem.publish(target + ".tmp", to: target)
            kernelTarget = target
        }

        var record = BuildRecord(
            image: image.value, inputs: inputs, initrdInputs: initrdInputs,
            modules: layers.map { .init(name: $0.name, version: $0.manifest.version) },
            sha256: try hash(imagePath), size: try FileSystem.identity(of: imagePath)?.size ?? 0,
            initrdSha256: try hash(initrdPath), initrdSize: try FileSystem.identity(of: initrdPath)?.size ?? 0)
        if let kernelTarget {
            // What another head verifies its copy by (qlustar-image replicate).
            record.kernelSha256 = try hash(kernelTarget)
            record.kernelSize = try FileSystem.identity(of: kernelTarget)?.size
        }
        try writeJSON(images + "/" + image.value + ".manifest", record)
        record.imageIdentity = try FileSystem.identity(of: imagePath)
        record.initrdIdentity = try FileSystem.identity(of: initrdPath)
        try record.store(root)
        log.debug("packed and published in \(String(format: "%.3f", seconds(since: tPack))) s")
        log.info(
            "image '\(image)' published: \(record.size) bytes, sha256 \(record.sha256); initrd \(record.initrdSize) bytes"
        )
        return Result(record: record, rebuilt: true, seconds: seconds(since: t0))
    }

    /// Builds every defined image whose inputs changed (a module upgraded, copy files edited…).
    public func update() throws(QlustarError) -> [(ImageName, Result)] {
        var results: [(ImageName, Result)] = []
        for image in ImageDefinition.defined(root) { results.append((image, try build(image))) }
        return results
    }

    /// The record of the last build of `image`.
    public func record(_ image: ImageName) throws(QlustarError) -> BuildRecord { try BuildRecord.load(root, image) }

    private func isPublished(_ r: BuildRecord) -> Bool {
        let image = (try? FileSystem.identity(of: images + "/" + r.image + ".img")) ?? nil
        let initrd = (try? FileSystem.identity(of: images + "/" + r.image + ".initrd")) ?? nil
        return image != nil && image == r.imageIdentity && initrd != nil && initrd == r.initrdIdentity
    }

    // MARK: - Inputs

    private func inputDigest(
        _ image: ImageName, _ definition: ImageDefinition, _ layers: [ImageModule], _ initrdInputs: String,
        _ rootHash: String?
    ) throws(QlustarError) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var text = "format \(ImageBuilder.formatVersion)\ntime \(time)\n"
        text += "definition " + String(decoding: (try? encoder.encode(definition)) ?? Data(), as: UTF8.self) + "\n"
        for m in layers {
            text += "module \(m.name) \(m.manifest.version) \(m.manifestDigest)\n"
            text +=
                "history \(m.name) "
                + seenVersions(m.name).filter { $0 <= m.version }.map(\.text).joined(separator: ",") + "\n"
        }
        for dir in [ImageDefinition.commonCopy(root), ImageDefinition.directory(root, image) + "/copy"] {
            text += "copy \(dir) " + sha(try TreeListing(of: dir).text) + "\n"
        }
        text += "root \(rootHash ?? "-")\ninitrd \(initrdInputs)\ninit.qlustar " + sha(InitQlustarScript.text) + "\n"
        if let kernel = definition.kernel { text += "kernel \(kernel) " + (try hash(kernel)) + "\n" }
        return sha(text)
    }

    private func initrdDigest(_ image: ImageName, _ programs: [String: String], _ compression: InitrdCompression)
        throws(QlustarError) -> String
    {
        var text = "format \(ImageBuilder.formatVersion)\ntime \(time)\ninit " + sha(InitScript.text(image)) + "\n"
        text += "compression \(compression.rawValue)\n"
        for path in programs.keys.sorted() { text += "\(path) " + (try hash(programs[path]!)) + "\n" }
        return sha(text)
    }

    private func sha(_ text: String) -> String { Array(text.utf8).withUnsafeBytes { SHA256.hash($0) }.hex }

    private func rootPasswordHash(_ definition: ImageDefinition) throws(QlustarError) -> String? {
        if let h = definition.rootPasswordHash { return h }
        let shadow = root.path("/etc/shadow")
        guard FileSystem.isRegularFile(shadow) else { return nil }
        let text = String(decoding: try FileSystem.readFile(shadow, limit: 1 << 20), as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix("root:") {
            let hash = line.split(separator: ":", omittingEmptySubsequences: false)[1]
            return hash.isEmpty || hash == "*" || hash.hasPrefix("!") ? nil : String(hash)
        }
        return nil
    }

    // MARK: - Module history (for changelogs)

    private var moduleState: String { state + "/modules" }

    /// Keeps a module version's manifest and file listing, the first time it is seen, so later
    /// versions can be compared with it even after it is uninstalled.
    private func remember(_ module: ImageModule) throws(QlustarError) {
        let dir = moduleState + "/" + module.name
        let base = dir + "/" + module.manifest.version
        guard !FileSystem.isRegularFile(base + ".files") else { return }
        try FileSystem.makeDirectories(dir)
        let listing: TreeListing
        switch module.content {
        case .tree(let tree): listing = try TreeListing(of: tree)
        case .tarArchive:
            listing = try TreeListing(of: try unpacked(module))
        }
        try writeJSON(base + ".json", module.manifest)
        try FileSystem.writeAtomically(base + ".files", Array(listing.text.utf8))
    }

    private func seenVersions(_ name: String) -> [ModuleVersion] {
        let entries = (try? FileSystem.list(moduleState + "/" + name)) ?? []
        return entries.filter { $0.hasSuffix(".files") }.map { ModuleVersion(String($0.dropLast(6))) }.sorted()
    }

    /// Version steps of `module` up to its current version, oldest first.
    private func steps(_ module: ImageModule) throws(QlustarError) -> [Changelogs.Step] {
        let versions = seenVersions(module.name).filter { $0 <= module.version }
        guard versions.count > 1 else { return [] }
        var out: [Changelogs.Step] = []
        for (a, b) in zip(versions, versions.dropFirst()) {
            let base = moduleState + "/" + module.name + "/"
            func manifest(_ v: ModuleVersion) throws(QlustarError) -> ModuleManifest {
                let bytes = try FileSystem.readFile(base + v.text + ".json", limit: 16 << 20)
                do { return try JSONDecoder().decode(ModuleManifest.self, from: Data(bytes)) } catch {
                    throw QlustarError(.configuration, "\(base)\(v.text).json: \(error)")
                }
            }
            func listing(_ v: ModuleVersion) throws(QlustarError) -> TreeListing {
                TreeListing(
                    text: String(
                        decoding: try FileSystem.readFile(base + v.text + ".files", limit: 256 << 20), as: UTF8.self))
            }
            out.append(
                Changelogs.Step(
                    from: try manifest(a), to: try manifest(b), contents: try listing(b).changes(since: try listing(a)))
            )
        }
        return out
    }

    // MARK: - Staging

    /// A tar module unpacked once per version into `/var/cache/qlustar/image-build/modules`, so
    /// builds hard-link it like a tree module instead of unpacking it every time.
    private func unpacked(_ module: ImageModule) throws(QlustarError) -> String {
        guard case .tarArchive(let archive) = module.content else {
            preconditionFailure("only tar modules are unpacked")
        }
        let dir = root.path("/var/cache/qlustar/image-build/modules/\(module.name)/\(module.manifest.version)")
        let identity = try FileSystem.identity(of: archive)
        let stamp = dir + ".from"
        let expected = Array(
            "\(module.manifestDigest) \(identity.map { "\($0.inode) \($0.size) \($0.modifiedNanos)" } ?? "")".utf8)
        if FileSystem.isDirectory(dir), (try? FileSystem.readFile(stamp, limit: 4_096)) == expected { return dir }
        try? FileSystem.removeTree(dir)
        let scratch = dir + ".new.\(getpid())"
        try? FileSystem.removeTree(scratch)
        try FileSystem.makeDirectories(scratch)
        do {
            try Subprocess.run(
                "/bin/tar", ["-x", "-p", "--same-owner", "--numeric-owner", "-f", archive, "-C", scratch],
                step: "unpack module \(module.name)")
            try FileSystem.rename(scratch, to: dir)
        } catch {
            try? FileSystem.removeTree(scratch)
            throw error
        }
        try FileSystem.writeAtomically(stamp, expected)
        return dir
    }

    /// The directory holding module `m`'s files (its tree, or its unpacked archive).
    private func tree(of m: ImageModule) throws(QlustarError) -> String {
        switch m.content {
        case .tree(let path): return path
        case .tarArchive: return try unpacked(m)
        }
    }

    /// Stacks `layers` (topmost first) with overlayfs under `work/stage`, writes going to
    /// `work/upper`: the stage costs no copy and no link at all. Needs root and overlayfs; the
    /// caller falls back to hard-linked layers when the mount fails.
    /// - Returns: The mount point.
    private func mountOverlay(layers: [String], work: String) throws(QlustarError) -> String {
        guard getuid() == 0, !layers.isEmpty else { throw QlustarError(.io, "overlay needs root") }
        for dir in ["upper", "work", "stage"] { try FileSystem.makeDirectories(work + "/" + dir) }
        let options = "lowerdir=\(layers.joined(separator: ":")),upperdir=\(work)/upper,workdir=\(work)/work"
        guard options.utf8.count < 4_000, !layers.contains(where: { $0.contains(":") || $0.contains(",") }) else {
            throw QlustarError(.io, "layer paths unfit for overlay options")
        }
        try Subprocess.run(
            "/bin/mount", ["-t", "overlay", "overlay", "-o", options, work + "/stage"], step: "mount the layers")
        return work + "/stage"
    }

    /// Lays a module into the stage. Tree modules are hard-linked, not copied (the stage only
    /// feeds mksquashfs, which reads): a layer costs a link per file instead of its bytes. Every
    /// later step replaces a staged file (unlink, then create) and never writes into one, so a
    /// module's own files are never changed. Across file systems it falls back to copying.
    private func layer(_ module: ImageModule, into stage: String) throws(QlustarError) {
        let tree = try tree(of: module)
        do {
            try Subprocess.run(
                "/bin/cp", ["-a", "-l", "--remove-destination", "--", tree + "/.", stage + "/"],
                step: "layer module \(module.name)")
        } catch  where error.message.contains("Invalid cross-device link") {
            try Subprocess.run(
                "/bin/cp", ["-a", "--remove-destination", "--", tree + "/.", stage + "/"],
                step: "layer module \(module.name)")
        }
    }

    private func copyFiles(_ dir: String, into stage: String) throws(QlustarError) {
        guard FileSystem.isDirectory(dir) else { return }
        // --remove-destination: replace a (hard-linked) module file, never write into it.
        try Subprocess.run(
            "/bin/cp", ["-a", "--remove-destination", "--", dir + "/.", stage + "/"],
            step: "copy the static files of \(dir)")
    }

    private func setRootPassword(_ hash: String, in stage: String) throws(QlustarError) {
        let shadow = stage + "/etc/shadow"
        try FileSystem.makeDirectories(stage + "/etc")
        if FileSystem.isRegularFile(shadow) {
            let text = String(decoding: try FileSystem.readFile(shadow, limit: 16 << 20), as: UTF8.self)
            var found = false
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
                guard line.hasPrefix("root:") else { return String(line) }
                found = true
                var fields = line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
                fields[1] = hash
                return fields.joined(separator: ":")
            }
            var out = lines.joined(separator: "\n")
            if !found { out = "root:\(hash):0:0:99999:7:::\n" + out }
            // A new file in its place (the staged one may be a module's, hard-linked), with the
            // module's owner, group and mode.
            let st = try FileSystem.status(shadow)
            try FileSystem.writeAtomically(shadow, Array(out.utf8), mode: st.st_mode & 0o7777)
            try FileSystem.setOwner(shadow, uid: st.st_uid, gid: st.st_gid)
        } else {
            try FileSystem.writeAtomically(shadow, Array("root:\(hash):0:0:99999:7:::\n".utf8), mode: 0o600)
        }
    }

    // MARK: - Initrd

    /// Archive path → source file: the client, the programs, and every library they load.
    private func initrdFiles(_ definition: ImageDefinition) throws(QlustarError) -> [String: String] {
        guard FileSystem.isRegularFile(clientBinary) else {
            throw QlustarError(.notFound, "ql-mcast-client not found at \(clientBinary) (give --client PATH)")
        }
        var files: [String: String] = ["bin/ql-mcast-client": clientBinary]
        for program in [clientBinary] + (definition.initrdPrograms ?? ["/bin/sh", "/bin/mount"]) {
            guard FileSystem.isRegularFile(program) else {
                throw QlustarError(.notFound, "initrd program \(program) not found")
            }
            if program != clientBinary { files[String(program.dropFirst())] = program }
            for library in try facts.libraries(of: program) { files[String(library.dropFirst())] = library }
        }
        for (inside, source) in definition.initrdFiles ?? [:] {
            guard FileSystem.isRegularFile(source) else {
                throw QlustarError(.notFound, "initrd file \(source) (for \(inside)) not found")
            }
            files[inside] = source
        }
        return files
    }

    private func writeInitrd(
        _ image: ImageName, programs: [String: String], to path: String, compression: InitrdCompression
    ) throws(QlustarError) {
        let cpio = CPIOWriter(writingTo: try compression.writer(path: path), mtime: time)
        var directories: Set<String> = ["dev", "proc", "sys", "tmp", "union", "etc", "bin"]
        for file in programs.keys {
            var parts = file.split(separator: "/").dropLast()
            while !parts.isEmpty {
                directories.insert(parts.joined(separator: "/"))
                parts = parts.dropLast()
            }
        }
        var entries: [(String, () throws(QlustarError) -> Void)] = []
        for dir in directories { entries.append((dir, { () throws(QlustarError) in try cpio.addDirectory(dir) })) }
        entries.append(
            (
                "dev/console",
                { () throws(QlustarError) in try cpio.addCharacterDevice("dev/console", major: 5, minor: 1) }
            ))
        entries.append(
            (
                "init",
                { () throws(QlustarError) in
                    try cpio.addFile("init", data: Array(InitScript.text(image).utf8), mode: 0o755)
                }
            ))
        // A file that goes in under several names (busybox as bin/busybox and bin/sh) is stored
        // once: the first name in byte order carries it, the others link to it.
        var carrier: [String: String] = [:]
        for (name, source) in programs.sorted(by: { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) })
        {
            if let first = carrier[source] {
                let target = Self.relativeLink(from: name, to: first)
                entries.append((name, { () throws(QlustarError) in try cpio.addSymlink(name, target: target) }))
                continue
            }
            carrier[source] = name
            let copy = try initrdCopy(of: source)
            entries.append((name, { () throws(QlustarError) in try cpio.addFile(name, contentsOf: copy) }))
        }
        for (_, add) in entries.sorted(by: { Array($0.0.utf8).lexicographicallyPrecedes(Array($1.0.utf8)) }) {
            try add()
        }
        try cpio.finish()
    }

    /// The target of a symlink at `name` that reaches `other` (both relative to the initrd's
    /// root): `busybox` from `bin/sh` to `bin/busybox`, `../bin/busybox` from `sbin/x`.
    static func relativeLink(from name: String, to other: String) -> String {
        let from = name.split(separator: "/").dropLast()
        let to = other.split(separator: "/")
        var common = 0
        while common < from.count, common < to.count - 1, from[from.startIndex + common] == to[common] { common += 1 }
        let up = Array(repeating: "..", count: from.count - common)
        return (up + to[common...].map(String.init)).joined(separator: "/")
    }

    /// What the initrd carries for `source`: an ELF file without its symbol tables and debug
    /// sections (`strip --strip-unneeded`: the client and its libraries shrink from ~125 to ~80 MB,
    /// which every node loads by TFTP), cached by content in
    /// `/var/cache/qlustar/image-build/stripped`; any other file as it is. Without `strip`
    /// (binutils) the files go in unstripped.
    private func initrdCopy(of source: String) throws(QlustarError) -> String {
        guard try ELFFile(source).isELF else { return source }
        let dir = root.path("/var/cache/qlustar/image-build/stripped")
        let target = dir + "/" + (try hash(source))
        if FileSystem.isRegularFile(target) { return target }
        guard let strip = ["/usr/bin/strip", "/bin/strip"].first(where: { FileSystem.isExecutableFile($0) }) else {
            log.warning("no strip (binutils): \(source) goes into the initrd unstripped")
            return source
        }
        try FileSystem.makeDirectories(dir)
        let temporary = target + ".tmp.\(getpid())"
        do {
            try Subprocess.run(
                strip, ["--strip-unneeded", "-o", temporary, "--", source], step: "strip \(source) for the initrd")
        } catch {
            FileSystem.remove(temporary)
            log.warning("\(error.message): it goes into the initrd unstripped")
            return source
        }
        try FileSystem.publish(temporary, to: target)
        return target
    }

    // MARK: - Helpers

    func writeJSON<T: Encodable>(_ path: String, _ value: T) throws(QlustarError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? encoder.encode(value) else { throw QlustarError(.io, "cannot encode \(path)") }
        try FileSystem.writeAtomically(path, Array(data))
    }

    private func seconds(since t0: UInt64) -> Double { Double(MonotonicClock.nanoseconds() - t0) / 1e9 }
}
