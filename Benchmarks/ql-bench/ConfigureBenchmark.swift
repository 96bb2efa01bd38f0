import ArgumentParser
import Foundation
import LabSupport
import Logging
import NIOConcurrencyHelpers
import NodeConfig
import NodeRegistry
import Platform

#if canImport(Glibc)
    import Glibc
#endif

/// `ql-bench configure`: N concurrent one-shot configure runs against one qlumand, each node
/// with a realistic option set and a Root FS Customization of F files; against the bare cost of
/// putting the same files on disk (`cpio -idm` of the same archive, N times, 2 at a time),
/// alternating. Each node has its own address (on the head host's loopback, in a lab namespace),
/// since qlumand knows nodes by address.
struct ConfigureBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "configure",
        abstract: "N concurrent qluman-execd --configure runs against one qlumand vs cpio of the same files.",
        discussion: HelpText.paragraphs(
            """
            Needs root (a lab namespace; file owners) and the release qlumand
            (swift build -c release --product qlumand). Works in /dev/shm. Reports per rep: the
            baseline (cpio -idm of the node's Root FS archive into N roots, 2 in parallel), the
            wall time until all N nodes are configured, median and p99 time per node, and
            qlumand's CPU seconds.
            """))

    @Option(help: "Nodes configuring at once.") var nodes = 500
    @Option(help: "Files in the Root FS Customization tree.") var files = 1_000
    @Option(help: "Alternating repetitions.") var reps = 3
    @Option(help: "Write the table as JSON to this file.") var json: String?

    func validate() throws {
        guard getuid() == 0 else {
            throw ValidationError("ql-bench configure needs root (a lab namespace, file owners)")
        }
        guard (1...20_000).contains(nodes) else { throw ValidationError("--nodes must be 1–20000") }
    }

    func run() throws {
        let repo = Benchmarks.repositoryRoot()
        try Lab.run(repo.appendingPathComponent("scripts/setup").path, [])
        let qlumand = repo.appendingPathComponent(".build/release/qlumand").path
        guard FileManager.default.isExecutableFile(atPath: qlumand) else {
            throw ValidationError("build it first: swift build -c release --product qlumand")
        }
        let work = "/dev/shm/ql-bench-configure-\(getpid())"
        let lab = try Lab(prefix: "qlb", root: repo, hosts: 1)
        defer {
            lab.down()
            if ProcessInfo.processInfo.environment["QL_BENCH_KEEP"] == nil {
                try? FileManager.default.removeItem(atPath: work)
            }
        }
        let head = Root(work + "/head")
        let ssl = head.path("/etc/qlustar/ssl")
        let server = lab.address(0)
        try Lab.run(repo.appendingPathComponent("scripts/cluster-ca").path, [ssl, "qlumand", server])
        let registry = try Registry(root: head)
        try storeRealisticGroup(registry, work: work)
        let tree = head.path("/var/lib/qlustar/root-fs/site")
        try makeTree(tree, files: files)
        let addresses = (0..<nodes).map { "198.19.\($0 / 250).\($0 % 250 + 1)" }
        for (i, address) in addresses.enumerated() {
            let mac = String(format: "52:54:01:%02x:%02x:%02x", (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF)
            _ = try registry.addNode(
                name: String(format: "n%05d", i), macs: [mac], ip: address + "/16", image: nil, group: "compute")
        }
        let batch = work + "/addresses"
        try addresses.map { "address add \($0)/32 dev lo\n" }.joined().write(
            toFile: batch, atomically: true, encoding: .utf8)
        try lab.exec(on: 0, ["ip", "-batch", batch])
        let daemon = try lab.start(
            on: 0,
            [
                qlumand, "--root", head.prefix, "--listen", server, "--tls-certificate", ssl + "/qlumand.crt",
                "--tls-key", ssl + "/qlumand.key",
            ],
            timeout: 3_600, log: work + "/qlumand.out")
        usleep(500_000)
        guard
            let pid = Int32(
                try Lab.run("/usr/bin/pgrep", ["-n", "-f", "qlumand --root \(head.prefix)"]).trimmingCharacters(
                    in: .whitespacesAndNewlines))
        else {
            throw ValidationError(
                "qlumand did not start: \((try? String(contentsOfFile: work + "/qlumand.out", encoding: .utf8)) ?? "")")
        }
        let nodeRoots = work + "/nodes"
        let worker = { (count: Int) throws -> WorkerResult in
            try? FileManager.default.removeItem(atPath: nodeRoots)
            let out = try lab.exec(
                on: 0,
                [
                    CommandLine.arguments[0], "configure-worker", "--server", server, "--ca", ssl + "/ca.crt",
                    "--roots", nodeRoots,
                    "--count", "\(count)",
                ])
            return try JSONDecoder().decode(WorkerResult.self, from: Data(out.utf8))
        }
        // Warm-up: one node (qlumand builds the Root FS archive once, the registry is cached).
        let warm = try worker(1)
        FileHandle.standardError.write(
            Data("warm-up: one node in \(fmt(warm.wall, 3)) s (Root FS archive built)\n".utf8))
        let archive = work + "/site.cpio.gz"
        try RootFSArchive.pack(name: "site", tree: tree, scratch: work + "/scratch").bytes.withUnsafeBytes {
            try Data($0).write(to: URL(fileURLWithPath: archive))
        }

        var report = Report(
            benchmark:
                "configure: \(nodes) concurrent qluman-execd --configure vs cpio -idm of the same Root FS (\(files) files)",
            columns: [
                "rep", "cpio ×\(nodes) s", "configure wall s", "per node median s", "p99 s", "qlumand CPU s", "failed",
                "wall / cpio",
            ])
        var walls: [Double] = []
        var baselines: [Double] = []
        for rep in 1...reps {
            try? FileManager.default.removeItem(atPath: nodeRoots)
            let baseline = try timeCPIO(archive: archive, roots: nodeRoots, count: nodes)
            let before = Self.cpuSeconds(pid)
            let result = try worker(nodes)
            let cpu = Self.cpuSeconds(pid) - before
            let sorted = result.seconds.sorted()
            let p99 = sorted.isEmpty ? .nan : sorted[min(sorted.count - 1, Int(Double(sorted.count) * 0.99))]
            walls.append(result.wall)
            baselines.append(baseline)
            report.rows.append([
                "\(rep)", fmt(baseline), fmt(result.wall), fmt(median(result.seconds), 3), fmt(p99, 3), fmt(cpu),
                "\(result.failures.count)",
                fmt(result.wall / baseline),
            ])
            for f in result.failures.prefix(3) { report.notes.append("rep \(rep) failure: \(f)") }
        }
        report.rows.append([
            "median", fmt(median(baselines)), fmt(median(walls)), "", "", "", "",
            fmt(median(walls) / median(baselines)),
        ])
        report.notes.append("target: all \(nodes) nodes configured within 10 s — median wall \(fmt(median(walls))) s")
        report.notes.append(
            "each node: TLS handshake, identity check (address, MAC), options + \(files)-file archive, render, write with owners (tmpfs)"
        )
        report.printTable()
        try report.write(json: json)
        daemon.terminate()
    }

    /// The bare cost of the files: `cpio -idm` of the archive into `count` directories, two at a time.
    private func timeCPIO(archive: String, roots: String, count: Int) throws -> Double {
        let started = Date()
        try Lab.run(
            "/bin/sh",
            [
                "-c",
                "seq 1 \(count) | xargs -P 2 -I{} sh -c 'mkdir -p \(roots)-cpio/{} && cd \(roots)-cpio/{} && zcat \(archive) | cpio -idm --quiet'",
            ])
        let seconds = Date().timeIntervalSince(started)
        try? FileManager.default.removeItem(atPath: roots + "-cpio")
        return seconds
    }

    static func cpuSeconds(_ pid: Int32) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // utime and stime are fields 14 and 15 of stat(5); after ") " the state is field 3.
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    private func storeRealisticGroup(_ registry: Registry, work: String) throws {
        try registry.addGroup("compute")
        try Lab.run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "admin@head", "-f", work + "/id"])
        let key = try String(contentsOfFile: work + "/id.pub", encoding: .utf8).trimmingCharacters(
            in: .whitespacesAndNewlines)
        let configs: [(ConfigClass, String)] = [
            (
                .network,
                #"{"interfaces":[{"name":"eth0","address":"boot","gateway":"198.19.0.254"},{"name":"eth1","address":"manual"},{"name":"eth2","address":"manual"},{"name":"bond0","type":"bond","slaves":["eth1","eth2"],"bondMode":"802.3ad","address":"10.3.0.0/16"},{"name":"ib0","type":"ipoib","address":"10.1.0.0/16","connectedMode":true}],"nameservers":["198.19.0.254"]}"#
            ),
            (
                .disk,
                #"{"disks":[{"device":"/dev/sdb","action":"format","fsType":"xfs","mountpoint":"/scratch"},{"device":"/dev/sdc","action":"keep","fsType":"swap"}]}"#
            ),
            (
                .networkFS,
                #"{"mounts":[{"source":"head:/srv/home","path":"/home","type":"nfs","automount":true},{"source":"head:/srv/apps","path":"/apps","type":"nfs4","options":"ro"}]}"#
            ),
            (.openSM, #"{"enabled":false}"#),
            (.ipmi, #"{"network":"10.2.0.0/16","gateway":"10.2.0.1"}"#),
            (.sshKeys, "{\"keys\":[\"\(key)\"]}"),
            (.misc, #"{"mailRelay":"head","sshSlurmOnly":true}"#),
            (.rootFS, "{}"),
        ]
        for (cls, body) in configs {
            let name = cls == .rootFS ? "site" : "bench-\(cls.rawValue)"
            _ = try registry.putConfig(cls, name: name, json: Array(body.utf8))
            try registry.assign(cls, name, to: .group("compute"))
        }
    }

    /// A customization tree of `files` small text files in 20 directories, a few with other owners and modes.
    private func makeTree(_ tree: String, files: Int) throws {
        try Lab.run(
            "/bin/sh",
            [
                "-c",
                """
                set -e; mkdir -p '\(tree)'; cd '\(tree)'
                i=0; while [ $i -lt \(files) ]; do
                  d=etc/site/d$((i % 20)); mkdir -p $d
                  head -c $((200 + (i * 37) % 3800)) /usr/share/common-licenses/GPL-3 > $d/f$i.conf
                  i=$((i + 1))
                done
                chown -R 1000:1000 etc/site/d3; chmod 0600 etc/site/d5/*; mkdir -p var/empty; ln -s d1 etc/site/current
                """,
            ])
    }
}

/// What one worker run measured (printed as JSON by `configure-worker`).
struct WorkerResult: Codable {
    var wall: Double
    var seconds: [Double]
    var failures: [String]
}

/// Inside the lab host: `count` configure runs at once, node i connecting from its own address.
struct ConfigureWorker: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "configure-worker", abstract: "(ql-bench configure runs this inside the lab host.)",
        shouldDisplay: false)

    @Option var server: String
    @Option var ca: String
    @Option var roots: String
    @Option var count: Int

    func run() throws {
        let log = Logger(root: Root(roots), name: "qluman-execd", echo: false)
        let results = NIOLockedValueBox<(seconds: [Double], failures: [String])>(([], []))
        let group = DispatchGroup()
        let start = DispatchSemaphore(value: 0)
        for i in 0..<count {
            group.enter()
            let root = Root("\(roots)/\(i)")
            var settings = ConfigureRun.Settings(
                root: root, serverHost: server, ca: ca,
                macs: [String(format: "52:54:01:%02x:%02x:%02x", (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF)],
                token: nil)
            settings.osFamily = .debian
            settings.sourceAddress = "198.19.\(i / 250).\(i % 250 + 1)"
            settings.serverTimeout = 60
            // No NTP server on the bench's head: the one-shot clock check is not what is measured.
            settings.timeSync = false
            let fixed = settings
            let thread = Thread {
                start.wait()
                let began = Date()
                do {
                    _ = try ConfigureRun(settings: fixed, log: log).run()
                    let s = Date().timeIntervalSince(began)
                    results.withLockedValue { $0.seconds.append(s) }
                } catch {
                    results.withLockedValue { $0.failures.append("node \(i): \(error)") }
                }
                group.leave()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        let began = Date()
        for _ in 0..<count { start.signal() }
        group.wait()
        let wall = Date().timeIntervalSince(began)
        let (seconds, failures) = results.withLockedValue { ($0.seconds, $0.failures) }
        let out = try JSONEncoder().encode(WorkerResult(wall: wall, seconds: seconds, failures: failures))
        print(String(decoding: out, as: UTF8.self))
    }
}
