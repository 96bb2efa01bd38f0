import ArgumentParser
import Foundation
import LabSupport
import Platform

/// `ql-bench boot`: a cluster reboots at once. N virtual nodes (scripts/vnode) boot against one
/// head node whose link is shaped like a real NIC, by multicast and — alternating, in the same
/// run — with every node fetching its image over TCP as HTTP provisioning does.
struct BootBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "boot",
        abstract: "A boot wave of N virtual nodes against one head node: multicast vs unicast images (test hosts).",
        discussion: HelpText.paragraphs(
            """
            Each rep is one run of scripts/boot-wave: the head node on h0 (dnsmasq written by \
            qluman provision, ql-mcastd, qlumand, chronyd; the registry, image and initrd made by \
            the project's own tools; its egress shaped with tc tbf to --link), and N virtual nodes \
            on h1…hN powered on within a second. A virtual node does what a node does after its \
            firmware: DHCP for its registered MAC, TFTP of pxelinux's files, its config (Hostid, \
            else default), the kernel and the initrd; then the initrd's real /init runs as PID 1 of \
            its own pid, mount and UTS namespaces, and everything after it is the real thing \
            (udhcpc, ql-mcast-client with the union mounted, switch_root, init.qlustar, \
            qluman-execd --configure, init.d, the image's init).

            Per rep: nodes complete, multicast sessions, DHCP discovers and TFTP transfers (more \
            than 2 and 5 per node are retries), the bytes the head node sent against the least it \
            must send (the image once, kernel and initrd to every node), head-node CPU per node \
            (its services), the wall (power-on to the last node finished) and the image stage \
            (the first /init to the last image verified), with p50/p99/max of every stage.

            Modes alternate (multicast, unicast, multicast, …) so both see the same machine. \
            Every node is a process on this machine's cores: what grows with N because each node \
            costs CPU is the lab's, not the head node's — read headCpuSecondsPerNode for that. \
            Memory: each node holds its unpacked initrd and its image in RAM (about N × (payload + 70 MB)).
            """)
    )

    @Option(help: "Virtual nodes (1–200).") var nodes = 100
    @Option(help: "Image payload in MiB (the image adds busybox and qluman-execd, ≈ 40 MB).") var imageMib = 64
    @Option(help: "The head node's link, as tc tbf takes it (none: unshaped).") var link = "1gbit"
    @Option(help: "Reps per mode.") var reps = 1
    @Option(help: "Modes, alternating (multicast, unicast).") var modes: [String] = ["multicast", "unicast"]
    @Option(help: "ql-mcastd's grouping window in seconds (the wave also says ql.expect=N).") var window = 30
    @Option(help: "Seconds a node may take from power-on.") var timeout = 900
    @Option(
        help: "Write every rep's summary as JSON to this file (the first multicast rep at the top, unicast beside it).")
    var json: String?
    @Option(help: "Write a timeline of the first multicast rep (one row per node, one bar per stage; gnuplot SVG).")
    var plot: String?
    @Option(help: "Where the runs keep their files (default: a new directory in /dev/shm, removed afterwards).")
    var work: String?

    func validate() throws {
        guard getuid() == 0 else { throw ValidationError("ql-bench boot needs root (namespaces, mounts, tc)") }
        guard (1...200).contains(nodes), imageMib >= 1, reps >= 1, window >= 1, timeout >= 30 else {
            throw ValidationError("--nodes 1…200, --image-mib ≥ 1, --reps ≥ 1, --window ≥ 1, --timeout ≥ 30")
        }
        guard !modes.isEmpty, modes.allSatisfy({ ["multicast", "unicast"].contains($0) }) else {
            throw ValidationError("--modes: multicast, unicast")
        }
        let memory = Double(nodes) * (Double(imageMib) * 1.048_576 + 70) / 1000
        let available = Double(Self.availableMemoryKiB()) / 1e6
        guard memory < available * 0.9 else {
            throw ValidationError(
                "\(nodes) nodes with a \(imageMib) MiB image need about \(Int(memory)) GB of memory, this machine has \(Int(available)) GB available: fewer nodes or a smaller image"
            )
        }
    }

    func run() throws {
        let root = Benchmarks.repositoryRoot()
        try Lab.run(root.appendingPathComponent("scripts/setup").path, [])
        let bin = Benchmarks.releaseDirectory()
        let base = work ?? "/dev/shm/ql-bench-boot-\(getpid())"
        defer { if work == nil { try? FileManager.default.removeItem(atPath: base) } }
        var summaries: [[String: Any]] = []
        for rep in 1...reps {
            for mode in modes {
                let dir = base + "/\(mode)"
                print("boot: rep \(rep), \(mode), \(nodes) nodes, image \(imageMib) MiB + base, link \(link)")
                var args = [
                    root.appendingPathComponent("scripts/boot-wave").path, "--nodes", "\(nodes)", "--work", dir,
                    "--image-mib", "\(imageMib)", "--link", link, "--window", "\(window)", "--timeout", "\(timeout)",
                ]
                if mode == "unicast" { args.append("--unicast") }
                if FileManager.default.fileExists(atPath: dir + "/head/var/lib/qlustar/images/wave.img") {
                    args.append("--reuse")
                }
                // Lines as they come (the progress per stage), not only at the end.
                let status = try Benchmarks.runStreaming(args, environment: ["QL_MCAST_BIN": bin])
                guard
                    var summary = try? JSONSerialization.jsonObject(
                        with: Data(contentsOf: URL(fileURLWithPath: dir + "/summary.json"))) as? [String: Any]
                else {
                    throw ValidationError("boot-wave (\(mode)) wrote no summary (exit status \(status)); see \(dir)")
                }
                summary["rep"] = rep
                summary["exitStatus"] = Int(status)
                if let plot, mode == "multicast", rep == 1 {
                    try BootTimeline.write(summary, to: plot)
                    print("boot: timeline in \(plot)")
                }
                summaries.append(summary)
            }
        }
        print(table(summaries))
        if let json {
            var top = summaries.first { $0["mode"] as? String == "multicast" } ?? summaries[0]
            top["unicast"] = summaries.first { $0["mode"] as? String == "unicast" }
            top["reps"] = summaries
            top["machine"] = Report.machineDescription()
            let data = try JSONSerialization.data(withJSONObject: top, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: json))
        }
    }

    /// One row per rep, then the ratio of the medians (multicast ÷ unicast).
    func table(_ rows: [[String: Any]]) -> String {
        func d(_ r: [String: Any], _ k: String) -> Double? { r[k] as? Double ?? (r[k] as? Int).map(Double.init) }
        func f(_ v: Double?, _ digits: Int = 1) -> String { v.map { String(printf: "%.\(digits)f", $0) } ?? "–" }
        var out =
            "\n| rep | mode | complete | sessions | DHCP | TFTP | wall s | image stage s | head MB sent | ÷ least | head CPU s/node |\n"
        out += "|---|---|---|---|---|---|---|---|---|---|---|\n"
        for r in rows {
            out += "| \(r["rep"] ?? "") | \(r["mode"] ?? "") | \(r["complete"] ?? 0)/\(r["nodes"] ?? 0) | "
            out += "\(r["sessions"] ?? 0) | \(r["dhcpDiscovers"] ?? 0) | \(r["tftpTransfers"] ?? 0) | "
            out += "\(f(d(r, "wallSeconds"))) | \(f(d(r, "imageStageSeconds"))) | "
            out += "\(f(d(r, "headBytesSent").map { $0 / 1e6 })) | \(f(d(r, "headBytesRatio"), 3)) | "
            out += "\(f(d(r, "headCpuSecondsPerNode"), 3)) |\n"
        }
        func figures(_ mode: String, _ key: String) -> [Double] {
            rows.filter { $0["mode"] as? String == mode }.compactMap { d($0, key) }
        }
        for key in ["imageStageSeconds", "wallSeconds"] {
            let m = median(figures("multicast", key))
            let u = median(figures("unicast", key))
            if m.isFinite, u.isFinite, u > 0 {
                out += "\n\(key): multicast ÷ unicast = \(f(m, 2)) ÷ \(f(u, 2)) = \(f(m / u, 3))"
            }
        }
        return out + "\n"
    }

    static func availableMemoryKiB() -> Int {
        let text = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) ?? ""
        let line = text.split(separator: "\n").first { $0.hasPrefix("MemAvailable:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }
}

/// The boot wave as a timeline: one row per node, one coloured bar per stage (DHCP and TFTP,
/// kernel, /init to the image verified, configure, init.d), drawn by gnuplot.
enum BootTimeline {
    static let phases: [(from: String, to: String, name: String, colour: String)] = [
        ("power-on", "tftp-done", "DHCP + TFTP", "#7f7f7f"),
        ("tftp-done", "init", "kernel → /init", "#bcbd22"),
        ("init", "verified", "image (multicast)", "#d62728"),
        ("verified", "configured", "init.qlustar + configure", "#1f77b4"),
        ("configured", "finished", "init.d + init", "#2ca02c"),
    ]

    static func write(_ summary: [String: Any], to path: String) throws {
        let nodes = (summary["perNode"] as? [[String: Any]] ?? []).sorted {
            ($0["name"] as? String ?? "") < ($1["name"] as? String ?? "")
        }
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ql-bench-boot-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var plots: [String] = []
        for phase in phases {
            var rows: [String] = []
            for (i, node) in nodes.enumerated() {
                guard let s = node["stages"] as? [String: Double], let a = s[phase.from], let b = s[phase.to] else {
                    continue
                }
                // x from, y, x to: drawn as a horizontal bar with "vectors".
                rows.append("\(a)\t\(i + 1)\t\(b - a)")
            }
            let file = dir.appendingPathComponent("\(plots.count).dat").path
            try (rows.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
            plots.append(
                "'\(file)' using 1:2:3:(0) with vectors nohead lw \(nodes.count > 60 ? 2 : 5) lc rgb '\(phase.colour)' title '\(phase.name)'"
            )
        }
        let n = summary["nodes"] as? Int ?? nodes.count
        let script = """
            set terminal svg size 1000,\(min(1600, 240 + 6 * n)) dynamic font 'sans,11'
            set output '\(path)'
            set title "Boot wave: \(n) virtual nodes, \(summary["mode"] ?? "") image, head link \(summary["link"] ?? "")"
            set xlabel 'seconds since power-on'
            set ylabel 'node'
            set yrange [0:\(n + 1)]
            set key outside bottom center horizontal
            set grid xtics
            plot \(plots.joined(separator: ", \\\n     "))

            """
        let file = dir.appendingPathComponent("boot.gp").path
        try script.write(toFile: file, atomically: true, encoding: .utf8)
        try Lab.run("/usr/bin/gnuplot", [file])
    }
}
