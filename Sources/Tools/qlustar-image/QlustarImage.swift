import ArgumentParser
import Foundation
import ImageService
import ImageTools
import Logging
import Platform

struct QlustarImage: ParsableCommand {
    /// `qlustar-image --root R build IMG`: the shared options are taken before the subcommand too.
    static func main() {
        main(
            LeadingOptions.hoist(
                Array(CommandLine.arguments.dropFirst()), valued: ["--root", "--client"], flags: ["--json"]))
    }

    static let configuration = CommandConfiguration(
        commandName: "qlustar-image",
        abstract: "Build node OS images from image modules and publish them for ql-mcastd.",
        discussion: HelpText.paragraphs(
            """
            An image is defined in <root>/etc/qlustar/images/IMG/image.json (its modules, in layer
            order; core always first). Building layers the newest installed version of each module
            (<root>/var/lib/qlustar/image-modules/NAME/VERSION), then the static copy files of
            /etc/qlustar/images/common/copy and /etc/qlustar/images/IMG/copy, writes the changelogs
            into /usr/share/doc/qlustar-image, and publishes IMG.img (squashfs) and IMG.initrd in
            /var/lib/qlustar/images, where ql-mcastd serves them. Builds are reproducible: the same
            inputs give the same bytes, and an image whose inputs did not change is not rebuilt.

              qlustar-image define compute --modules core,slurm
              qlustar-image build compute
              qlustar-image update          after module upgrades: rebuild what changed

            Exit status: 0 done (built, unchanged or listed); 1 an error, named in the message; 64 a
            mistake in the command line.
            """),
        subcommands: [Define.self, Build.self, Update.self, List.self, Replicate.self]
    )
}

struct CommonOptions: ParsableArguments {
    @Option(help: "Root prefix for every path (default: $QLUSTAR_ROOT or /).") var root: String?
    @Option(help: "The ql-mcast-client binary for the initrd (default: the one beside this program, else on $PATH).")
    var client: String?
    @Flag(help: "Print JSON for scripts.") var json = false

    var rootPath: Root { Root(root) }

    /// `value` as JSON when --json is given, else `text`.
    func print<T: Encodable>(_ value: T, text: () -> String) throws {
        try JSONOutput.print(value, json: json, text: text)
    }

    func builder() -> ImageBuilder {
        let log = Logger(root: rootPath, name: "qlustar-image")
        let found = CompanionProgram.path("ql-mcast-client") ?? "ql-mcast-client (beside this program or on $PATH)"
        return ImageBuilder(root: rootPath, log: log, clientBinary: client ?? found)
    }
}

struct Define: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Define (or redefine) an image: its modules in layer order.")
    @OptionGroup var common: CommonOptions
    @Argument(help: "Image name.") var image: String
    @Option(help: "Modules, comma separated, in layer order (core is always first).") var modules: String
    @Option(help: "squashfs compression: zstd (default), gzip or xz.") var compression: String?
    @Option(help: "The kernel the image boots with (published as IMG.vmlinuz for pxelinux; 'none' to clear).")
    var kernel: String?
    @Option(
        name: .customLong("initrd-program"),
        help:
            "A program for the initrd, copied with its libraries (repeat; replaces the list; default /bin/sh, /bin/mount)."
    )
    var initrdPrograms: [String] = []
    @Option(
        name: .customLong("initrd-file"),
        help: ArgumentHelp(
            "A file for the initrd as PATH_IN_INITRD=FILE (repeat; replaces the list), e.g. lib/modules/e1000.ko=/lib/modules/…/e1000.ko.",
            valueName: "path=file"))
    var initrdFiles: [String] = []
    @Option(
        help:
            "How the initrd is compressed: gzip (default; any kernel) or zstd (smaller, faster to boot; CONFIG_RD_ZSTD)."
    )
    var initrdCompression: String?

    func validate() throws {
        if let initrdCompression, InitrdCompression(rawValue: initrdCompression) == nil {
            throw ValidationError("--initrd-compression must be gzip or zstd, not '\(initrdCompression)'")
        }
        for entry in initrdFiles where !entry.contains("=") {
            throw ValidationError("--initrd-file '\(entry)' is not PATH_IN_INITRD=FILE")
        }
        for entry in initrdFiles {
            let inside = entry.split(separator: "=", maxSplits: 1).first.map(String.init) ?? ""
            let parts = inside.split(separator: "/")
            if inside.hasPrefix("/") || parts.isEmpty || parts.contains("..") || parts.contains(".") {
                throw ValidationError(
                    "--initrd-file: '\(inside)' must be a relative path inside the initrd, without '..'")
            }
        }
    }

    func run() throws {
        let name = try ImageName(image)
        let list = modules.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let store = ModuleStore(root: common.rootPath)
        for module in list { _ = try store.module(module) }
        var definition = (try? ImageDefinition.load(common.rootPath, name)) ?? ImageDefinition(modules: [])
        definition.modules = list
        if let compression { definition.compression = compression }
        if let kernel { definition.kernel = kernel == "none" ? nil : kernel }
        if let initrdCompression { definition.initrdCompression = initrdCompression }
        if !initrdPrograms.isEmpty { definition.initrdPrograms = initrdPrograms }
        if !initrdFiles.isEmpty {
            definition.initrdFiles = Dictionary(
                initrdFiles.map { entry in
                    let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
                    return (parts[0], parts.count > 1 ? parts[1] : "")
                }, uniquingKeysWith: { _, last in last })
        }
        try definition.store(common.rootPath, name)
        print("image '\(name)': \(definition.layers.joined(separator: " + "))")
    }
}

