import ArgumentParser
import Capture
import Foundation
import Platform

#if canImport(Glibc)
    import Glibc
#endif

/// Set by SIGINT/SIGTERM: a live capture stops, writes its file and prints what it saw.
nonisolated(unsafe) var stopRequested: sig_atomic_t = 0

struct QLMcastCapture: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ql-mcast-capture",
        abstract:
            "Capture or read ql-mcast traffic and report per session: sender, receivers, data, parity, NAKs, repairs, loss.",
        discussion: HelpText.paragraphs(
            """
            Live on an interface (promiscuous; root) or from a pcap/pcapng file. Decodes the protocol of
            docs/PROTOCOL.md and prints a summary per session; --json for machines; --write saves what it
            captured as a standard pcap (tshark and Wireshark read it; contrib/wireshark/ql-mcast.lua
            dissects it).

              ql-mcast-capture --interface eth0 --duration 30 --write boot.pcap
              ql-mcast-capture --read boot.pcap --json
              ql-mcast-capture --interface eth0 --follow    a table, every second

            The default filter keeps UDP datagrams that start with the protocol's magic ("QLMC");
            --filter 'udp' also counts what is not ours (foreign).
            A live capture runs until --duration, --count, or Ctrl-C / SIGTERM, then prints its summary.
            Exit status: 0; 1 bad arguments or filter; 2 the interface or file cannot be read; 3 a corrupt file.
            """))

    @Option(help: "Capture live on this interface: its name (eth0) or its IPv4 address.") var interface: String?
    @Option(help: "Read this pcap or pcapng file.") var read: String?
    @Option(help: "BPF filter.") var filter = "udp and udp[8:4] = 0x514c4d43"
    @Option(help: "Save the packets read to this pcap file.") var write: String?
    @Option(help: "Live: stop after this many seconds.") var duration: Double?
    @Option(help: "Stop after this many packets.") var count: Int?
    @Flag(help: "Print the analysis as JSON.") var json = false
    @Flag(help: "Live: redraw the summary every second.") var follow = false

    func validate() throws {
        guard (interface == nil) != (read == nil) else {
            throw ValidationError("give exactly one of --interface and --read")
        }
        guard !follow || interface != nil else { throw ValidationError("--follow needs --interface") }
        if let duration, duration <= 0 { throw ValidationError("--duration must be positive") }
    }

    func run() throws {
        let source: PcapSource
        do {
            source =
                try interface.map { name in
                    // An address names the interface that has it.
                    let device = NetworkInterface.list().first { $0.address == name }?.name ?? name
                    return try PcapSource.live(device)
                } ?? PcapSource.file(read!)
            try source.filter(filter)
            if let write { try source.save(to: write) }
        } catch let error as QlustarError {
            FileHandle.standardError.write(Data("Error: \(error.message)\n".utf8))
            throw ExitCode(error.code == .invalidArgument ? 1 : 2)
        }
        signal(SIGINT) { _ in stopRequested = 1 }
        signal(SIGTERM) { _ in stopRequested = 1 }
        let analyzer = CaptureAnalyzer()
        let started = Date()
        var lastDraw = Date()
        var seen = 0
        do {
            while stopRequested == 0,
                try source.next({
                    analyzer.add($0, linkType: source.linkType)
                    seen += 1
                })
            {
                if let count, seen >= count { break }
                if let duration, Date().timeIntervalSince(started) >= duration { break }
                if follow, Date().timeIntervalSince(lastDraw) >= 1 {
                    print("\u{1B}[H\u{1B}[2J" + CaptureText.table(analyzer.result), terminator: "")
                    lastDraw = Date()
                }
            }
        } catch {
            source.flush()
            FileHandle.standardError.write(Data("Error: \(error.message)\n".utf8))
            if json {
                print(try CaptureText.json(analyzer.result))
            } else {
                print(CaptureText.table(analyzer.result), terminator: "")
            }
            throw ExitCode(3)
        }
        source.flush()
        let result = analyzer.result
        if json { print(try CaptureText.json(result)) } else { print(CaptureText.table(result), terminator: "") }
    }
}
