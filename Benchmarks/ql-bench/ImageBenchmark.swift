import ArgumentParser
import Foundation
import LabSupport

/// `ql-bench image`: time to deliver one image to N nodes with ql-mcastd/ql-mcast-client, by
/// multicast and by the unicast fallback alone, alternating in one run.
struct ImageBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image",
        abstract:
            "Image delivery time to N nodes: multicast session vs unicast fallback only (ql-mcastd on the test hosts).",
        discussion: """
            ql-mcastd runs on h0 with the image; for each node count and mode, N clients on h1…hN ask
            for it at once. Multicast: one session (its grouping window is not counted: time runs
            from the session's start to the last node verified). Unicast: every client --unicast,
            fetching over TCP from the same server (sendfile). Every copy is verified by the client
            (SHA-256) and the path it took is checked. Needs root; the image lives in /dev/shm.
            """
    )

    @Option(help: "Node counts, comma separated.") var receivers = "1,3,6"
    @Option(help: "Image size in MiB.") var size = 1_024
    @Option(help: "Alternating repetitions.") var reps = 3
    @Option(help: "Modes to run (multicast, unicast).") var modes: [String] = ["multicast", "unicast"]
    @Option(help: "Write the table as JSON to this file.") var json: String?

    var counts: [Int] { receivers.split(separator: ",").compactMap { Int($0) } }

    func validate() throws {
        guard getuid() == 0 else { throw ValidationError("ql-bench image needs root (network namespaces)") }
        guard !counts.isEmpty, counts.allSatisfy({ (1...16).contains($0) }) else {
            throw ValidationError("--receivers: node counts 1…16, comma separated")
        }
        guard modes.allSatisfy({ ["multicast", "unicast"].contains($0) }) else {
            throw ValidationError("--modes: multicast, unicast")
        }
    }

    func run() throws {
        let root = Benchmarks.repositoryRoot()
        try Lab.run(root.appendingPathComponent("scripts/setup").path, [])
        let bin = root.appendingPathComponent(".build/release")
        for tool in ["ql-mcastd", "ql-mcast-client"]
        where !FileManager.default.isExecutableFile(atPath: bin.appendingPathComponent(tool).path) {
            throw ValidationError("build it first: swift build -c release --product \(tool)")
        }
        let work = URL(fileURLWithPath: "/dev/shm/ql-bench-image-\(getpid())")
        let head = work.appendingPathComponent("head").path
        let images = head + "/var/lib/qlustar/images"
        try FileManager.default.createDirectory(atPath: images, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let maxNodes = counts.max()!
        let lab = try Lab(prefix: "qlbi", root: root, hosts: maxNodes + 1)
        defer { lab.down() }
        try Lab.run("/bin/sh", ["-c", "head -c \(size << 20) /dev/urandom > \(images)/bench.img"])
        let server = lab.address(0)
        let daemon = try lab.start(
            on: 0,
            [
                bin.appendingPathComponent("ql-mcastd").path, "--root", head, "--interface", server, "--listen", server,
                "--window", "1",
            ],
            timeout: 7_200, log: work.appendingPathComponent("daemon.log").path)
        defer { daemon.terminate() }
        var ready = false
        for _ in 0..<100 where !ready {
            ready =
                (try? lab.exec(
                    on: 0,
                    [bin.appendingPathComponent("ql-mcastd").path, "status", "--server", server, "--timeout", "1"]))
                != nil
            if !ready { usleep(200_000) }
        }
        guard ready else { throw LabError("ql-mcastd did not start") }

        var times: [String: [Double]] = [:]
        var headBytes: [String: [Double]] = [:]
        for rep in 0..<reps {
            for n in counts {
                for mode in modes {
                    let tx0 = try transmitted(lab)
                    let t = try deliver(lab: lab, bin: bin, work: work, nodes: n, mode: mode, server: server)
                    times["\(mode) \(n)", default: []].append(t)
                    headBytes["\(mode) \(n)", default: []].append(Double(try transmitted(lab) - tx0))
                    FileHandle.standardError.write(Data("rep \(rep + 1) \(mode) to \(n) nodes: \(fmt(t)) s\n".utf8))
                }
            }
        }
        var report = Report(
            benchmark: "image \(size) MiB to N nodes, ql-mcastd → ql-mcast-client, \(reps) reps",
            columns: [
                "nodes", "mode", "time s", "MB/s per node", "time ÷ time(N=\(counts[0]))", "unicast ÷ multicast",
                "head node sent ÷ image",
            ])
        for n in counts {
            for mode in modes {
                guard let ts = times["\(mode) \(n)"] else { continue }
                let t = median(ts)
                let base = median(times["\(mode) \(counts[0])"] ?? [t])
                let uni = times["unicast \(n)"].map(median)
                let multi = times["multicast \(n)"].map(median)
                report.rows.append([
                    "\(n)", mode, fmt(t), fmt(Double(size << 20) / 1e6 / t, 1), fmt(t / base),
                    mode == "multicast" ? (uni.map { fmt($0 / t) } ?? "n/a") : (multi.map { fmt(t / $0) } ?? "n/a"),
                    fmt(median(headBytes["\(mode) \(n)"] ?? []) / Double(size << 20)),
                ])
            }
        }
        report.notes.append(
            "time: from the session's start (multicast) or the clients' start (unicast) to the last node verified; median of reps"
        )
        report.notes.append(
            "head node sent: bytes leaving h0's interface (headers included) during the run, over the image size")
        report.notes.append(
            "every copy verified by its client's SHA-256; multicast runs checked to have taken the multicast path")
        report.printTable()
        try report.write(json: json)
    }

    /// Bytes h0's interface has sent so far.
    func transmitted(_ lab: Lab) throws -> Int {
        let text = try lab.exec(on: 0, ["cat", "/sys/class/net/eth0/statistics/tx_bytes"])
        guard let v = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw LabError("tx_bytes: '\(text)'")
        }
        return v
    }

    /// One delivery to `nodes` nodes; returns the time until the last one verified.
    func deliver(lab: Lab, bin: URL, work: URL, nodes: Int, mode: String, server: String) throws -> Double {
        var processes: [Process] = []
        for i in 1...nodes {
            let out = work.appendingPathComponent("n\(i)").path
            try? FileManager.default.removeItem(atPath: out)
            processes.append(
                try lab.start(
                    on: i,
                    [
                        bin.appendingPathComponent("ql-mcast-client").path, "--server", server, "--image", "bench",
                        "--output",
                        out + "/bench.img", "--root", out, "--quiet", "--report-json", out + ".json",
                    ] + (mode == "unicast" ? ["--unicast"] : []), timeout: 900, log: out + ".log"))
        }
        var longest = 0.0
        for (k, p) in processes.enumerated() {
            let i = k + 1
            let status = lab.wait(p, seconds: 900)
            let reportPath = work.appendingPathComponent("n\(i).json").path
            guard status == 0, let data = FileManager.default.contents(atPath: reportPath),
                let r = try JSONSerialization.jsonObject(with: data) as? [String: Any]
            else {
                let log =
                    (try? String(contentsOfFile: work.appendingPathComponent("n\(i).log").path, encoding: .utf8)) ?? ""
                throw LabError("node \(i) (\(mode), \(nodes) nodes) failed with status \(status): \(log)")
            }
            let path = r["path"] as? String ?? ""
            guard path == mode else { throw LabError("node \(i) took the \(path) path in a \(mode) run") }
            longest = max(longest, r["transferSeconds"] as? Double ?? .nan)
            try? FileManager.default.removeItem(atPath: work.appendingPathComponent("n\(i)").path)
        }
        return longest
    }
}
