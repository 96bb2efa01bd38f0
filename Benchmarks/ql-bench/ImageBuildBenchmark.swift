import ArgumentParser
import Foundation
import ImageTools
import LabSupport
import Logging
import Platform

/// `ql-bench image-build`: building an image from modules (layering, copy files, changelogs,
/// squashfs; the initrd unchanged) vs a bare `mksquashfs` of the same final tree, alternating;
/// and the time of an unchanged rebuild (nothing to do).
struct ImageBuildBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image-build",
        abstract: "Image build from modules vs bare mksquashfs of the same tree; unchanged rebuild time.",
        discussion: HelpText.paragraphs(
            """
            Makes three modules (core and ofed as trees, slurm as a tar archive) of --size MiB in all
            from this machine's own files (/opt/swift/usr/lib, /usr/share, /usr/bin); builds once to warm up (module listings, initrd),
            then alternates: edit a copy file and rebuild (squashfs from modules; the initrd is kept
            because its inputs did not change) / mksquashfs of the unpacked final tree with the same
            options. Needs root (owners); works in /dev/shm.
            """)
    )

    @Option(help: "Total module size in MiB.") var size = 500
    @Option(help: "Alternating repetitions.") var reps = 3
    @Option(help: "Write the table as JSON to this file.") var json: String?

    func validate() throws {
        guard getuid() == 0 else { throw ValidationError("ql-bench image-build needs root (file owners)") }
    }

    func run() throws {
        let repo = Benchmarks.repositoryRoot()
        try Lab.run(repo.appendingPathComponent("scripts/setup").path, [])
        let client = repo.appendingPathComponent(".build/release/ql-mcast-client").path
        guard FileManager.default.isExecutableFile(atPath: client) else {
            throw ValidationError("build it first: swift build -c release --product ql-mcast-client")
        }
        let work = "/dev/shm/ql-bench-build-\(getpid())"
        defer {
            if ProcessInfo.processInfo.environment["QL_BENCH_KEEP"] == nil {
                try? FileManager.default.removeItem(atPath: work)
            }
        }
        let root = Root(work)
        let modules = work + "/var/lib/qlustar/image-modules"
        // Real files of this machine, like a node OS: core 60 % from /opt/swift/usr/lib,
        // slurm (a tar archive) 20 % from /usr/share, ofed 20 % from /usr/bin.
        for (name, share, tar, source) in [
            ("core", 60, false, "/opt/swift/usr/lib"), ("slurm", 20, true, "/usr/share"),
            ("ofed", 20, false, "/usr/bin"),
        ] {
            let cap = (size * share / 100) << 20
            let base = "\(modules)/\(name)/1.0"
            let tree = tar ? work + "/src-\(name)" : base + "/tree"
            try Lab.run(
                "/bin/sh",
                [
                    "-c",
                    """
                    mkdir -p \(base) \(tree)\(source) && cd \(source) &&
                    find . -type f -printf '%s %p\\n' | sort -k2 | awk -v cap=\(cap) 'NF == 2 && s + $1 <= cap { s += $1; print $2 }' |
                      cpio -pdm --quiet \(tree)\(source) && mkdir -p \(tree)/etc/\(name) && echo "\(name)" > \(tree)/etc/\(name)/version
                    """,
                ])
            if tar { try Lab.run("/bin/sh", ["-c", "tar -C \(tree) -cf \(base)/tree.tar . && rm -rf \(tree)"]) }
            let manifest = ModuleManifest(name: name, version: "1.0", packages: [.init(name: name, version: "1.0-1")])
            try JSONEncoder().encode(manifest).write(to: URL(fileURLWithPath: base + "/module.json"))
        }
        let image = try ImageName("bench")
        try ImageDefinition(modules: ["slurm", "ofed"]).store(root, image)
        let copy = work + "/etc/qlustar/images/common/copy/etc"
        try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
        let verbose = ProcessInfo.processInfo.environment["QL_BENCH_VERBOSE"] != nil
        let builder = ImageBuilder(
            root: root, log: Logger(root: root, name: "qlustar-image", echo: verbose, verbose: verbose),
            clientBinary: client)
        let warm = try builder.build(image)
        FileHandle.standardError.write(Data("warm-up build (module listings, initrd): \(fmt(warm.seconds)) s\n".utf8))
        let published = work + "/var/lib/qlustar/images/bench.img"
        let tree = work + "/final-tree"
        try Lab.run("/usr/bin/unsquashfs", ["-quiet", "-no-progress", "-d", tree, published])
        let treeBytes = Double(try Lab.run("/usr/bin/du", ["-sb", tree]).split(separator: "\t")[0]) ?? 0

        var fromModules: [Double] = []
        var bare: [Double] = []
        var unchanged: [Double] = []
        for rep in 0..<reps {
            try "rep \(rep)\n".write(toFile: copy + "/motd", atomically: true, encoding: .utf8)
            let r = try builder.build(image)
            guard r.rebuilt else { throw LabError("the edited copy file did not trigger a rebuild") }
            fromModules.append(r.seconds)
            // The baseline packs exactly the tree this build produced.
            try? FileManager.default.removeItem(atPath: tree)
            try Lab.run("/usr/bin/unsquashfs", ["-quiet", "-no-progress", "-d", tree, published])
            let t0 = Date()
            var squashfs = SquashfsBuilder()
            squashfs.time = builder.time
            try squashfs.build(tree: tree, target: work + "/bare.img")
            bare.append(Date().timeIntervalSince(t0))
            // Same content: the listings of both images agree file by file.
            let ours = try Lab.run("/usr/bin/unsquashfs", ["-lln", "-d", "R", published]).split(separator: "\n").filter
            { !$0.hasPrefix("d") }
            let theirs = try Lab.run("/usr/bin/unsquashfs", ["-lln", "-d", "R", work + "/bare.img"]).split(
                separator: "\n"
            ).filter { !$0.hasPrefix("d") }
            guard ours == theirs else { throw LabError("the image from modules and the bare one hold different files") }
            let again = try builder.build(image)
            guard !again.rebuilt else { throw LabError("an unchanged image was rebuilt") }
            unchanged.append(again.seconds)
            FileHandle.standardError.write(
                Data(
                    "rep \(rep + 1): from modules \(fmt(r.seconds)) s, bare mksquashfs \(fmt(bare.last!)) s, unchanged \(fmt(again.seconds, 3)) s\n"
                        .utf8))
        }
        var report = Report(
            benchmark: "image-build \(Int(treeBytes / 1e6)) MB tree (3 modules), zstd-3, \(reps) reps",
            columns: ["what", "seconds", "ratio to bare mksquashfs"])
        let base = median(bare)
        report.rows.append([
            "qlustar-image build from modules", fmt(median(fromModules)), fmt(median(fromModules) / base),
        ])
        report.rows.append(["mksquashfs of the same final tree", fmt(base), "1.00"])
        report.rows.append([
            "unchanged rebuild (nothing to do)", fmt(median(unchanged), 3), fmt(median(unchanged) / base, 3),
        ])
        report.notes.append(
            "from modules: inputs checked, layers stacked (overlayfs; tar modules unpacked once per version), root password, changelogs, mksquashfs, SHA-256 of the result, manifest; the initrd is kept (its inputs did not change)"
        )
        report.notes.append(
            "every rep checks that both images list the same files with the same owners, modes and sizes")
        report.printTable()
        try report.write(json: json)
    }
}
