import ArgumentParser
import Foundation
import LabSupport
import Platform

/// `ql-bench image`: time to deliver one image to N nodes with ql-mcastd/ql-mcast-client, by
/// multicast and by the unicast fallback alone, against udpcast moving the same file, alternating
/// in one run on one daemon.
struct ImageBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image",
        abstract:
            "Image delivery to N nodes: ql-mcastd multicast vs its unicast fallback vs udpcast (on the test hosts).",
        discussion: HelpText.paragraphs(
            """
            ql-mcastd runs on h0 with the image (one daemon for the whole run: every multicast rep \
            is a new session on it); for each node count and mode, N nodes on h1…hN ask for it at \
            once.

            multicast: ql-mcast-client on each node, told how many nodes come (--expect N, unless \
            --no-expect), so the session starts once they all asked. unicast: every client \
            --unicast, fetching over TCP from the same server (sendfile). udpcast: udp-sender on h0 \
            with --min-receivers N (started first, as a daemon would be), udp-receiver on each node.

            wall: from starting the nodes' programs to the last one done, the session's start \
            included; transfer: ql-mcast-client's own time without its wait for the session. Every \
            copy is checked (ql-mcast-client verifies its SHA-256; udpcast's output is hashed \
            afterwards, outside its time) and the path a client took is checked. Every rep is \
            listed, with the spread (max ÷ min) over the reps.

            Needs root; the image and the nodes' copies live in /dev/shm (or a huge-page tmpfs \
            there, --huge-pages). Before every delivery the nodes' memory is warmed, untimed (as \
            much written and removed as they will write): on a VM that hands freed memory back to \
            its host, a delivery after a long one (udpcast's) or the first would otherwise pay \
            alone for touching it again.
            """)
    )

    @Option(help: "Node counts, comma separated.") var receivers = "1,3,6"
    @Option(help: "Image size in MiB.") var size = 1_024
    @Option(help: "Alternating repetitions (each multicast rep is one more session on the same daemon).")
    var reps = 3
    @Option(help: "Modes to run (multicast, unicast, udpcast).") var modes: [String] = [
        "multicast", "unicast", "udpcast",
    ]
    @Option(help: "ql-mcastd's grouping window in seconds (its default: 2).") var window = 2.0
    @Flag(help: "Do not tell ql-mcast-client how many nodes come: every session waits out its window.")
    var noExpect = false
    @Option(help: "Extra ql-mcastd options, e.g. --daemon-option=--rate --daemon-option=400m.")
    var daemonOption: [String] = []
    @Flag(
        help: """
            Keep the image and the nodes' copies on a tmpfs mounted with huge=within_size, as a \
            node's /init mounts one for its image: writing a copy faults once per 2 MiB.
            """)
    var hugePages = false
    @Option(help: "Write the table as JSON to this file.") var json: String?
    @Option(
        help: "Write ql-mcastd's status at the end (every session with its counters) to this file, its log beside it."
    )
    var sessionsJson: String?

    var counts: [Int] { receivers.split(separator: ",").compactMap { Int($0) } }

    func validate() throws {
        guard getuid() == 0 else { throw ValidationError("ql-bench image needs root (network namespaces)") }
        guard !counts.isEmpty, counts.allSatisfy({ (1...16).contains($0) }) else {
            throw ValidationError("--receivers: node counts 1…16, comma separated")
        }
        guard modes.allSatisfy({ ["multicast", "unicast", "udpcast"].contains($0) }) else {
            throw ValidationError("--modes: multicast, unicast, udpcast")
        }
        guard reps >= 1, (1...4_096).contains(size), window > 0 else {
            throw ValidationError("--reps ≥ 1, --size 1…4096 MiB, --window > 0")
        }
    }

    /// One delivery: the wall (start included), the transfer (clients' own, multicast and
    /// unicast), and for multicast the session's repair share of the datagrams it sent.
    struct Delivery {
        var wall: Double
        var transfer: Double?
        var repairShare: Double?
        /// CPU seconds (user + system) of the nodes' programs, all of them.
        var nodesCPU: Double?
        /// Of `nodesCPU`, the kernel's share (page faults on fresh memory above all).
        var nodesSystemCPU: Double?
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
        try FileManager.default.createDirectory(atPath: work.path, withIntermediateDirectories: true)
        if hugePages {
            try Lab.run("/bin/mount", ["-t", "tmpfs", "-o", "huge=within_size,mode=0755", "qlbench", work.path])
        }
        defer {
            if hugePages { try? Lab.run("/bin/umount", ["-l", work.path]) }
            try? FileManager.default.removeItem(at: work)
        }
        try FileManager.default.createDirectory(atPath: images, withIntermediateDirectories: true)
        let maxNodes = counts.max()!
        let lab = try Lab(prefix: "qlbi", root: root, hosts: maxNodes + 1)
        defer { lab.down() }
        let image = images + "/bench.img"
        try Lab.run("/bin/sh", ["-c", "head -c \(size << 20) /dev/urandom > \(image)"])
        let sha = try Lab.sha256(image)
        let server = lab.address(0)
        let daemon = try lab.start(
            on: 0,
            [
                bin.appendingPathComponent("ql-mcastd").path, "--root", head, "--interface", server, "--listen", server,
                "--window", "\(window)",
            ] + daemonOption,
            timeout: 7_200, log: work.appendingPathComponent("daemon.log").path)
        defer { daemon.terminate() }
        var ready = false
        for _ in 0..<100 where !ready {
            ready = (try? status(lab, bin: bin, server: server)) != nil
            if !ready { usleep(200_000) }
        }
        guard ready else { throw LabError("ql-mcastd did not start") }

        var runs: [String: [Delivery]] = [:]
        var headBytes: [String: [Double]] = [:]
        for rep in 0..<reps {
            for n in counts {
                for mode in modes {
                    // Memory warmed before every delivery (untimed), not only the first: udpcast's
                    // ~10 s let this VM hand back what the previous mode freed (huge pages come from
                    // exactly those large free blocks), and the next mode would pay for it alone.
                    try NodeMemory.warm(in: work, copies: n, mebibytes: size)
                    let tx0 = try transmitted(lab)
                    var d =
                        mode == "udpcast"
                        ? try udpcast(lab: lab, work: work, file: image, sha: sha, nodes: n)
                        : try deliver(lab: lab, bin: bin, work: work, nodes: n, mode: mode, server: server)
                    d.nodesCPU = d.nodesCPU.map { $0 / (Double(n) * Double(size) / 1_024) }
                    d.nodesSystemCPU = d.nodesSystemCPU.map { $0 / (Double(n) * Double(size) / 1_024) }
                    runs["\(mode) \(n)", default: []].append(d)
                    headBytes["\(mode) \(n)", default: []].append(Double(try transmitted(lab) - tx0))
                    FileHandle.standardError.write(
                        Data(
                            "rep \(rep + 1) \(mode) to \(n) nodes: wall \(fmt(d.wall)) s\(d.transfer.map { ", transfer \(fmt($0)) s" } ?? "")\(d.repairShare.map { ", repair \(fmt($0 * 100)) % of datagrams" } ?? "")\(d.nodesCPU.map { ", node CPU \(fmt($0)) s/GiB" } ?? "")\(d.nodesSystemCPU.map { " (kernel \(fmt($0)))" } ?? "")\n"
                                .utf8))
                }
            }
        }
        if let sessionsJson {
            let text = try lab.exec(
                on: 0,
                [
                    bin.appendingPathComponent("ql-mcastd").path, "status", "--server", server, "--timeout", "2",
                    "--json",
                ])
            try Data(text.utf8).write(to: URL(fileURLWithPath: sessionsJson))
            try? FileManager.default.removeItem(atPath: sessionsJson + ".daemon.log")
            try? FileManager.default.copyItem(
                atPath: work.appendingPathComponent("daemon.log").path, toPath: sessionsJson + ".daemon.log")
        }
        var report = Report(
            benchmark:
                "image \(size) MiB to N nodes: ql-mcastd → ql-mcast-client vs udpcast, \(reps) reps, window \(fmt(window, 1)) s\(noExpect ? "" : ", --expect N")",
            columns: [
                "nodes", "mode", "wall s", "walls of the reps", "spread", "transfer s", "MB/s per node",
                "udpcast ÷ this", "repair %", "head sent ÷ image", "node CPU s/GiB",
            ])
        for n in counts {
            let udpcastWall = runs["udpcast \(n)"].map { median($0.map(\.wall)) }
            for mode in modes {
                guard let ds = runs["\(mode) \(n)"] else { continue }
                let walls = ds.map(\.wall)
                let wall = median(walls)
                let transfers = ds.compactMap(\.transfer)
                let repairs = ds.compactMap(\.repairShare)
                let cpu = ds.compactMap(\.nodesCPU)
                report.rows.append([
                    "\(n)", mode, fmt(wall), walls.map { fmt($0) }.joined(separator: " / "),
                    fmt(walls.max()! / walls.min()!), transfers.isEmpty ? "n/a" : fmt(median(transfers)),
                    fmt(Double(size << 20) / 1e6 / wall, 1), udpcastWall.map { fmt($0 / wall) } ?? "n/a",
                    repairs.isEmpty ? "n/a" : repairs.map { fmt($0 * 100, 1) }.joined(separator: " / "),
                    fmt(median(headBytes["\(mode) \(n)"] ?? []) / Double(size << 20)),
                    cpu.isEmpty ? "n/a" : fmt(median(cpu)),
                ])
            }
        }
        report.notes.append(
            "wall: from starting the nodes' programs to the last node done (ql-mcast-client: verified), the session's start included; median, then every rep in order"
        )
        report.notes.append(
            "spread: slowest rep ÷ fastest; transfer: ql-mcast-client's time without its wait for the session")
        report.notes.append("udpcast ÷ this: udpcast's median wall over this mode's (above 1: faster than udpcast)")
        report.notes.append(
            "repair %: the session's repair symbols ÷ the datagrams it sent (ql-mcastd status), per rep; head sent: bytes leaving h0's interface (headers included) over the image size"
        )
        report.notes.append(
            "node CPU: user + system seconds of the nodes' ql-mcast-client processes per GiB delivered to each node (median)\(hugePages ? "; copies on a huge=within_size tmpfs" : "")"
        )
        report.notes.append(
            "every copy checked: ql-mcast-client verifies SHA-256 and its path is checked; udpcast's output is hashed after its time"
        )
        report.printTable()
        try report.write(json: json)
    }

    func status(_ lab: Lab, bin: URL, server: String) throws -> [String: Any] {
        let text = try lab.exec(
            on: 0,
            [bin.appendingPathComponent("ql-mcastd").path, "status", "--server", server, "--timeout", "2", "--json"])
        guard let status = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw LabError("ql-mcastd status: not JSON")
        }
        return status
    }

    /// udp-sender on h0 waiting for `nodes` receivers, then `nodes` udp-receivers at once.
    func udpcast(lab: Lab, work: URL, file: String, sha: String, nodes: Int) throws -> Delivery {
        let sender = try lab.start(
            on: 0,
            [
                "udp-sender", "--file", file, "--interface", "eth0", "--portbase", "33000", "--mcast-rdv-address",
                "239.255.9.2", "--mcast-data-address", "239.255.9.3", "--min-receivers", "\(nodes)", "--nokbd",
            ], timeout: 900, log: work.appendingPathComponent("udp-sender.log").path)
        defer { if sender.isRunning { sender.terminate() } }
        usleep(300_000)
        let t0 = Date()
        let outputs = (1...nodes).map { work.appendingPathComponent("u\($0).img").path }
        let receivers = try (1...nodes).map { i in
            try lab.start(
                on: i,
                [
                    "udp-receiver", "--file", outputs[i - 1], "--interface", "eth0", "--portbase", "33000",
                    "--mcast-rdv-address", "239.255.9.2", "--nokbd",
                ], timeout: 900, log: work.appendingPathComponent("udp-receiver\(i).log").path)
        }
        var done = [Date?](repeating: nil, count: nodes)
        let deadline = Date().addingTimeInterval(900)
        while done.contains(where: { $0 == nil }) && Date() < deadline {
            for (i, r) in receivers.enumerated() where done[i] == nil && !r.isRunning { done[i] = Date() }
            usleep(2_000)
        }
        _ = lab.wait(sender, seconds: 30)
        for (i, r) in receivers.enumerated() {
            guard lab.wait(r, seconds: 5) == 0, (try? Lab.sha256(outputs[i])) == sha else {
                throw LabError("udp-receiver on node \(i + 1) did not deliver an exact copy")
            }
            try? FileManager.default.removeItem(atPath: outputs[i])
        }
        return Delivery(wall: done.compactMap { $0 }.map { $0.timeIntervalSince(t0) }.max() ?? .nan)
    }

    /// Bytes h0's interface has sent so far.
    func transmitted(_ lab: Lab) throws -> Int {
        let text = try lab.exec(on: 0, ["cat", "/sys/class/net/eth0/statistics/tx_bytes"])
        guard let v = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw LabError("tx_bytes: '\(text)'")
        }
        return v
    }

    /// One delivery to `nodes` nodes by ql-mcast-client (multicast or unicast).
    func deliver(lab: Lab, bin: URL, work: URL, nodes: Int, mode: String, server: String) throws -> Delivery {
        var processes: [Process] = []
        let expect = mode == "multicast" && !noExpect ? ["--expect", "\(nodes)"] : []
        // The clients are this program's children (ip netns exec runs them in place): what they
        // used is in RUSAGE_CHILDREN once they are waited for.
        let cpu0 = Self.childrenCPU()
        let t0 = Date()
        for i in 1...nodes {
            let out = work.appendingPathComponent("n\(i)").path
            try? FileManager.default.removeItem(atPath: out)
            processes.append(
                try lab.start(
                    on: i,
                    [
                        bin.appendingPathComponent("ql-mcast-client").path, "--server", server, "--image", "bench",
                        "--output", out + "/bench.img", "--root", out, "--quiet", "--report-json", out + ".json",
                    ] + (mode == "unicast" ? ["--unicast"] : expect), timeout: 900, log: out + ".log"))
        }
        var transfer = 0.0
        var wall = 0.0
        var session: Int?
        for (k, p) in processes.enumerated() {
            let i = k + 1
            let status = lab.wait(p, seconds: 900)
            wall = max(wall, Date().timeIntervalSince(t0))
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
            transfer = max(transfer, r["transferSeconds"] as? Double ?? .nan)
            session = r["sessionID"] as? Int
            try? FileManager.default.removeItem(atPath: work.appendingPathComponent("n\(i)").path)
        }
        var repairShare: Double?
        if mode == "multicast", let session {
            // The sender's last progress is in the status once the session has finished.
            let deadline = Date().addingTimeInterval(10)
            while repairShare == nil && Date() < deadline {
                let sessions = try status(lab, bin: bin, server: server)["sessions"] as? [[String: Any]] ?? []
                if let s = sessions.first(where: {
                    $0["sessionID"] as? Int == session && $0["state"] as? String == "finished"
                }),
                    let c = (s["progress"] as? [String: Any])?["counters"] as? [String: Any],
                    let sent = (c["datagramsSent"] as? NSNumber)?.doubleValue, sent > 0
                {
                    repairShare = ((c["repairSymbols"] as? NSNumber)?.doubleValue ?? 0) / sent
                } else {
                    usleep(100_000)
                }
            }
        }
        let cpu1 = Self.childrenCPU()
        return Delivery(
            wall: wall, transfer: transfer, repairShare: repairShare, nodesCPU: cpu1.total - cpu0.total,
            nodesSystemCPU: cpu1.system - cpu0.system)
    }

    /// User + system seconds of this program's children that have been waited for.
    /// CPU seconds of the children that have ended (the nodes' clients): all, and the kernel's.
    static func childrenCPU() -> (total: Double, system: Double) {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_CHILDREN.rawValue), &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return (seconds(usage.ru_utime) + seconds(usage.ru_stime), seconds(usage.ru_stime))
    }
}
