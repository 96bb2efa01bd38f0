import ArgumentParser
import Foundation
import LabSupport
import Platform

/// `ql-bench peers`: the same file moved on the same test hosts, in the same run, alternating,
/// by this engine, udpcast, uftp and the raw GSO → GRO ceiling, for each receiver count and loss
/// rate; every copy verified by SHA-256; medians, CPU per GiB and ratios; an SVG plot.
struct PeersBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peers",
        abstract: "ql-mcast vs udpcast and uftp (and the raw ceiling) by receivers and loss, with an SVG plot.",
        discussion: HelpText.paragraphs(
            """
            Each peer at its fastest documented settings (docs/PERFORMANCE.md, LIMITS.md): udpcast's
            defaults (under loss --fec 8x8/128, without which it drops receivers); uftp -R -1 -B 4M with
            uftpd -B 4M -c 20M. Loss: ql-mcast receivers drop with the
            engine's seeded model; udpcast and uftp get real loss from nftables on each receiving host
            (per datagram: they send without GSO). The raw ceiling has no repair (n/a under loss).
            Needs root (network namespaces) and the release ql-mcast and ql-bench.
            """))

    @Option(help: "Receiver counts, comma-separated.") var receivers = "1,3"
    @Option(help: "Loss rates in percent, comma-separated.") var loss = "0,5"
    @Option(help: "File size in MiB.") var size = 256
    @Option(help: "Alternating repetitions.") var reps = 3
    @Option(help: "Systems.") var systems: [String] = ["ql-mcast", "udpcast", "uftp", "raw-gso-gro"]
    @Option(help: "Write the tables as JSON to this file.") var json: String?
    @Option(help: "Write an SVG plot (goodput vs receivers, and vs loss; log scale; drawn by gnuplot) to this file.")
    var plot: String?

    func validate() throws {
        guard getuid() == 0 else { throw ValidationError("ql-bench peers needs root (network namespaces)") }
    }

    func run() throws {
        let counts = receivers.split(separator: ",").compactMap { Int($0) }
        let losses = loss.split(separator: ",").compactMap { Double($0) }
        guard let maxN = counts.max(), !losses.isEmpty else {
            throw ValidationError("--receivers and --loss need values")
        }
        let root = Benchmarks.repositoryRoot()
        try Lab.run(root.appendingPathComponent("scripts/setup").path, [])
        try Lab.run(
            "/bin/sh",
            [
                "-c",
                "command -v uftp >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq uftp >/dev/null",
            ])
        let bin = root.appendingPathComponent(".build/release")
        let work = URL(fileURLWithPath: "/dev/shm/ql-bench-peers-\(getpid())")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let lab = try Lab(prefix: "qlb", root: root, hosts: maxN + 1)
        defer { lab.down() }
        let file = work.appendingPathComponent("object").path
        try Lab.run("/bin/sh", ["-c", "head -c \(size << 20) /dev/urandom > \(file)"])
        let sha = try Lab.sha256(file)

        var points: [Point] = []
        var report = Report(
            benchmark: "peers: \(size) MiB, \(reps) alternating reps per point, MTU 1500",
            columns: [
                "receivers", "loss %", "system", "goodput MB/s", "sender CPU s/GiB", "receiver CPU s/GiB", "byte-exact",
                "ql-mcast ÷ this",
            ])
        for n in counts {
            for pct in losses {
                let runner = TransferRunner(
                    lab: lab, bin: bin, work: work, file: file, sha: sha, bytes: size << 20, receivers: n, mtu: 1500,
                    engineLoss: pct > 0 ? "random:\(pct / 100)" : nil, peerLoss: pct > 0 ? pct : nil, senderArgs: [])
                var results: [String: [RunResult]] = [:]
                for rep in 0..<reps {
                    for system in systems where !(pct > 0 && system.hasPrefix("raw")) {
                        let r = try runner.run(system: system, rep: rep)
                        results[system, default: []].append(r)
                        FileHandle.standardError.write(
                            Data(
                                "N=\(n) loss \(pct)% rep \(rep + 1) \(system): \(fmt(r.goodput, 1)) MB/s\(r.verified ? "" : " NOT VERIFIED")\n"
                                    .utf8))
                    }
                }
                let ours = results["ql-mcast"].map { median($0.map(\.goodput)) }
                for system in systems {
                    guard let rs = results[system] else {
                        report.rows.append([
                            "\(n)", fmt(pct, 0), system, "n/a", "", "", "", "n/a (no repair: loss is not comparable)",
                        ])
                        continue
                    }
                    let g = median(rs.map(\.goodput))
                    // A system that delivered no verified copy has no point in the plot.
                    if g > 0 { points.append(Point(system: system, receivers: n, loss: pct, goodput: g)) }
                    report.rows.append([
                        "\(n)", fmt(pct, 0), system, fmt(g, 1), fmt(median(rs.map(\.senderCPU))),
                        fmt(median(rs.map(\.receiverCPU))),
                        system.hasPrefix("raw") ? "n/a" : "\(rs.filter(\.verified).count)/\(rs.count)",
                        g > 0 ? ours.map { fmt($0 / g) } ?? "n/a" : "n/a (no verified copy)",
                    ])
                }
            }
        }
        report.notes.append(
            "goodput: file size / (receiver done − sender start), median over receivers, then over reps; uftp: until the sender ends (all receivers complete)"
        )
        report.notes.append(
            "loss: engine model for ql-mcast; nftables per datagram on each receiving host for udpcast and uftp")
        report.printTable()
        try report.write(json: json)
        if let plot {
            try PeersPlot.write(points, receivers: counts, losses: losses, title: report.benchmark, to: plot)
        }
    }
}

