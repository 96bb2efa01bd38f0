import ArgumentParser
import Foundation
import LabSupport

/// `ql-bench peers`: the same file moved on the same test hosts, in the same run, alternating,
/// by this engine, udpcast, uftp and the raw GSO → GRO ceiling, for each receiver count and loss
/// rate; every copy verified by SHA-256; medians, CPU per GiB and ratios; an SVG plot.
struct PeersBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peers",
        abstract: "ql-mcast vs udpcast and uftp (and the raw ceiling) by receivers and loss, with an SVG plot.",
        discussion: """
            Each peer at its fastest documented settings (docs/PERFORMANCE.md, LIMITS.md): udpcast's
            defaults (under loss --fec 8x8/128, without which it drops receivers); uftp -R -1 -B 4M with
            uftpd -B 4M -c 20M. Loss: ql-mcast receivers drop with the
            engine's seeded model; udpcast and uftp get real loss from nftables on each receiving host
            (per datagram: they send without GSO). The raw ceiling has no repair (n/a under loss).
            Needs root (network namespaces) and the release ql-mcast and ql-bench.
            """)

    @Option(help: "Receiver counts, comma-separated.") var receivers = "1,3"
    @Option(help: "Loss rates in percent, comma-separated.") var loss = "0,5"
    @Option(help: "File size in MiB.") var size = 256
    @Option(help: "Alternating repetitions.") var reps = 3
    @Option(help: "Systems.") var systems: [String] = ["ql-mcast", "udpcast", "uftp", "raw-gso-gro"]
    @Option(help: "Write the tables as JSON to this file.") var json: String?
    @Option(help: "Write an SVG plot (goodput vs receivers, and vs loss) to this file.") var plot: String?

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
                    points.append(Point(system: system, receivers: n, loss: pct, goodput: g))
                    report.rows.append([
                        "\(n)", fmt(pct, 0), system, fmt(g, 1), fmt(median(rs.map(\.senderCPU))),
                        fmt(median(rs.map(\.receiverCPU))),
                        system.hasPrefix("raw") ? "n/a" : "\(rs.filter(\.verified).count)/\(rs.count)",
                        ours.map { fmt($0 / g) } ?? "n/a",
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
        if let plot { try SVGPlot.write(points, receivers: counts, losses: losses, to: plot) }
    }
}

struct Point: Codable {
    var system: String
    var receivers: Int
    var loss: Double
    var goodput: Double
}

/// Two panels drawn by hand (no plotting program): goodput vs receivers at the lowest loss, and
/// goodput vs loss at the most receivers; one line per system.
enum SVGPlot {
    static let colours = ["ql-mcast": "#d62728", "udpcast": "#1f77b4", "uftp": "#2ca02c", "raw-gso-gro": "#7f7f7f"]

    static func write(_ points: [Point], receivers: [Int], losses: [Double], to path: String) throws {
        let width = 900.0
        let height = 420.0
        var svg =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        let top = points.map(\.goodput).max() ?? 1
        let lowLoss = losses.min() ?? 0
        let mostN = receivers.max() ?? 1
        svg += panel(
            x0: 60, title: "goodput vs receivers (loss \(fmt(lowLoss, 0)) %)", xs: receivers.map(Double.init),
            xLabel: "receivers",
            series: points.filter { $0.loss == lowLoss }.map { ($0.system, Double($0.receivers), $0.goodput) },
            top: top, height: height)
        svg += panel(
            x0: 510, title: "goodput vs loss (\(mostN) receivers)", xs: losses, xLabel: "loss %",
            series: points.filter { $0.receivers == mostN }.map { ($0.system, $0.loss, $0.goodput) }, top: top,
            height: height)
        var y = 40.0
        for (system, colour) in colours.sorted(by: { $0.key < $1.key })
        where points.contains(where: { $0.system == system }) {
            svg +=
                "<rect x=\"800\" y=\"\(y - 9)\" width=\"12\" height=\"12\" fill=\"\(colour)\"/><text x=\"816\" y=\"\(y + 1)\">\(system)</text>\n"
            y += 18
        }
        svg += "</svg>\n"
        try svg.write(toFile: path, atomically: true, encoding: .utf8)
    }

    private static func panel(
        x0: Double, title: String, xs: [Double], xLabel: String, series: [(String, Double, Double)], top: Double,
        height: Double
    ) -> String {
        let w = 330.0
        let h = height - 110
        let y0 = 50.0
        let lo = xs.min() ?? 0
        let hi = max(xs.max() ?? 1, lo + 1)
        func px(_ x: Double) -> Double { x0 + (xs.count == 1 ? w / 2 : (x - lo) / (hi - lo) * w) }
        func py(_ v: Double) -> Double { y0 + h - v / (top * 1.1) * h }
        var out = "<text x=\"\(x0)\" y=\"30\" font-weight=\"bold\">\(title)</text>\n"
        out += "<line x1=\"\(x0)\" y1=\"\(y0 + h)\" x2=\"\(x0 + w)\" y2=\"\(y0 + h)\" stroke=\"black\"/>\n"
        out += "<line x1=\"\(x0)\" y1=\"\(y0)\" x2=\"\(x0)\" y2=\"\(y0 + h)\" stroke=\"black\"/>\n"
        for x in xs { out += "<text x=\"\(px(x) - 6)\" y=\"\(y0 + h + 16)\">\(fmt(x, 0))</text>\n" }
        out += "<text x=\"\(x0 + w / 2 - 20)\" y=\"\(y0 + h + 34)\">\(xLabel)</text>\n"
        for i in 0...4 {
            let v = top * 1.1 * Double(i) / 4
            out +=
                "<text x=\"\(x0 - 50)\" y=\"\(py(v) + 4)\">\(fmt(v, 0))</text><line x1=\"\(x0)\" y1=\"\(py(v))\" x2=\"\(x0 + w)\" y2=\"\(py(v))\" stroke=\"#ddd\"/>\n"
        }
        out += "<text x=\"\(x0 - 55)\" y=\"\(y0 - 8)\">MB/s</text>\n"
        for system in Set(series.map(\.0)).sorted() {
            let pts = series.filter { $0.0 == system }.sorted { $0.1 < $1.1 }
            let colour = colours[system] ?? "black"
            out +=
                "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\" points=\""
                + pts.map { "\(px($0.1)),\(py($0.2))" }.joined(separator: " ") + "\"/>\n"
            for p in pts { out += "<circle cx=\"\(px(p.1))\" cy=\"\(py(p.2))\" r=\"3\" fill=\"\(colour)\"/>\n" }
        }
        return out
    }
}
