import ArgumentParser
import Foundation
import LabSupport
import Platform
import Transport

/// `ql-bench transfer`: one file from h0 to N receivers on the lab, with this engine, the raw
/// ceilings of the lab (plain sendmmsg datagrams; UDP GSO → GRO) and udpcast, alternating runs
/// of each system in one invocation; medians and ratios.
struct TransferBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transfer",
        abstract: "Goodput, wire overhead and CPU per GiB on the test hosts, vs raw ceilings and udpcast.",
        discussion: HelpText.paragraphs(
            """
            Loss (--loss P): ql-mcast receivers drop P % of datagrams with the engine's seeded model
            (random, or Gilbert–Elliott bursts with --burst), per datagram as loss on a real wire
            is; udpcast cannot be told to lose packets, so it gets real loss from an nftables rule
            on each receiving host. On this lab nftables sees whole GSO super-datagrams (up to 44
            datagrams) as one packet, so --nft (nftables for every system) models bursty loss.
            Every copy is verified by SHA-256. Needs root (network namespaces); installs udpcast via
            scripts/setup if missing. Before every run the receivers' memory is warmed, untimed (as
            much written and removed on /dev/shm as they will write): this VM hands memory freed a
            few seconds ago back to its host, and the run after a slower one would pay for it alone.

            --encrypt adds ql-mcast with its symbols sealed (AES-128-GCM, `ql-mcast send --encrypt`,
            16-byte tag: symbols 16 bytes shorter) beside the plain run, and measures in-process what
            sealing and opening 1 GiB of such datagrams costs alone: the floor of what encryption can
            add on this CPU.
            """)
    )

    @Option(help: "Receiving hosts.") var receivers = 3
    @Option(help: "File size in MiB.") var size = 256
    @Option(help: "Random loss at each receiver, percent (nftables).") var loss = 0.0
    @Flag(help: "Burst loss instead of random (engine's Gilbert–Elliott model, mean burst 16).")
    var burst = false
    @Flag(help: "Use nftables loss on the receiving hosts for every system, ql-mcast included.")
    var nft = false
    @Option(help: "Lab MTU (1500 or 9000).") var mtu = 1500
    @Option(help: "Alternating repetitions per system.") var reps = 3
    @Option(
        help:
            "Systems to run: ql-mcast, ql-mcast-encrypted, raw-sendmmsg, raw-gso-gro, raw-work (GRO receive, each payload into a fresh tmpfs mapping, SHA-256 of the prefix: the work a verified receive cannot avoid), udpcast, uftp."
    )
    var systems: [String] = ["ql-mcast", "raw-sendmmsg", "raw-gso-gro", "raw-work", "udpcast"]
    @Option(help: "Extra arguments for `ql-mcast send` (e.g. --rate 1g).") var senderArgs: [String] = []
    @Flag(help: "Also run ql-mcast with sealed symbols (system ql-mcast-encrypted) and measure AES-GCM alone.")
    var encrypt = false
    @Option(help: "Write the table as JSON to this file.") var json: String?
    @Option(
        help: """
            Shape the sending host's egress with tc tbf to this rate (e.g. 1gbit), as a head node's NIC \
            is: the wire, not the two cores the lab's hosts share, is then the limit. none: unshaped.
            """)
    var link = "none"
    @Flag(
        help: """
            With --loss (engine model): also run ql-mcast without loss, alternating, and give goodput \
            under loss ÷ without (the system "ql-mcast no loss").
            """)
    var withLossless = false

    func validate() throws {
        guard getuid() == 0 else { throw ValidationError("ql-bench transfer needs root (network namespaces)") }
        guard receivers >= 1, receivers <= 16 else { throw ValidationError("--receivers must be 1…16") }
        guard mtu == 1500 || mtu == 9000 else { throw ValidationError("--mtu must be 1500 or 9000") }
    }

    func run() throws {
        let root = Benchmarks.repositoryRoot()
        try Lab.run(root.appendingPathComponent("scripts/setup").path, [])
        let bin = root.appendingPathComponent(".build/release")
        // RAM-backed, like a diskless node's image area.
        let work = URL(fileURLWithPath: "/dev/shm/ql-bench-\(getpid())")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let lab = try Lab(prefix: "qlb", root: root, hosts: receivers + 1, mtu: mtu)
        defer { lab.down() }
        let nftEveryone = nft && loss > 0
        if nftEveryone { for i in 1...receivers { try lab.lab(["loss", "\(i)", "\(loss)"]) } }
        if link != "none" {
            _ = try lab.exec(
                on: 0,
                [
                    "tc", "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", link, "burst", "256kb", "latency",
                    "50ms",
                ])
        }
        let file = work.appendingPathComponent("object").path
        try Lab.run("/bin/sh", ["-c", "head -c \(size << 20) /dev/urandom > \(file)"])
        let sha = try Lab.sha256(file)
        let runner = TransferRunner(
            lab: lab, bin: bin, work: work, file: file, sha: sha, bytes: size << 20, receivers: receivers, mtu: mtu,
            engineLoss: nft || loss == 0 ? nil : (burst ? "burst:\(loss / 100):16" : "random:\(loss / 100)"),
            peerLoss: nft ? nil : (loss > 0 ? loss : nil), senderArgs: senderArgs)
        let lossless = TransferRunner(
            lab: lab, bin: bin, work: work, file: file, sha: sha, bytes: size << 20, receivers: receivers, mtu: mtu,
            engineLoss: nil, peerLoss: nil, senderArgs: senderArgs)
        let baseline = "ql-mcast no loss"

        var results: [String: [RunResult]] = [:]
        let systems =
            (encrypt && !self.systems.contains("ql-mcast-encrypted")
                ? self.systems + ["ql-mcast-encrypted"] : self.systems)
            + (withLossless && loss > 0 && !nft ? [baseline] : [])
        for rep in 0..<reps {
            for system in systems {
                // Every system's receivers write into warm memory (untimed; `NodeMemory`): else
                // the system after a slow one pays this VM's reclaim alone.
                try NodeMemory.warm(in: work, copies: receivers, mebibytes: size)
                let r =
                    system == baseline
                    ? try lossless.run(system: "ql-mcast", rep: rep) : try runner.run(system: system, rep: rep)
                results[system, default: []].append(r)
                FileHandle.standardError.write(
                    "rep \(rep + 1) \(system): \(fmt(r.goodput, 1)) MB/s per receiver, \(r.verified ? "verified" : "NOT VERIFIED")\n"
                        .data(using: .utf8)!)
            }
        }
        let condition =
            "\(loss)% \(burst ? "burst" : "random")\(nft ? " (nftables)" : "")\(link == "none" ? "" : ", sender's link \(link)")"
        var report = Report(
            benchmark: "transfer \(size) MiB to \(receivers) receivers, loss \(condition), MTU \(mtu), \(reps) reps",
            columns: [
                "system", "goodput MB/s", "wire/payload", "sender CPU s/GiB", "receiver CPU s/GiB", "copies/byte",
                "runs byte-exact", "ql-mcast ÷ this",
            ])
        let ours = results["ql-mcast"].map { median($0.map(\.goodput)) }
        for system in systems {
            guard let rs = results[system] else { continue }
            let g = median(rs.map(\.goodput))
            report.rows.append([
                system, fmt(g, 1), fmt(median(rs.map(\.wireRatio)), 3), fmt(median(rs.map(\.senderCPU))),
                fmt(median(rs.map(\.receiverCPU))), rs[0].copies.map { fmt($0, 3) } ?? "n/a",
                system.hasPrefix("raw") ? "n/a" : "\(rs.filter(\.verified).count)/\(rs.count)",
                ours.map { fmt($0 / g) } ?? "n/a",
            ])
        }
        if let lossy = results["ql-mcast"], let clean = results[baseline] {
            report.notes.append(
                "goodput at \(loss) % loss ÷ without (medians, same run): "
                    + fmt(median(lossy.map(\.goodput)) / max(1e-9, median(clean.map(\.goodput)))))
        }
        if let plain = results["ql-mcast"], let floor = results["raw-work"] {
            let ratio = median(plain.map(\.receiverCPU)) / max(1e-9, median(floor.map(\.receiverCPU)))
            report.notes.append(
                "receiver CPU ÷ raw-work (the copy into a fresh tmpfs mapping and SHA-256 it cannot avoid): \(fmt(ratio))"
            )
        }
        report.notes.append(
            "goodput: file size / (receiver done − sender start), median over receivers, then over reps")
        report.notes.append(
            "wire/payload: bytes leaving the sender's interface (with IP/UDP/Ethernet headers) / file size")
        if loss > 0 {
            report.notes.append("raw probes have no repair: their goodput counts what arrived")
            if !nft {
                report.notes.append("loss: engine model for ql-mcast; nftables (per packet on the veth) for the others")
            }
        }
        if systems.contains("ql-mcast-encrypted"), let plain = results["ql-mcast"],
            let sealed = results["ql-mcast-encrypted"]
        {
            let floor = SealingCost.measure(symbolSize: (mtu == 9000 ? 8_932 : 1_472) - 32 - 16)
            report.notes.append(
                "encryption adds (median encrypted − median plain): sender "
                    + "\(fmt(median(sealed.map(\.senderCPU)) - median(plain.map(\.senderCPU)))) s/GiB, receiver "
                    + "\(fmt(median(sealed.map(\.receiverCPU)) - median(plain.map(\.receiverCPU)))) s/GiB")
            report.notes.append(
                "AES-128-GCM alone on this CPU (in-process, \(floor.symbolSize)-byte symbols): seal \(fmt(floor.seal)) s/GiB, "
                    + "open \(fmt(floor.open)) s/GiB (median of 5)")
        }
        report.printTable()
        try report.write(json: json)
    }
}

