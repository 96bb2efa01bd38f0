import Foundation
import LabSupport
import LabTestSupport
import XCTest

/// Multi-process transfers on real sockets between network-namespace test hosts, driving the
/// release `ql-mcast` binary: h0 sends, h1…hN receive.
final class MulticastTransferTests: XCTestCase {
    var lab: LabHarness?
    let group = "239.255.7.1:31000"

    override func tearDown() {
        lab?.tearDown()
        lab = nil
    }

    struct Scenario {
        var receivers = 4
        var size = 256 << 20
        var loss = "none"
        var lateJoiner = false
        var authKey: String?
        var encrypt = false
        var forge = false
        /// What the forging host sends (a Python script: group, session id, seconds).
        var forgery = MulticastTransferTests.forgerScript
        var senderArgs: [String] = []
        var nftLossPercent: Double?
        /// The sender's egress shaped with tc tbf to this rate (a NIC slower than the rate).
        var senderLink: String?
        var mtu = 1500
    }

    struct Outcome {
        var sender: [String: Any]
        var receivers: [[String: Any]]
        var senderCounters: [String: Any] { (sender["report"] as! [String: Any])["counters"] as! [String: Any] }
        func receiverCounters(_ i: Int) -> [String: Any] { receivers[i]["counters"] as! [String: Any] }
        func drops(_ i: Int) -> [String: Any] { receiverCounters(i)["drops"] as! [String: Any] }
    }

    /// Starts `ql-mcast receive` on host `i`, writing `out<i>` and `rx<i>.log`.
    func startReceiver(_ lab: LabHarness, _ i: Int, _ args: [String] = [], timeout: Int = 120) throws -> Process {
        try lab.start(
            on: i,
            [
                lab.binary.path, "receive", "--group", group, "--interface", lab.address(i), "--output",
                lab.path("out\(i)"),
            ]
                + args, timeout: timeout, log: "rx\(i).log")
    }

    /// Starts `ql-mcast send` of `object` on h0, writing `tx.log`.
    func startSender(_ lab: LabHarness, _ object: String, _ args: [String], timeout: Int = 120) throws -> Process {
        try lab.start(
            on: 0, [lab.binary.path, "send", object, "--group", group, "--interface", lab.address(0)] + args,
            timeout: timeout, log: "tx.log")
    }

    func senderCounters(_ lab: LabHarness) throws -> [String: Any] {
        ((try lab.json("tx.json"))["report"] as! [String: Any])["counters"] as! [String: Any]
    }

    /// Runs one transfer and checks what every transfer must satisfy: every receiver exits 0 with
    /// a byte-exact copy, wrote each object byte exactly once, and the sender copied no payload.
    func run(_ s: Scenario) throws -> Outcome {
        let hosts = s.receivers + 1 + (s.forge ? 1 : 0)
        let lab = try LabHarness(hosts: hosts, mtu: s.mtu)
        self.lab = lab
        let object = try lab.makeObject("object", size: s.size)
        let session = "\(UInt32.random(in: 1...UInt32.max))"
        let auth = (s.authKey.map { ["--auth-key", $0] } ?? []) + (s.encrypt ? ["--encrypt"] : [])
        if let pct = s.nftLossPercent { try lab.lab.lab(["loss", "1", "\(pct)"]) }
        if let rate = s.senderLink {
            _ = try lab.lab.exec(
                on: 0,
                [
                    "tc", "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", rate, "burst", "256kb", "latency",
                    "50ms",
                ])
        }
        func receiver(_ i: Int) throws -> Process {
            try startReceiver(
                lab, i,
                ["--session-id", session, "--loss", "\(s.loss)@\(i)", "--stats-json", lab.path("rx\(i).json")] + auth)
        }
        var procs = try (1...s.receivers).filter { !(s.lateJoiner && $0 == s.receivers) }.map(receiver)
        usleep(300_000)
        let sender = try startSender(
            lab, object.path,
            ["--session-id", session, "--receivers", "\(s.receivers)", "--stats-json", lab.path("tx.json")] + auth
                + s.senderArgs)
        var forger: Process?
        if s.forge {
            forger = try lab.start(
                on: hosts - 1, ["python3", "-c", s.forgery, group, session, "3.0", lab.address(0)], timeout: 30,
                log: "forge.log")
        }
        if s.lateJoiner {
            usleep(700_000)
            procs.append(try receiver(s.receivers))
        }
        let senderStatus = lab.wait(sender)
        let statuses = procs.map { lab.wait($0) }
        if let forger { _ = lab.wait(forger) }
        XCTAssertEqual(senderStatus, 0, "sender: \(lab.log("tx.log"))")
        for (i, st) in statuses.enumerated() {
            XCTAssertEqual(st, 0, "receiver \(i + 1): \(lab.log("rx\(i + 1).log"))")
        }
        let outcome = Outcome(
            sender: try lab.json("tx.json"), receivers: try (1...s.receivers).map { try lab.json("rx\($0).json") })
        for i in 1...s.receivers {
            XCTAssertEqual(try lab.sha256(lab.path("out\(i)")), object.sha, "receiver \(i) copy differs")
            XCTAssertEqual(outcome.receivers[i - 1]["copiesPerByte"] as? Double, 1.0, "receiver \(i) copies per byte")
        }
        XCTAssertEqual(outcome.senderCounters["payloadBytesCopied"] as? Int, 0)
        return outcome
    }

