import Foundation
import LabSupport
import LabTestSupport
import XCTest

/// ql-mcast-capture on the test hosts: a real transfer with 5 % loss at one receiver, captured
/// live on another host's interface; what it counts equals the sender's own counters; tshark
/// reads the file it wrote; a cut or corrupt file is a clear error.
final class CaptureLabTests: XCTestCase {
    var lab: LabHarness?

    override func tearDown() {
        lab?.tearDown()
        lab = nil
    }

    private let group = "239.255.7.1:30700"

    func testCountsOfACapturedTransferMatchTheEngineAndTsharkReadsTheFile() throws {
        let l = try LabHarness(hosts: 3, prefix: "qlp")
        lab = l
        let capture = try LabHarness.releaseBinary("ql-mcast-capture").path
        let object = try l.makeObject("object", size: 24 << 20)
        let pcap = l.path("capture.pcap")
        // Capture on h2's interface: the switch floods the group, and h1's NAKs are multicast.
        let watcher = try l.start(
            on: 2, [capture, "--interface", "eth0", "--json", "--write", pcap], timeout: 60, log: "capture.json")
        usleep(800_000)
        let session = "4242"
        let receivers = try [1, 2].map { i in
            try l.start(
                on: i,
                [
                    l.binary.path, "receive", "--group", group, "--interface", l.address(i), "--output",
                    l.path("out\(i)"), "--session-id", session,
                ]
                    + (i == 1 ? ["--loss", "random:0.05@1"] : []), timeout: 60, log: "rx\(i).log")
        }
        usleep(300_000)
        let sender = try l.start(
            on: 0,
            [
                l.binary.path, "send", object.path, "--group", group, "--interface", l.address(0), "--session-id",
                session, "--receivers", "2",
                "--rate", "400m", "--stats-json", l.path("tx.json"),
            ], timeout: 60, log: "tx.log")
        XCTAssertEqual(l.wait(sender, seconds: 60), 0, l.log("tx.log"))
        for (i, r) in receivers.enumerated() { XCTAssertEqual(l.wait(r, seconds: 30), 0, l.log("rx\(i + 1).log")) }
        // Stopped as an administrator stops it (Ctrl-C): it writes its file and prints what it saw.
        usleep(500_000)
        try l.lab.signal(watcher, SIGINT)
        XCTAssertEqual(l.wait(watcher, seconds: 10), 0, l.log("capture.json"))

        let tx = ((try l.json("tx.json"))["report"] as! [String: Any])["counters"] as! [String: Any]
        let analysis = try JSONSerialization.jsonObject(with: Data(l.log("capture.json").utf8)) as! [String: Any]
        let sessions = analysis["sessions"] as! [[String: Any]]
        XCTAssertEqual(sessions.count, 1)
        let s = sessions[0]
        XCTAssertEqual(s["sessionID"] as? Int, 4242)
        XCTAssertEqual(s["sender"] as? String, l.address(0))
        XCTAssertEqual(s["data"] as? Int, tx["dataSymbols"] as? Int)
        XCTAssertEqual(s["repairs"] as? Int, tx["repairSymbols"] as? Int)
        XCTAssertEqual((s["parity"] as? Int).map { $0 - (s["repairs"] as? Int ?? 0) }, tx["proactiveParity"] as? Int)
        XCTAssertEqual(s["naks"] as? Int, tx["naksReceived"] as? Int)
        XCTAssertEqual(s["announces"] as? Int, tx["announces"] as? Int)
        XCTAssertEqual(s["fins"] as? Int, tx["fins"] as? Int)
        XCTAssertGreaterThan(s["naks"] as? Int ?? 0, 0, "5 % loss at h1 makes it NAK")
        // The lossy receiver is seen by its NAKs, with a loss estimate near what was injected.
        let lossy = try XCTUnwrap(
            (s["receivers"] as! [[String: Any]]).first { $0["address"] as? String == l.address(1) })
        let estimate = lossy["lossEstimate"] as! Double
        XCTAssertGreaterThan(estimate, 0.02, "\(lossy)")
        XCTAssertLessThan(estimate, 0.10, "\(lossy)")
        XCTAssertEqual(analysis["malformed"] as? [String: Int], [:])

        // tshark reads the file ql-mcast-capture wrote, frame for frame as ql-mcast-capture reads it back,
        // and reading it back gives the same sessions and counts as the live capture.
        let tshark = try InstalledTool.path("tshark", "tshark")
        // (Lab.run merges standard error, where tshark warns about running as root: count frame numbers only.)
        let listed = try Lab.run(tshark, ["-r", pcap, "-T", "fields", "-e", "frame.number"]).split(separator: "\n")
            .filter { Int($0) != nil }.count
        let reread = try ReleaseTool.run("ql-mcast-capture", ["--read", pcap, "--json"], environment: [:])
        XCTAssertEqual(reread.status, 0, reread.stderr)
        let again = try JSONSerialization.jsonObject(with: Data(reread.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(listed, again["packets"] as? Int)
        XCTAssertEqual(listed, analysis["packets"] as? Int)
        let first = (again["sessions"] as! [[String: Any]])[0]
        for key in ["data", "parity", "repairs", "naks", "announces", "fins"] {
            XCTAssertEqual(first[key] as? Int, s[key] as? Int, key)
        }

        // The Wireshark dissector (contrib/wireshark) decodes every datagram of the file, GSO
        // super-packets included, with no malformed-packet errors.
        let lua = LabHarness.repositoryRoot.appendingPathComponent("contrib/wireshark/ql-mcast.lua").path
        let types = try Lab.run(tshark, ["-X", "lua_script:" + lua, "-r", pcap, "-T", "fields", "-e", "qlmc.type"])
            .split(separator: "\n").filter { $0.first?.isNumber == true }.flatMap { $0.split(separator: ",") }
        let datagrams = ["data", "parity", "naks", "announces", "fins", "statusReports"].map { s[$0] as? Int ?? 0 }
            .reduce(0, +)
        XCTAssertEqual(types.count, datagrams)
        XCTAssertEqual(types.filter { $0 == "3" }.count, s["naks"] as? Int)
        let verbose = try Lab.run(tshark, ["-X", "lua_script:" + lua, "-r", pcap, "-V"])
        XCTAssertFalse(verbose.contains("Malformed"), "tshark found malformed packets")
        XCTAssertTrue(verbose.contains("Symbols needed: "), "NAK entries decoded")
        XCTAssertTrue(verbose.contains("Object name: object"), "ANNOUNCE decoded")

        // A file cut in the middle of a packet: a clear error, exit 3, what came before still counted.
        let cut = l.path("cut.pcap")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: pcap))
        try bytes.prefix(bytes.count / 2 + 7).write(to: URL(fileURLWithPath: cut))
        let truncated = try ReleaseTool.run("ql-mcast-capture", ["--read", cut], environment: [:])
        XCTAssertEqual(truncated.status, 3)
        XCTAssertTrue(truncated.stderr.hasPrefix("Error: \(cut): truncated dump file"), truncated.stderr)
        XCTAssertTrue(truncated.stdout.contains("session 0x00001092"), truncated.stdout)
        let garbage = l.path("garbage.pcap")
        try Data("not a capture at all".utf8).write(to: URL(fileURLWithPath: garbage))
        let notPcap = try ReleaseTool.run("ql-mcast-capture", ["--read", garbage], environment: [:])
        XCTAssertEqual(notPcap.status, 2)
        XCTAssertTrue(notPcap.stderr.hasPrefix("Error: cannot read the capture \(garbage): "), notPcap.stderr)
    }
}