/// What sealing and opening cost alone: 1 GiB of symbols through `PacketSealer`, no network.
enum SealingCost {
    static func measure(symbolSize: Int) -> (symbolSize: Int, seal: Double, open: Double) {
        let master = PacketAuthenticator.randomKey()
        let salt = PacketSealer.randomSalt()
        let count = (1 << 30) / symbolSize
        let length = PacketHeader.size + symbolSize + PacketHeader.tagSize
        let datagram = UnsafeMutableRawPointer.allocate(byteCount: length, alignment: 64)
        let payload = UnsafeMutableRawPointer.allocate(byteCount: symbolSize, alignment: 64)
        let plain = UnsafeMutableRawPointer.allocate(byteCount: PacketHeader.maxPayload, alignment: 64)
        defer { [datagram, payload, plain].forEach { $0.deallocate() } }
        payload.initializeMemory(as: UInt8.self, repeating: 0x5A, count: symbolSize)
        var seals: [Double] = []
        var opens: [Double] = []
        for _ in 0..<5 {
            guard let sealer = try? PacketSealer(master: master, salt: salt),
                let opener = try? PacketSealer(master: master, salt: salt)
            else { return (symbolSize, .nan, .nan) }
            var t = MonotonicClock.nanoseconds()
            for i in 0..<count {
                PacketHeader(
                    type: .data, flags: .sealed, sessionID: 1, objectID: 1, payloadLength: UInt16(symbolSize),
                    sequence: UInt32(i)
                ).encode(to: datagram)
                _ = sealer.seal(
                    header: datagram, payload: UnsafeRawBufferPointer(start: payload, count: symbolSize),
                    into: datagram + PacketHeader.size, tag: datagram + PacketHeader.size + symbolSize)
            }
            seals.append(Double(MonotonicClock.nanoseconds() - t) / 1e9)
            t = MonotonicClock.nanoseconds()
            var opened = 0
            for _ in 0..<count
            where opener.open(UnsafeRawBufferPointer(start: datagram, count: length), into: plain) != nil {
                opened += 1
            }
            opens.append(opened == count ? Double(MonotonicClock.nanoseconds() - t) / 1e9 : .nan)
        }
        return (symbolSize, median(seals), median(opens))
    }
}