    /// Repairs must be explained by loss: the sender never sends more fresh repair symbols than
    /// the receivers together lost (a block whose parity ran out is answered by a full round of
    /// its sources, counted apart as repeats), and if anyone lost anything, NAKs were sent and
    /// answered.
    func checkRepairsExplainedByLoss(_ o: Outcome) {
        let gaps = o.receivers.indices.map { o.receiverCounters($0)["sequenceGaps"] as! Int }.reduce(0, +)
        let repairs = (o.senderCounters["repairSymbols"] as! Int) - (o.senderCounters["repairRepeats"] as! Int)
        let naks = o.receivers.indices.map { o.receiverCounters($0)["naksSent"] as! Int }.reduce(0, +)
        XCTAssertLessThanOrEqual(repairs, gaps, "repairs \(repairs) exceed the \(gaps) datagrams receivers lost")
        if gaps > 0 {
            XCTAssertGreaterThan(naks + (o.senderCounters["proactiveParity"] as! Int), 0)
        }
        if naks > 0 { XCTAssertGreaterThan(repairs, 0, "NAKs were sent but never answered") }
    }

    func testFourReceiversWithoutLossGetByteExactCopies() throws {
        let o = try run(Scenario())
        checkRepairsExplainedByLoss(o)
    }

    func testFivePercentRandomLossIsRepaired() throws {
        let o = try run(Scenario(loss: "random:0.05"))
        checkRepairsExplainedByLoss(o)
        let injected = o.receivers.indices.map { o.drops($0)["injected-loss"] as! Int }
        XCTAssert(injected.allSatisfy { $0 > 5_000 }, "loss was injected: \(injected)")
        XCTAssertGreaterThan(o.senderCounters["repairSymbols"] as! Int, 0)
    }

    func testTwentyPercentRandomLossIsRepaired() throws {
        let o = try run(Scenario(loss: "random:0.20"))
        checkRepairsExplainedByLoss(o)
        let decoded = o.receivers.indices.map { o.receiverCounters($0)["blocksDecoded"] as! Int }
        XCTAssert(decoded.allSatisfy { $0 > 100 }, "FEC rebuilt blocks at every receiver: \(decoded)")
    }

    func testBurstLossIsRepaired() throws {
        let o = try run(Scenario(loss: "burst:0.05:20"))
        checkRepairsExplainedByLoss(o)
    }

    func testLateJoinerGetsTheBlocksItMissed() throws {
        let o = try run(Scenario(lateJoiner: true))
        let late = o.receiverCounters(3)
        // It joined after the start: what it lacked came as repair (further passes), fresh parity.
        XCTAssertGreaterThan(late["repairSymbols"] as! Int, 1_000)
        XCTAssertGreaterThan(late["naksSent"] as! Int, 0)
    }

    func testRealNetworkLossFromNftablesIsRepaired() throws {
        let o = try run(Scenario(receivers: 2, size: 64 << 20, nftLossPercent: 5))
        XCTAssertGreaterThan(o.receiverCounters(0)["sequenceGaps"] as! Int, 500, "nftables dropped datagrams")
        XCTAssertEqual(o.drops(0)["injected-loss"] as? Int, 0)
        checkRepairsExplainedByLoss(o)
    }

    func testForgedDatagramsAreRejectedWhenAuthenticated() throws {
        let key = String(repeating: "5a", count: 32)
        let o = try run(
            Scenario(receivers: 2, size: 64 << 20, authKey: key, forge: true, senderArgs: ["--rate", "300m"]))
        let rejected = (0..<2).map { o.drops($0)["authentication-failed"] as! Int }
        XCTAssert(rejected.allSatisfy { $0 > 100 }, "forged datagrams reached and were rejected: \(rejected)")
    }

