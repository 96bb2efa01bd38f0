import Foundation
import LabSupport
import LabTestSupport
import Platform

/// Two head nodes on the test hosts (docs/HA.md): h0 and h1 each run the release ql-mcastd and
/// qlumand against one PostgreSQL registry on a host of its own (h2, `scripts/postgres`); nodes
/// h3… boot as /init and init.qlustar would — `ql-mcast-client --server h0,h1`, then
/// `qluman-execd --configure --server h0,h1`. Every process and namespace goes in `tearDown`.
final class TwoHeadLab {
    let harness: LabHarness
    let nodes: Int
    let mcastd: URL
    let client: URL
    let qlumand: URL
    let execd: URL
    let qluman: URL
    let imageTool: URL
    /// The cluster CA and each head's certificate (`head0`, `head1`).
    let ssl: String
    let registryURL: String
    private(set) var services: [[Process]] = [[], []]

    static let database = 2
    static let image = "compute"

    init(nodes: Int) throws {
        self.nodes = nodes
        harness = try LabHarness(hosts: nodes + 3, prefix: "qlh")
        mcastd = try LabHarness.releaseBinary("ql-mcastd")
        client = try LabHarness.releaseBinary("ql-mcast-client")
        qlumand = try LabHarness.releaseBinary("qlumand")
        execd = try LabHarness.releaseBinary("qluman-execd")
        qluman = try LabHarness.releaseBinary("qluman")
        imageTool = try LabHarness.releaseBinary("qlustar-image")
        let scripts = LabHarness.repositoryRoot.appendingPathComponent("scripts").path

        // The database on its own host; the heads log in from the lab's network.
        let pg = harness.path("pg")
        let started = try harness.start(
            on: Self.database,
            [scripts + "/postgres", "start", pg, "5432", harness.address(Self.database), "198.18.0.0/24"],
            timeout: 60, log: "postgres.out")
        guard harness.wait(started, seconds: 70) == 0 else {
            throw LabError("scripts/postgres start failed: \(harness.log("postgres.out"))")
        }
        let created = try ReleaseTool.script("postgres", ["createdb", pg, "qluman"])
        guard created.status == 0 else { throw LabError("scripts/postgres createdb: \(created.stderr)") }
        registryURL = "postgresql://qlustar@\(harness.address(Self.database)):5432/qluman?passfile=\(pg)/password"

        ssl = harness.path("ssl")
        for h in 0...1 {
            try Lab.run(scripts + "/cluster-ca", [ssl, "head\(h)", harness.address(h)])
            let etc = head(h).path("/etc/qlustar")
            try FileManager.default.createDirectory(atPath: etc, withIntermediateDirectories: true)
            try "registry = \(registryURL)\n".write(toFile: etc + "/qlumand.conf", atomically: true, encoding: .utf8)
            try FileManager.default.createDirectory(
                atPath: head(h).images, withIntermediateDirectories: true)
        }
        for i in 1...nodes { try ConfigureLab.makeNodeRoot(nodeRoot(i), ca: ssl + "/ca.crt") }
        // The secret the heads share (ql-mcastd's peer-token, qlustar-image replicate's token).
        try String(repeating: "0123456789abcdef", count: 4).write(toFile: peerToken, atomically: true, encoding: .utf8)
        chmod(peerToken, 0o600)
    }

    func head(_ h: Int) -> Root { Root(harness.path("head\(h)")) }
    var peerToken: String { harness.path("heads.token") }
    /// The lab host of node `i` (1…nodes).
    func host(_ i: Int) -> Int { 2 + i }
    func nodeRoot(_ i: Int) -> String { harness.path("n\(i)") }
    func output(_ i: Int) -> String { nodeRoot(i) + "/run/qlustar/image/\(Self.image).img" }
    var heads: String { "\(harness.address(0)),\(harness.address(1))" }
    /// Head `h`'s ql-mcastd as the client names it (`HOST:PORT`).
    func imageServer(_ h: Int) -> String { "\(harness.address(h)):7799" }

    /// `qluman ARGS` on head `h` (its qlumand.conf names the shared registry).
    @discardableResult
    func qlumanCLI(on h: Int, _ arguments: [String]) throws -> String {
        try harness.lab.exec(on: h, [qluman.path, "--root", head(h).prefix] + arguments)
    }