struct RunResult {
    var goodput: Double
    var wireRatio: Double
    var senderCPU: Double
    var receiverCPU: Double
    var copies: Double?
    var verified: Bool
}

/// Runs one system once on the lab and measures it.
struct TransferRunner {
    let lab: Lab
    let bin: URL
    let work: URL
    let file: String
    let sha: String
    let bytes: Int
    let receivers: Int
    let mtu: Int
    /// The engine's loss spec for ql-mcast receivers (nil: none or nftables).
    let engineLoss: String?
    /// Percent of nftables loss to put on receivers while a peer (non-ql-mcast system) runs.
    let peerLoss: Double?
    let senderArgs: [String]

    var gib: Double { Double(bytes) / Double(1 << 30) }
    var group: String { "239.255.9.1:32000" }

    func txBytes() throws -> Int {
        Int(
            try lab.exec(on: 0, ["cat", "/sys/class/net/eth0/statistics/tx_bytes"]).trimmingCharacters(
                in: .whitespacesAndNewlines)) ?? 0
    }

    /// `/usr/bin/time` wrapper writing "user sys" to a file.
    func timed(_ out: String, _ cmd: [String]) -> [String] { ["/usr/bin/time", "-o", out, "-f", "%U %S"] + cmd }

    func cpu(_ path: String) -> Double {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        let nums = text.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Double($0) }
        return nums.suffix(2).reduce(0, +)
    }

    func run(system: String, rep: Int) throws -> RunResult {
        let dir = work.appendingPathComponent("\(system)-\(rep)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func p(_ n: String) -> String { dir.appendingPathComponent(n).path }
        let datagram = mtu == 9000 ? 8_932 : 1_472
        let symbol = datagram - 32
        if let pct = peerLoss, !system.hasPrefix("ql-mcast") {
            for i in 1...receivers { try lab.lab(["loss", "\(i)", "\(pct)"]) }
        }
        defer {
            if peerLoss != nil, !system.hasPrefix("ql-mcast") {
                for i in 1...receivers { _ = try? lab.lab(["clear", "\(i)"]) }
            }
        }
        let raw = system.hasPrefix("raw")
        // A fresh session key per run (`--encrypt` draws a fresh salt per send anyway).
        let sealing =
            system == "ql-mcast-encrypted"
            ? ["--auth-key", PacketAuthenticator.hex(PacketAuthenticator.randomKey()), "--encrypt"] : []
        let probeBytes = bytes / symbol * datagram
        let qlMcast = bin.appendingPathComponent("ql-mcast").path
        let qlBench = bin.appendingPathComponent("ql-bench").path
        func receiverCommand(_ i: Int) throws -> [String] {
            switch system {
            case "ql-mcast", "ql-mcast-encrypted":
                return [
                    qlMcast, "receive", "--group", group, "--interface", lab.address(i), "--output", p("out\(i)"),
                    "--stats-json", p("rx\(i).json"),
                ] + (engineLoss.map { ["--loss", "\($0)@\(i + rep * 7)"] } ?? []) + sealing
            case "raw-sendmmsg", "raw-gso-gro", "raw-work":
                return [
                    qlBench, "probe-recv", "--group", group, "--interface", lab.address(i), "--bytes", "\(probeBytes)",
                ] + (system == "raw-sendmmsg" ? [] : ["--gro"])
                    + (system == "raw-work" ? ["--work", p("out\(i)")] : [])
            case "udpcast":
                return [
                    "udp-receiver", "--file", p("out\(i)"), "--interface", "eth0", "--portbase", "33000",
                    "--mcast-rdv-address", "239.255.9.2", "--nokbd",
                ]
            case "uftp":
                // uftpd at its fastest documented settings (LIMITS.md); a daemon: stopped when the sender is done.
                try FileManager.default.createDirectory(atPath: p("in\(i)"), withIntermediateDirectories: true)
                return [
                    "uftpd", "-d", "-I", "eth0", "-M", "239.255.9.4", "-B", "4194304", "-c", "20971520", "-D",
                    p("in\(i)"), "-L", p("uftpd\(i).log"),
                ]
            default: throw ValidationError("unknown system \(system)")
            }
        }
        let senderCommand: [String] =
            switch system {
            case "ql-mcast", "ql-mcast-encrypted":
                [
                    qlMcast, "send", file, "--group", group, "--interface", lab.address(0), "--receivers",
                    "\(receivers)",
                    "--symbol-size", "\(symbol - (sealing.isEmpty ? 0 : PacketHeader.tagSize))", "--stats-json",
                    p("tx.json"),
                ] + senderArgs + sealing
            case "raw-sendmmsg", "raw-gso-gro", "raw-work":
                [
                    qlBench, "probe-send", "--group", group, "--interface", lab.address(0), "--datagram", "\(datagram)",
                    "--bytes", "\(probeBytes)",
                ] + (system == "raw-sendmmsg" ? [] : ["--gso"])
            case "uftp":
                [
                    "uftp", "-I", "eth0", "-M", "239.255.9.4", "-P", "239.255.9.5", "-R", "-1", "-B", "4194304", "-Y",
                    "none",
                    "-L", p("uftp.log"),
                ] + (mtu == 9000 ? ["-b", "8800"] : []) + [file]
            default:
                [
                    "udp-sender", "--file", file, "--interface", "eth0", "--portbase", "33000", "--mcast-rdv-address",
                    "239.255.9.2", "--mcast-data-address", "239.255.9.3", "--min-receivers", "\(receivers)", "--nokbd",
                    // Under loss udpcast's default mode drops receivers (LIMITS.md): its FEC mode is what delivers.
                ] + (peerLoss != nil ? ["--fec", "8x8/128"] : [])
            }
        let rx = try (1...receivers).map { i in
            try lab.start(on: i, timed(p("cpu\(i)"), try receiverCommand(i)), log: p("rx\(i).log"))
        }
        usleep(400_000)
        let tx0 = try txBytes()
        let t0 = Date()
        let sender = try lab.start(on: 0, timed(p("cpu0"), senderCommand), log: p("tx.log"))
        var done = [Date?](repeating: nil, count: receivers)
        let deadline = Date().addingTimeInterval(180)
        while done.contains(where: { $0 == nil }) && Date() < deadline {
            for (i, r) in rx.enumerated() where done[i] == nil && !r.isRunning { done[i] = Date() }
            // uftpd never exits: uftp ends when every receiver has reported the file complete.
            if system == "uftp", !sender.isRunning { for i in done.indices where done[i] == nil { done[i] = Date() } }
            usleep(2_000)
        }
        if system == "uftp" {
            // uftpd is stopped, so `time` cannot report it: read its CPU time from /proc first.
            for i in 1...receivers {
                if let pid = Int32(
                    (try? Lab.run("/usr/bin/pgrep", ["-n", "-f", "uftpd .*-D \(p("in\(i)"))"]))?.trimmingCharacters(
                        in: .whitespacesAndNewlines) ?? "")
                {
                    try? "\(ConfigureBenchmark.cpuSeconds(pid)) 0\n".write(
                        toFile: p("cpu\(i)"), atomically: true, encoding: .utf8)
                }
            }
            rx.forEach { $0.terminate() }
        }
        _ = lab.wait(sender, seconds: 60)
        rx.forEach { _ = lab.wait($0, seconds: 5) }
        let tx1 = try txBytes()
        var goodputs: [Double] = []
        var verified = true
        var copies: [Double] = []
        // A raw probe cannot repair: one that lost datagrams did less work. Its CPU is per GiB it
        // received, or a lossy run would look cheap (it did: raw-work moved 1.32–1.68 s/GiB).
        var receivedShare = [Double](repeating: 1, count: receivers)
        for i in 1...receivers {
            let seconds = (done[i - 1] ?? Date()).timeIntervalSince(t0)
            if raw {
                // The probe reports bytes and first-to-last seconds itself.
                let parts = ((try? String(contentsOfFile: p("rx\(i).log"), encoding: .utf8)) ?? "").split(
                    separator: " ")
                let got = Double(parts.first ?? "0") ?? 0
                let secs = Double(parts.dropFirst().first?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
                goodputs.append(secs > 0 ? got / Double(datagram) * Double(symbol) / secs / 1e6 : 0)
                receivedShare[i - 1] = min(1, got / Double(datagram) * Double(symbol) / Double(bytes))
                if receivedShare[i - 1] < 0.995 {
                    FileHandle.standardError.write(
                        "  \(system) receiver \(i) got \(fmt(100 * receivedShare[i - 1], 1)) % of the datagrams\n"
                            .data(using: .utf8)!)
                }
            } else {
                let output = system == "uftp" ? p("in\(i)") + "/" + (file as NSString).lastPathComponent : p("out\(i)")
                let ok = (try? Lab.sha256(output)) == sha
                if !ok {
                    // uftpd writes its own log (-L); the others write rxN.log.
                    let logName = system == "uftp" ? "uftpd\(i).log" : "rx\(i).log"
                    let log = (try? String(contentsOfFile: p(logName), encoding: .utf8)) ?? ""
                    FileHandle.standardError.write(
                        "\(system) receiver \(i) failed: \(log.suffix(400))\n".data(using: .utf8)!)
                }
                verified = verified && ok
                goodputs.append(ok ? Double(bytes) / seconds / 1e6 : 0)
            }
            if system.hasPrefix("ql-mcast"),
                let data = FileManager.default.contents(atPath: p("rx\(i).json")),
                let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                let c = obj["copiesPerByte"] as? Double
            {
                copies.append(c)
            }
        }
        let receiverCPU = median((1...receivers).map { cpu(p("cpu\($0)")) / max(0.01, receivedShare[$0 - 1]) }) / gib
        return RunResult(
            goodput: median(goodputs), wireRatio: Double(tx1 - tx0) / Double(bytes), senderCPU: cpu(p("cpu0")) / gib,
            receiverCPU: receiverCPU, copies: copies.isEmpty ? nil : copies.max(), verified: verified)
    }
}

enum Benchmarks {
    /// The repository root: QL_ROOT, or found upward from the executable (.build/release/ql-bench).
    static func repositoryRoot() -> URL {
        if let r = ProcessInfo.processInfo.environment["QL_ROOT"] { return URL(fileURLWithPath: r) }
        var u = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        while u.path != "/" {
            if FileManager.default.fileExists(atPath: u.appendingPathComponent("scripts/lab").path) { return u }
            u = u.deletingLastPathComponent()
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    }

    /// Where the release tools are: beside this ql-bench (QL_MCAST_BIN overrides).
    static func releaseDirectory() -> String {
        ProcessInfo.processInfo.environment["QL_MCAST_BIN"]
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
    }

    /// Runs `command` with its output going to ours as it comes (a long run's progress lines).
    /// - Returns: its exit status.
    static func runStreaming(_ command: [String], environment: [String: String] = [:]) throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: command[0])
        p.arguments = Array(command.dropFirst())
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        try p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }
}