    func testEncryptedSessionWithLossIsRepairedAndForgeriesRejected() throws {
        let key = String(repeating: "3c", count: 32)
        let o = try run(
            Scenario(
                receivers: 2, size: 64 << 20, loss: "random:0.05", authKey: key, encrypt: true, forge: true,
                senderArgs: ["--rate", "300m"]))
        checkRepairsExplainedByLoss(o)
        let rejected = (0..<2).map { o.drops($0)["authentication-failed"] as! Int }
        XCTAssert(rejected.allSatisfy { $0 > 100 }, "forged datagrams reached and were rejected: \(rejected)")
        XCTAssertGreaterThan(o.senderCounters["repairSymbols"] as! Int, 0, "repairs were sealed and opened too")
    }

    /// A plain session's receivers take payloads straight into their place in the file
    /// (`docs/PROTOCOL.md`, *Placed receive*). A hostile host's datagrams — another session's
    /// symbols of exactly the expected size (they land in predicted places), another object's,
    /// garbage of any length — and real loss that shifts the runs (nftables on h1) must leave
    /// every copy byte-exact: what lands in a free place is overwritten, never taken.
    func testAHostileHostCannotCorruptAPlacedReceive() throws {
        let o = try run(
            Scenario(
                receivers: 2, size: 64 << 20, loss: "random:0.03", forge: true, forgery: Self.foreignForgerScript,
                senderArgs: ["--rate", "300m"], nftLossPercent: 3))
        checkRepairsExplainedByLoss(o)
        for i in 0..<2 {
            let c = o.receiverCounters(i)
            XCTAssertGreaterThan(c["payloadBytesInPlace"] as! Int, 32 << 20, "receiver \(i + 1) received in place")
            let d = o.drops(i)
            let refused = ["foreign-session", "foreign-object", "bad-magic", "too-short", "bad-length"].map {
                d[$0] as! Int
            }
            XCTAssertGreaterThan(refused.reduce(0, +), 100, "receiver \(i + 1) refused the forgeries: \(d)")
            XCTAssertGreaterThan(d["foreign-session"] as! Int, 0, "receiver \(i + 1): \(d)")
        }
        XCTAssertGreaterThan(o.receiverCounters(0)["payloadsMoved"] as! Int, 0, "h1's shifted runs were moved")
    }

    /// A link slower than the sender's rate (a shaped NIC) drops in the sender's own queue: the
    /// kernel says so (`IP_RECVERR`) and the sender waits and sends again, so nothing is lost on
    /// its own host and no receiver must ask for it (without this, 8.5 % of the datagrams were
    /// repair at 0 % network loss on a 1 Gbit/s link: `docs/PERFORMANCE.md`, session 17).
    func testASenderOnASlowerLinkIsPushedBackInsteadOfLosingDatagrams() throws {
        let o = try run(Scenario(receivers: 2, size: 32 << 20, senderLink: "200mbit"))
        XCTAssertGreaterThan(o.sender["localDrops"] as! Int, 0, "the shaped link pushed back")
        let c = o.senderCounters
        // The session's own counters carry them too (what ql-mcastd's status and metrics show).
        XCTAssertEqual(c["localDrops"] as? Int, o.sender["localDrops"] as? Int)
        let data = c["dataSymbols"] as! Int
        XCTAssertLessThanOrEqual(c["repairSymbols"] as! Int, data / 100, "repair at 0 % network loss: \(c)")
        checkRepairsExplainedByLoss(o)
    }

    /// A sender that asks the kernel for its send errors (`IP_RECVERR`, for the push-back) also
    /// hears ICMP errors about its stream — which any host can forge. A hostile host sending
    /// port/host/net unreachable, fragmentation needed, time exceeded and parameter problems that
    /// quote the session's datagrams must not stop the sender or cost a receiver its copy.
    func testForgedICMPErrorsAboutTheStreamDoNotStopTheSender() throws {
        let o = try run(
            Scenario(
                receivers: 2, size: 64 << 20, forge: true, forgery: Self.icmpForgerScript,
                senderArgs: ["--rate", "300m"]))
        XCTAssertGreaterThan(o.sender["reportedErrors"] as! Int, 0, "the forged errors reached the sender")
        XCTAssertEqual(o.senderCounters["reportedErrors"] as? Int, o.sender["reportedErrors"] as? Int)
        checkRepairsExplainedByLoss(o)
    }