    /// Registers every node from head 0 (their lab MACs and addresses).
    func registerNodes() throws {
        for i in 1...nodes {
            let mac = try harness.mac(host(i))
            try qlumanCLI(
                on: 0,
                ["node", "add", String(format: "beo-%02d", i), "--mac", mac, "--ip", harness.address(host(i)) + "/24"])
        }
    }

    /// A published image on head 0 as `qlustar-image build` leaves it — the image (random bytes),
    /// initrd, kernel and the manifest naming their digests; returns the image's SHA-256.
    @discardableResult
    func publishImage(size: Int) throws -> String {
        let base = head(0).images + "/\(Self.image)"
        for (ext, bytes) in [("img", size), ("initrd", 1 << 20), ("vmlinuz", 300_000)] {
            try Lab.run("/bin/sh", ["-c", "head -c \(bytes) /dev/urandom > \(base).\(ext)"])
        }
        try writeManifest(on: 0)
        return try Lab.sha256(base + ".img")
    }

    /// Head `h`'s manifest of the image, from the files as they are.
    func writeManifest(on h: Int) throws {
        let base = head(h).images + "/\(Self.image)"
        func size(_ ext: String) throws -> Int {
            try FileManager.default.attributesOfItem(atPath: "\(base).\(ext)")[.size] as! Int
        }
        let manifest: [String: Any] = [
            "image": Self.image, "inputs": "lab", "modules": [] as [Any],
            "sha256": try Lab.sha256(base + ".img"), "size": try size("img"),
            "initrdSha256": try Lab.sha256(base + ".initrd"), "initrdSize": try size("initrd"),
            "kernelSha256": try Lab.sha256(base + ".vmlinuz"), "kernelSize": try size("vmlinuz"),
        ]
        try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys]).write(
            to: URL(fileURLWithPath: base + ".manifest"))
    }

    /// `qlustar-image replicate --from h0 ARGS` on head `h`: its exit status (output in
    /// `replicate-LOG.out`).
    func replicate(on h: Int, token: String? = nil, _ arguments: [String] = [], log: String) -> Int32 {
        guard
            let p = try? harness.start(
                on: h,
                [
                    imageTool.path, "replicate", "--root", head(h).prefix, "--from", harness.address(0),
                    "--token-file", token ?? peerToken,
                ] + arguments, timeout: 120, log: "replicate-\(log).out")
        else { return -1 }
        return harness.wait(p, seconds: 130)
    }

    /// ql-mcastd and qlumand on head `h` (distinct multicast groups per head: both serve one LAN),
    /// qlumand following the registry every `provisionInterval` seconds when given; waits
    /// (bounded) until both answer.
    func startHead(_ h: Int, rate: String = "200m", provisionInterval: Double? = nil) throws {
        let address = harness.address(h)
        let root = head(h).prefix
        services[h] = [
            try harness.start(
                on: h,
                [
                    mcastd.path, "--root", root, "--interface", address, "--listen", address, "--shutdown-grace", "0",
                    "--group-pool", "239.255.\(10 + h).0/24", "--rate", rate, "--window", "2", "--peer-token",
                    peerToken, "--peer", harness.address(1 - h),
                ], timeout: 600, log: "mcastd\(h).log"),
            try harness.start(
                on: h,
                [
                    qlumand.path, "--root", root, "--listen", address, "--tls-certificate", ssl + "/head\(h).crt",
                    "--tls-key", ssl + "/head\(h).key",
                ] + (provisionInterval.map { ["--provision-interval", "\($0)"] } ?? []), timeout: 600,
                log: "qlumand\(h).log"),
        ]
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if (try? imageStatus(h)) != nil, (try? harness.lab.exec(on: h, qlumandStatus(h))) != nil { return }
            usleep(200_000)
        }
        throw LabError(
            "head \(h) did not answer within 20 s: \(harness.log("mcastd\(h).log")) \(harness.log("qlumand\(h).log"))")
    }

    private func qlumandStatus(_ h: Int) -> [String] {
        [qlumand.path, "status", "--server", harness.address(h), "--ca", ssl + "/ca.crt", "--json"]
    }

    /// The real dnsmasq on head `h` with the files its qlumand provisioned (waits, bounded, for
    /// them and for dnsmasq's DHCP to be up).
    func startDnsmasq(_ h: Int) throws {
        let conf = head(h).path("/etc/qlustar/dnsmasq/qlustar.conf")
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, !FileManager.default.fileExists(atPath: conf) { usleep(100_000) }
        try FileManager.default.createDirectory(atPath: head(h).path("/run/qlustar"), withIntermediateDirectories: true)
        services[h].append(
            try harness.start(
                on: h,
                [
                    "dnsmasq", "--keep-in-foreground", "--conf-file=" + conf,
                    "--pid-file=" + head(h).path("/run/qlustar/dnsmasq.pid"),
                    "--log-facility=" + harness.path("dnsmasq\(h).log"),
                ], timeout: 600, log: "dnsmasq\(h).out"))
        while Date() < deadline, !harness.log("dnsmasq\(h).log").contains("DHCP, static leases only") {
            usleep(100_000)
        }
        guard harness.log("dnsmasq\(h).log").contains("DHCP, static leases only") else {
            throw LabError("dnsmasq on head \(h) did not start DHCP: \(harness.log("dnsmasq\(h).log"))")
        }
    }

    /// `ql-mcastd status --json` of head `h`.
    func imageStatus(_ h: Int) throws -> [String: Any] {
        let text = try harness.lab.exec(
            on: h, [mcastd.path, "status", "--server", harness.address(h), "--json", "--timeout", "2"])
        return try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
    }

    /// Waits (bounded) until head `h` has heard that the other head serves `sha` (nil: has heard
    /// from it at all).
    func waitUntilPeerSeen(by h: Int, sha: String? = nil) throws {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let peer = try? imageStatus(h)["peer"] as? [String: Any], peer["heardSecondsAgo"] as? Double != nil,
                sha == nil || (peer["images"] as? [String: String])?[Self.image] == sha
            {
                return
            }
            usleep(200_000)
        }
        throw LabError(
            "head \(h) never heard the other head serve \(sha ?? "anything"): \(harness.log("mcastd\(h).log"))")
    }

    /// Node `i` fetches the image from head `h` alone; returns the client's exit status (its log
    /// in `fetch-LOG.out`).
    func fetch(_ i: Int, from h: Int, log: String) throws -> Int32 {
        try? FileManager.default.removeItem(atPath: output(i))
        let p = try harness.start(
            on: host(i),
            [
                client.path, "--server", harness.address(h), "--image", Self.image, "--output", output(i), "--root",
                nodeRoot(i), "--quiet", "--server-timeout", "10",
            ], timeout: 60, log: "fetch-\(log).out")
        return harness.wait(p, seconds: 70)
    }

    /// The database's machine gone from the network (its link down: connections to it are not
    /// refused, they go unanswered), or only its server stopped at once (`scripts/postgres kill`).
    func loseDatabase(machine: Bool) throws {
        if machine {
            try harness.lab.exec(on: Self.database, ["ip", "link", "set", "eth0", "down"])
        } else {
            let r = try ReleaseTool.script("postgres", ["kill", harness.path("pg")])
            guard r.status == 0 else { throw LabError("scripts/postgres kill: \(r.stderr)") }
        }
    }

    /// `qlumand status --json` of head `h`.
    func configureStatus(_ h: Int) throws -> [String: Any] {
        let text = try harness.lab.exec(on: h, qlumandStatus(h))
        return try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
    }

    /// SIGKILL to both services of head `h`, as a crashed head node.
    func killHead(_ h: Int) throws {
        for p in services[h] { try harness.lab.signal(p, SIGKILL) }
    }

    /// Starts node `i`'s boot (fetch, then configure) as /init and init.qlustar run it.
    func startBoot(_ i: Int, run: Int) throws -> Process {
        let script = """
            \(client.path) --server \(heads) --image \(Self.image) --output \(output(i)) --root \(nodeRoot(i)) \
            --expect \(nodes) --quiet --report-json \(harness.path("report\(i)-\(run).json")) || exit 10
            \(execd.path) --configure --root \(nodeRoot(i)) --server \(heads) --server-timeout 30 --no-time-sync || exit 11
            """
        return try harness.start(on: host(i), ["/bin/sh", "-c", script], timeout: 240, log: "boot\(i)-\(run).log")
    }

    func tearDown() { harness.tearDown() }
}