struct Point: Codable {
    var system: String
    var receivers: Int
    var loss: Double
    var goodput: Double
}

/// The plot, drawn by gnuplot (Debian's `gnuplot-nox`, installed by `scripts/setup`): goodput
/// vs receivers at the lowest loss, and vs loss at the most receivers, one line per system, on a
/// logarithmic axis — the raw ceiling is several times every real system, and on a linear axis
/// it squashes them all to the floor. A system with no figure at a point (the raw ones under
/// loss: they cannot repair) has no point there, not a fall to zero.
enum PeersPlot {
    static let colours = ["ql-mcast": "#d62728", "udpcast": "#1f77b4", "uftp": "#2ca02c", "raw-gso-gro": "#7f7f7f"]

    static func write(_ points: [Point], receivers: [Int], losses: [Double], title: String, to path: String) throws {
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ql-bench-plot-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let lowLoss = losses.min() ?? 0
        let mostN = receivers.max() ?? 1
        let systems = Array(Set(points.map(\.system))).sorted { order($0) < order($1) }
        // One data file per panel and system: x and goodput, sorted by x.
        func data(_ panel: String, _ system: String, _ pts: [(Double, Double)]) throws -> String {
            let file = dir.appendingPathComponent("\(panel)-\(system).dat").path
            let rows = pts.sorted { $0.0 < $1.0 }.map { "\($0.0)\t\($0.1)" }
            try (rows.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
            return file
        }
        func plotLines(_ panel: String, _ pick: (Point) -> Double?) throws -> String {
            var lines: [String] = []
            for system in systems {
                let pts = points.filter { $0.system == system }.compactMap { p in pick(p).map { ($0, p.goodput) } }
                guard !pts.isEmpty else { continue }
                let file = try data(panel, system, pts)
                lines.append(
                    "'\(file)' using 1:2 with linespoints lw 2 pt 7 ps 0.8 lc rgb '\(colours[system] ?? "#000000")' title '\(system)'"
                )
            }
            return "plot " + lines.joined(separator: ", \\\n     ")
        }
        let byReceivers = try plotLines("receivers") { $0.loss == lowLoss ? Double($0.receivers) : nil }
        let byLoss = try plotLines("loss") { $0.receivers == mostN ? $0.loss : nil }
        let script = """
            set terminal svg size 960,440 dynamic font 'sans,11' background '#ffffff'
            set output '\(path)'
            set multiplot layout 1,2 title '\(title.replacingOccurrences(of: "'", with: ""))'
            set logscale y
            set grid ytics mytics lc rgb '#dddddd'
            set ylabel 'goodput MB/s (log scale)'
            set key below horizontal
            set xtics (\(receivers.map { "'\($0)' \($0)" }.joined(separator: ", ")))
            set xrange [\(Double(receivers.min() ?? 1) - 0.5):\(Double(mostN) + 0.5)]
            set xlabel 'receivers'
            set title 'by receivers, loss \(fmt(lowLoss, 0)) %'
            \(byReceivers)
            set xtics (\(losses.map { "'\(fmt($0, 0))' \($0)" }.joined(separator: ", ")))
            set xrange [\((losses.min() ?? 0) - 0.5):\((losses.max() ?? 0) + 0.5)]
            set xlabel 'random loss %'
            set title 'by loss, \(mostN) receivers'
            \(byLoss)
            unset multiplot

            """
        let scriptFile = dir.appendingPathComponent("peers.gp").path
        try script.write(toFile: scriptFile, atomically: true, encoding: .utf8)
        try Lab.run("/usr/bin/gnuplot", [scriptFile])
    }

    /// The project's system first, then its peers, then the raw ceilings.
    private static func order(_ system: String) -> String {
        system == "ql-mcast" ? "0" : system.hasPrefix("raw") ? "2" + system : "1" + system
    }
}