    func testReceiverWithoutMulticastFailsWithClearError() throws {
        let lab = try LabHarness(hosts: 2)
        self.lab = lab
        try lab.lab.lab(["no-multicast", "1"])
        let object = try lab.makeObject("object", size: 1 << 20)
        let rx = try startReceiver(lab, 1, ["--join-timeout", "2"], timeout: 30)
        let tx = try startSender(lab, object.path, ["--linger", "3"], timeout: 30)
        XCTAssertNotEqual(lab.wait(rx), 0)
        XCTAssert(lab.log("rx1.log").contains("no session announced"), lab.log("rx1.log"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: lab.path("out1")), "no partial file is left behind")
        XCTAssertEqual(lab.wait(tx), 0)
    }

    func testJumboSymbolsAtMTU9000WithLoss() throws {
        let o = try run(
            Scenario(
                receivers: 2, size: 64 << 20, loss: "random:0.05", senderArgs: ["--symbol-size", "8900"], mtu: 9000))
        checkRepairsExplainedByLoss(o)
        XCTAssertEqual(o.senderCounters["dataSymbols"] as? Int, (64 << 20 + 8_899) / 8_900)
    }

    func testReceiverThatCannotKeepUpIsDroppedWithoutStallingTheOthers() throws {
        let lab = try LabHarness(hosts: 4)
        self.lab = lab
        let object = try lab.makeObject("object", size: 64 << 20)
        let rx = try (1...3).map { i in
            try startReceiver(lab, i, ["--loss", i == 3 ? "random:0.75@3" : "none"], timeout: 90)
        }
        usleep(300_000)
        let tx = try startSender(
            lab, object.path, ["--receivers", "3", "--rate", "100m", "--stats-json", lab.path("tx.json")], timeout: 90)
        XCTAssertNotEqual(lab.wait(tx), 0, "the sender reports that one receiver did not complete")
        XCTAssert(lab.log("tx.log").contains("only 2 of 3 receivers completed"), lab.log("tx.log"))
        XCTAssertEqual(lab.wait(rx[0]), 0, lab.log("rx1.log"))
        XCTAssertEqual(lab.wait(rx[1]), 0, lab.log("rx2.log"))
        XCTAssertNotEqual(lab.wait(rx[2]), 0)
        XCTAssert(lab.log("rx3.log").contains("dropped this receiver"), lab.log("rx3.log"))
        for i in 1...2 { XCTAssertEqual(try lab.sha256(lab.path("out\(i)")), object.sha) }
        XCTAssertEqual(try senderCounters(lab)["receiversDropped"] as? Int, 1)
    }

    func testReceiverKilledMidTransferDoesNotHoldUpTheOthers() throws {
        let lab = try LabHarness(hosts: 4)
        self.lab = lab
        let object = try lab.makeObject("object", size: 64 << 20)
        let rx = try (1...3).map { try startReceiver(lab, $0, timeout: 60) }
        usleep(300_000)
        let tx = try startSender(
            lab, object.path, ["--receivers", "3", "--rate", "150m", "--stats-json", lab.path("tx.json")], timeout: 60)
        usleep(1_000_000)
        try lab.lab.signal(rx[2], SIGKILL)
        let started = Date()
        XCTAssertNotEqual(lab.wait(tx), 0)
        XCTAssertLessThan(Date().timeIntervalSince(started), 20, "the sender stopped waiting for the dead receiver")
        XCTAssert(lab.log("tx.log").contains("only 2 of 3 receivers completed"), lab.log("tx.log"))
        for i in 1...2 {
            XCTAssertEqual(lab.wait(rx[i - 1]), 0, lab.log("rx\(i).log"))
            XCTAssertEqual(try lab.sha256(lab.path("out\(i)")), object.sha)
        }
        XCTAssertEqual(try senderCounters(lab)["receiversSilent"] as? Int, 1)
    }