struct Build: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build and publish one image (skipped when its inputs are unchanged).")
    @OptionGroup var common: CommonOptions
    @Argument(help: "Image name.") var image: String
    @Flag(help: "Build even when nothing changed.") var force = false

    func run() throws {
        let result = try common.builder().build(try ImageName(image), force: force)
        try common.print(BuildReport(result)) { report(result) }
    }
}

struct Update: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rebuild every image whose inputs changed (module versions, copy files, password).")
    @OptionGroup var common: CommonOptions

    func run() throws {
        let results = try common.builder().update()
        try common.print(results.map { BuildReport($0.1) }) {
            results.isEmpty
                ? "no images defined in \(common.rootPath.path("/etc/qlustar/images"))\n"
                : results.map { report($0.1) }.joined()
        }
    }
}

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the defined images, their last build, and the installed modules.")
    @OptionGroup var common: CommonOptions

    func run() throws {
        let builder = common.builder()
        struct Listed: Encodable {
            var image: String
            var layers: [String]
            var built: BuildRecord?
        }
        var images: [Listed] = []
        for image in ImageDefinition.defined(common.rootPath) {
            let definition = try ImageDefinition.load(common.rootPath, image)
            images.append(Listed(image: image.value, layers: definition.layers, built: try? builder.record(image)))
        }
        let store = ModuleStore(root: common.rootPath)
        let modules = Dictionary(uniqueKeysWithValues: store.names().map { ($0, store.versions(of: $0).map(\.text)) })
        struct Listing: Encodable {
            var images: [Listed]
            var modules: [String: [String]]
        }
        try common.print(Listing(images: images, modules: modules)) {
            images.map { i in
                let built =
                    i.built.map {
                        "built \($0.modules.map { "\($0.name) \($0.version)" }.joined(separator: ", ")), sha256 \($0.sha256.prefix(16))…"
                    } ?? "never built"
                return "\(i.image)  [\(i.layers.joined(separator: " + "))]  \(built)\n"
            }.joined()
                + modules.keys.sorted().map { "module \($0): \(modules[$0, default: []].joined(separator: ", "))\n" }
                .joined()
        }
    }
}

struct Replicate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy the images another head node published (image, initrd, kernel, manifest), verified.",
        discussion: HelpText.paragraphs(
            """
            Run on the second head node of a cluster with two: asks ql-mcastd on the head named by
            --from for its images, with the secret both heads share (its peer-token), and copies
            every image whose version this head does not have — the image by its ranges, then the
            initrd, kernel and manifest published beside it. Each file is published here only after
            it matched the digest the source's manifest gives for it; the manifest goes last. An
            image this head has in the same version is left alone, so running it from cron or after
            every build on the other head is cheap.

              qlustar-image replicate --from 192.168.52.1 --ca /etc/qlustar/ssl/ca.crt
              qlustar-image replicate --from cl-head1 compute

            Exit status: 0 every image replicated or up to date; 1 an error (unreachable source,
            refused token, a file that did not match its manifest: nothing of that image was
            published), named in the message; 64 a mistake in the command line. docs/HA.md.
            """))
    @OptionGroup var common: CommonOptions
    @Option(help: "ql-mcastd on the head node that published the images, HOST[:PORT].") var from: String
    @Option(
        help:
            "The file holding the heads' shared secret (mode 0600; the source's peer-token; default <root>/etc/qlustar/heads.token)."
    )
    var tokenFile: String?
    @Option(help: "The cluster CA: talk TLS to the source and accept only a certificate it signed for --from.")
    var ca: String?
    @Argument(help: "The images to copy (default: every image the source serves).") var images: [String] = []

    func validate() throws {
        do { _ = try HeadNode(parsing: from, defaultPort: DaemonConfiguration.defaultPort) } catch {
            throw ValidationError("--from: \(error.message)")
        }
        for image in images {
            do { _ = try ImageName(image) } catch { throw ValidationError(error.message) }
        }
    }

    func run() throws {
        let source = try HeadNode(parsing: from, defaultPort: DaemonConfiguration.defaultPort)
        var options = ReplicationOptions(
            source: source, root: common.rootPath,
            token: try SecretFile.firstLine(
                tokenFile ?? common.rootPath.path("/etc/qlustar/heads.token"), what: "token file"))
        options.ca = ca
        options.images = try images.map { try ImageName($0) }
        let log = Logger(root: common.rootPath, name: "qlustar-image")
        let report = try ImageReplicator(options: options, log: log).run()
        try common.print(report) {
            report.entries.map { e in
                e.action == "replicated"
                    ? String(
                        format: "%@: replicated from %@, %llu bytes in %.1f s (sha256 %@)\n", e.image, report.source,
                        e.bytes, e.seconds, e.sha256)
                    : "\(e.image): up to date (sha256 \(e.sha256))\n"
            }.joined()
        }
    }
}

/// A build as --json prints it.
struct BuildReport: Encodable {
    var image: String
    var rebuilt: Bool
    var seconds: Double
    var record: BuildRecord

    init(_ result: ImageBuilder.Result) {
        image = result.record.image
        rebuilt = result.rebuilt
        seconds = result.seconds
        record = result.record
    }
}

func report(_ result: ImageBuilder.Result) -> String {
    let r = result.record
    if result.rebuilt {
        return String(
            format: "%@: built in %.2f s, %llu bytes, sha256 %@ (initrd %llu bytes)\n", r.image, result.seconds, r.size,
            r.sha256, r.initrdSize)
    }
    return "\(r.image): unchanged, not rebuilt (sha256 \(r.sha256))\n"
}