    func testStatusOfARunningSenderOverTheControlChannel() throws {
        let lab = try LabHarness(hosts: 3)
        self.lab = lab
        let object = try lab.makeObject("object", size: 64 << 20)
        let rx = try (1...2).map { try startReceiver(lab, $0, timeout: 60) }
        usleep(300_000)
        let tx = try startSender(
            lab, object.path, ["--receivers", "2", "--rate", "150m", "--control", "127.0.0.1:7010"], timeout: 60)
        usleep(1_200_000)
        let status = try lab.start(
            on: 0, [lab.binary.path, "status", "127.0.0.1:7010", "--json"], timeout: 10, log: "status.json")
        XCTAssertEqual(lab.wait(status), 0, lab.log("status.json"))
        let snapshot = try lab.json("status.json")
        XCTAssertEqual(snapshot["objectSize"] as? Int, 64 << 20)
        XCTAssertEqual((snapshot["receivers"] as? [Any])?.count, 2, "both receivers known by their STATUS reports")
        let passBlocks = snapshot["passBlocks"] as? Int ?? 0
        XCTAssert(passBlocks > 0 && passBlocks < 365, "mid-transfer snapshot: pass at block \(passBlocks)")
        let prom = try lab.start(
            on: 0, [lab.binary.path, "status", "127.0.0.1:7010", "--prometheus"], timeout: 10, log: "prom.txt")
        XCTAssertEqual(lab.wait(prom), 0)
        XCTAssert(lab.log("prom.txt").contains("# TYPE qlmcast_sender_datagrams_sent_total counter"))
        XCTAssertEqual(lab.wait(tx), 0, lab.log("tx.log"))
        for p in rx { XCTAssertEqual(lab.wait(p), 0) }
        XCTAssertEqual(try lab.sha256(lab.path("out1")), object.sha)
    }

    /// Sends the sending host (argv 4) ICMP errors quoting a datagram "from" the group's
    /// address and port: the lookup that finds the sender's socket (bound to group:port).
    static let icmpForgerScript = """
        import socket, struct, sys, time
        group, port = sys.argv[1].split(':'); port = int(port); secs = float(sys.argv[3]); head = sys.argv[4]
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        def csum(b):
            if len(b) % 2: b += b'\\0'
            t = sum(struct.unpack('!%dH' % (len(b) // 2), b)); t = (t >> 16) + (t & 0xffff); t += t >> 16
            return (~t) & 0xffff
        kinds = [(3, 3), (3, 1), (3, 0), (3, 4), (11, 0), (12, 0), (3, 2), (3, 13)]
        end = time.time() + secs; n = 0
        while time.time() < end:
            t, c = kinds[n % len(kinds)]
            ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 1500, n & 0xffff, 0, 1, 17, 0,
                             socket.inet_aton(group), socket.inet_aton(head))
            udp = struct.pack('!HHHH', port, port, 1480, 0)
            body = struct.pack('!BBHI', t, c, 0, 1400 if (t, c) == (3, 4) else 0) + ip + udp
            body = body[:2] + struct.pack('!H', csum(body)) + body[4:]
            s.sendto(body, (head, 0)); n += 1
            if n % 100 == 0: time.sleep(0.002)
        print('forged', n)
        """

    /// Sends what a plain session's placed receive must survive: DATA of another session with
    /// the expected length (it lands in predicted places), DATA of the session for another
    /// object, and garbage of random length.
    static let foreignForgerScript = """
        import os, random, socket, struct, sys, time
        group, port = sys.argv[1].split(':'); sid = int(sys.argv[2]); secs = float(sys.argv[3])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        end = time.time() + secs; n = 0
        while time.time() < end:
            block = random.randrange(0, 400); sym = random.randrange(0, 128); kind = n % 3
            if kind == 2:
                d = os.urandom(random.randrange(1, 1500))
            else:
                other = (sid + 1) % (1 << 32) if kind == 0 else sid
                obj = 1 if kind == 0 else 7
                d = struct.pack('>IBBHIIIHHII', 0x514C4D43, 1, 1, 0, other, obj, block, sym, 1440, n, 0)
                d += os.urandom(1440)
            s.sendto(d, (group, int(port))); n += 1
            if n % 200 == 0: time.sleep(0.01)
        print('forged', n)
        """

    /// Sends DATA datagrams with the session's id, valid headers, random payloads and random
    /// tags to the group for a few seconds.
    static let forgerScript = """
        import os, random, socket, struct, sys, time
        group, port = sys.argv[1].split(':'); sid = int(sys.argv[2]); secs = float(sys.argv[3])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        end = time.time() + secs; n = 0
        while time.time() < end:
            block = random.randrange(0, 400); sym = random.randrange(0, 128)
            hdr = struct.pack('>IBBHIIIHHII', 0x514C4D43, 1, 1, 2, sid, 1, block, sym, 1440, n, 0)
            s.sendto(hdr + os.urandom(1440) + os.urandom(16), (group, int(port))); n += 1
            if n % 200 == 0: time.sleep(0.01)
        print('forged', n)
        """
}
