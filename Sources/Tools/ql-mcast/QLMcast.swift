import ArgumentParser
import Foundation
import NIOConcurrencyHelpers
import Platform
import Transport

struct QLMcast: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ql-mcast",
        abstract: "Send or receive one file over reliable multicast (the transport engine's own tool).",
        discussion: HelpText.paragraphs(
            """
            The low-level tool of the ql-mcast engine: ql-mcastd and ql-mcast-client use the same engine
            with sessions handed out over the control channel. Use this one to test a network path,
            measure throughput, or move a file to many hosts by hand:

              head#  ql-mcast send image.img --group 239.255.1.1:30000 \\
                         --interface eth0 --receivers 3
              node#  ql-mcast receive --group 239.255.1.1:30000 \\
                         --interface eth0 --output image.img

            The receiver verifies the SHA-256 the sender announces and exits non-zero, naming the
            missing blocks, if it cannot complete the file.

            Exit status: 0 the transfer completed (receive: the file is complete and verified); 1 it
            failed, the message naming the fault or the missing blocks; 64 a mistake in the command line.
            """),
        subcommands: [SendCommand.self, ReceiveCommand.self, StatusCommand.self]
    )
}

/// Options shared by both directions.
struct GroupOptions: ParsableArguments {
    @Option(help: "Multicast group and port, GROUP:PORT (e.g. 239.255.1.1:30000).")
    var group: String

    @Option(help: "Local interface to join the group on and send from: its name (eth0) or its IPv4 address.")
    var interface: String

    @Option(
        help:
            "Session id (decimal). When omitted, send picks a random one and receive takes the first session announced."
    )
    var sessionID: UInt32?

    @Option(help: "Session key for per-datagram authentication, 32–128 hex digits (both ends must agree).")
    var authKey: String?

    @Flag(
        help: """
            Encrypt the symbols with AES-128-GCM under a key derived from --auth-key (both ends). Each \
            send draws a fresh salt, so reusing --auth-key does not reuse a nonce; control datagrams stay \
            readable and tagged.
            """)
    var encrypt = false

    @Option(
        name: [.customLong("loss"), .customLong("simulate-loss")],
        help: "Testing aid: drop datagrams with the engine's seeded model: \(LossModel.syntax).")
    var loss = "none"

    @Flag(help: "Disable UDP segmentation (GSO) / receive (GRO) offload.")
    var noOffload = false

    @Option(help: "Write the session's counters as JSON to this file at the end.")
    var statsJson: String?

    func endpoint() throws -> MulticastEndpoint { try MulticastEndpoint(parsing: group) }

    func interfaceAddress() throws -> IPv4Address {
        if let a = IPv4Address(interface) { return a }
        do {
            guard let a = IPv4Address(try NetworkInterface.resolve(interface).address) else {
                throw TransportError(.invalidArgument, "--interface '\(interface)' has no IPv4 address")
            }
            return a
        } catch let e as QlustarError {
            throw TransportError(.invalidArgument, "--interface: \(e.message)")
        }
    }

    func key() throws -> [UInt8]? {
        guard let authKey else {
            if encrypt { throw TransportError(.invalidArgument, "--encrypt needs --auth-key (the session key)") }
            return nil
        }
        do { return try PacketAuthenticator.key(hex: authKey) } catch {
            throw TransportError(
                .invalidArgument, error.message.replacingOccurrences(of: "session key", with: "--auth-key"))
        }
    }

    func socket(loopback: Bool = true, sender: Bool = false) throws -> MulticastSocket {
        var opts = SocketOptions(interface: try interfaceAddress())
        opts.loopback = loopback
        opts.localDropsPushBack = sender
        opts.segmentationOffload = !noOffload
        opts.receiveOffload = !noOffload
        return try MulticastSocket(endpoint: try endpoint(), options: opts)
    }

    func writeStats<T: Encodable>(_ value: T) throws {
        guard let statsJson else { return }
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(value).write(to: URL(fileURLWithPath: statsJson))
    }
}

struct SendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send a file to every receiver on the group, repairing what they report missing."
    )

    @Argument(help: "The file to send.") var file: String
    @OptionGroup var common: GroupOptions

    @Option(
        help:
            "Bytes per symbol (64–8960). Default fills MTU 1500: 1440, or 1424 with --auth-key (a 16-byte tag); 8900 suits MTU 9000."
    )
    var symbolSize: Int?
    @Option(help: "Source symbols per FEC block (k, 1–254).") var blockSymbols = 128
    @Option(help: "Proactive parity per block as a fraction of k (e.g. 0.05).") var parity = 0.0
    @Flag(inversion: .prefixedNo, help: "Adapt proactive parity to the loss receivers report.")
    var adaptiveParity = true
    @Option(help: "Sending rate in bit/s with k/m/g suffix (e.g. 2g), or 'unlimited'.") var rate = "unlimited"
    @Flag(
        inversion: .prefixedNo,
        help: "Slow down when receivers fall behind or the NAK rate climbs; speed up again when they catch up.")
    var adaptiveRate = true
    @Option(help: "End as soon as this many receivers have the file (0: end after --linger of silence).")
    var receivers = 0
    @Option(help: "Seconds of silence after the pass before ending (when --receivers is 0).") var linger = 2.0
    @Option(help: "Seconds after the pass to wait at most for slow receivers.") var maxLinger = 120.0
    @Flag(help: "Also deliver the stream to receivers on this same host (multicast loopback).")
    var loopback = false
    @Option(help: "Serve live status on this TCP address (HOST:PORT) for `ql-mcast status`.")
    var control: String?

    func run() throws {
        let file = try MappedFile.open(readingFrom: self.file)
        let digest = SHA256.hash(file.bytes)
        var config = SenderConfiguration(sessionID: common.sessionID ?? UInt32.random(in: 1...UInt32.max))
        config.name = URL(fileURLWithPath: self.file).lastPathComponent
        config.symbolSize = symbolSize ?? SenderConfiguration.defaultSymbolSize(authenticated: common.authKey != nil)
        config.sourceSymbols = blockSymbols
        config.proactiveParity = parity
        config.adaptiveParity = adaptiveParity
        config.rate = try Rate(parsing: rate)
        config.adaptiveRate = adaptiveRate
        config.expectedReceivers = receivers
        config.lingerNanos = UInt64(linger * 1e9)
        config.maxLingerNanos = UInt64(maxLinger * 1e9)
        config.authenticationKey = try common.key()
        config.encrypt = common.encrypt
        config.loss = try LossModel(parsing: common.loss)
        let socket = try common.socket(loopback: loopback, sender: true)
        let sender = try Sender(object: file.bytes, digest: digest, channel: socket, configuration: config)
        var server: ControlServer?
        if let control {
            let (host, port) = try hostPort(control)
            let latest = NIOLockedValueBox<SenderProgress?>(nil)
            sender.onProgress = { p in latest.withLockedValue { $0 = p } }
            server = try ControlServer.start(host: host, port: port) { request throws(ControlFailure) in
                guard request.op == "status" else {
                    throw ControlFailure(.unknownOperation, "ql-mcast send answers 'status' only, not '\(request.op)'")
                }
                guard let p = latest.withLockedValue({ $0 }) else {
                    throw ControlFailure(.busy, "the session is starting; ask again in a moment")
                }
                return Array((try? JSONEncoder().encode(p)) ?? Data())
            }
        }
        defer { server?.stop() }
        let cpu0 = MonotonicClock.processCPUSeconds()
        let report = try sender.run()
        let cpu = MonotonicClock.processCPUSeconds() - cpu0
        let c = report.counters
        let done = report.receivers.values.filter { $0.state == .complete }.count
        let mb = Double(file.mappedSize) / 1e6
        FileHandle.standardError.write(
            """
            ql-mcast send: \(self.file) (\(file.mappedSize) bytes, sha256 \(digest)) session \(config.sessionID)
              \(fmt(report.seconds))s, \(fmt(mb / max(report.seconds, 1e-9))) MB/s, wire/payload \(fmt(Double(c.wireBytes) / max(1, Double(c.objectBytes)), 3)), cpu \(fmt(cpu))s
              data \(c.dataSymbols) parity \(c.proactiveParity) repair \(c.repairSymbols) naks \(c.naksReceived) (entries \(c.nakEntries), merged \(c.nakEntriesMerged))
              receivers complete \(done)/\(report.receivers.count), dropped \(c.receiversDropped), gso \(socket.gsoEnabled ? "on" : "off")

            """.data(using: .utf8)!)
        try common.writeStats(
            SendStats(
                report: report, cpuSeconds: cpu, digest: digest, localDrops: socket.localDrops,
                reportedErrors: socket.reportedErrors))
        if receivers > 0 && done < receivers {
            throw ExitMessage("only \(done) of \(receivers) receivers completed")
        }
    }
}

struct ReceiveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "receive",
        abstract: "Receive a file from the group, verify its SHA-256, and write it."
    )

    @OptionGroup var common: GroupOptions
    @Option(name: .shortAndLong, help: "Where to write the file (written in place, cut to size at the end).")
    var output: String
    @Option(help: "Seconds to wait for the session to be announced.") var joinTimeout = 30.0
    @Option(help: "Seconds of sender silence before giving up.") var idleTimeout = 10.0
    @Option(
        help:
            "NAK rounds per block before giving up (a round asked again at once because part of the block's repair was lost does not count)."
    ) var maxRounds = 40
    @Flag(
        help: """
            Copy each payload from a receive buffer into the file instead of receiving it straight into \
            its place (the default with GRO on sessions without --auth-key); for comparisons.
            """)
    var noPlace = false

    func run() throws {
        var config = ReceiverConfiguration()
        config.sessionID = common.sessionID
        config.authenticationKey = try common.key()
        config.encrypted = common.encrypt
        config.loss = try LossModel(parsing: common.loss)
        config.joinTimeoutNanos = UInt64(joinTimeout * 1e9)
        config.idleTimeoutNanos = UInt64(idleTimeout * 1e9)
        config.maxRepairRounds = maxRounds
        config.placePayloads = !noPlace
        let socket = try common.socket()
        var file: MappedFile?
        let path = output
        let receiver = try Receiver(channel: socket, configuration: config) { announce throws(TransportError) in
            let f = try MappedFile.create(writingTo: path, size: announce.layout.paddedSize)
            file = f
            return f.mutableBytes
        }
        let t0 = MonotonicClock.nanoseconds()
        let cpu0 = MonotonicClock.processCPUSeconds()
        var failure: TransportError?
        do { _ = try receiver.run() } catch { failure = error }
        let seconds = Double(MonotonicClock.nanoseconds() - t0) / 1e9
        let cpu = MonotonicClock.processCPUSeconds() - cpu0
        let size = receiver.announce?.layout.objectSize ?? 0
        if failure == nil { try file?.finish(size: Int(size)) }
        let c = receiver.counters
        try common.writeStats(
            ReceiveStats(
                counters: c, seconds: seconds, cpuSeconds: cpu, objectSize: size,
                copiesPerByte: c.copiesPerByte(objectSize: size), digest: receiver.announce?.digest,
                error: failure?.message, errorCode: failure?.code.rawValue, gro: socket.groEnabled,
                messages: socket.messagesReceived, socketDatagrams: socket.datagramsReceived))
        if let failure {
            file = nil
            try? FileSystem.removeTree(path)
            throw ExitMessage("ql-mcast receive: \(failure.message)")
        }
        FileHandle.standardError.write(
            """
            ql-mcast receive: \(path) (\(size) bytes, sha256 \(receiver.announce!.digest) verified)
              \(fmt(seconds))s, \(fmt(Double(size) / 1e6 / max(seconds, 1e-9))) MB/s, cpu \(fmt(cpu))s, copies/byte \(fmt(c.copiesPerByte(objectSize: size), 3))
              data \(c.dataSymbols) parity \(c.paritySymbols) repair \(c.repairSymbols) decoded blocks \(c.blocksDecoded) naks \(c.naksSent) suppressed \(c.nakSuppressedByNak + c.nakSuppressedByRepair)
              drops \(c.drops.summary.isEmpty ? "none" : c.drops.summary)

            """.data(using: .utf8)!)
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a running sender's session: progress, rate, receivers, counters.",
        discussion: "Asks the control port given to `ql-mcast send --control HOST:PORT`."
    )

    @Argument(help: "The sender's control address, HOST:PORT.") var control: String
    @Flag(help: "Print the raw JSON snapshot.") var json = false
    @Flag(help: "Print Prometheus text exposition format.") var prometheus = false
    @Option(help: "Seconds to wait for an answer.") var timeout = 5.0

    func run() throws {
        let (host, port) = try hostPort(control)
        let client = try ControlClient(host: host, port: port, timeout: timeout)
        let body = try client.call(ControlRequest(op: "status"), timeout: timeout)
        if json {
            print(String(decoding: body, as: UTF8.self))
            return
        }
        let p = try JSONDecoder().decode(SenderProgress.self, from: Data(body))
        if prometheus {
            print(PrometheusText.render(p), terminator: "")
            return
        }
        let c = p.counters
        print("session \(p.sessionID)  \(p.name)  \(p.objectSize) bytes  sha256 \(p.digest)")
        print(
            "  pass \(p.passBlocks)/\(p.blocks) blocks, \(p.pendingRepairBlocks) awaiting repair, \(fmt(p.elapsedSeconds)) s"
        )
        print("  rate \(p.rate), proactive parity \(fmt(p.proactiveParity * 100, 1)) %")
        print(
            "  sent \(c.datagramsSent) datagrams (data \(c.dataSymbols), parity \(c.proactiveParity), repair \(c.repairSymbols))"
        )
        print(
            "  NAKs \(c.naksReceived) (entries \(c.nakEntries), merged \(c.nakEntriesMerged)), drops \(c.drops.summary.isEmpty ? "none" : c.drops.summary)"
        )
        print("  receivers: \(p.receivers.count)")
        for r in p.receivers {
            print(
                "    \(r.id)  \(r.state)  blocks \(r.blocksComplete)/\(p.blocks)  loss \(fmt(r.recentLoss * 100, 1)) %  overruns \(r.overruns)"
            )
        }
    }
}

/// Splits `HOST:PORT`.
func hostPort(_ text: String) throws -> (String, Int) {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
        (1...65_535).contains(port)
    else { throw TransportError(.invalidArgument, "'\(text)' is not HOST:PORT") }
    return (String(text[..<colon]), port)
}

struct SendStats: Encodable {
    var report: SenderReport
    var cpuSeconds: Double
    var digest: SHA256Digest
    /// Sends this host's own queue refused and that were sent again (a link slower than the rate).
    var localDrops: UInt64
    /// Errors the network reported about earlier sends (ICMP; forgeable), taken and ignored.
    var reportedErrors: UInt64
}

struct ReceiveStats: Encodable {
    var counters: ReceiverCounters
    var seconds: Double
    var cpuSeconds: Double
    var objectSize: UInt64
    var copiesPerByte: Double
    var digest: SHA256Digest?
    var error: String?
    var errorCode: String?
    var gro: Bool
    /// recvmmsg messages and the datagrams they carried (GRO coalescing = datagrams / messages).
    var messages: UInt64
    var socketDatagrams: UInt64
}

/// An error whose message is printed as is, exit status 1.
struct ExitMessage: Error, CustomStringConvertible {
    let description: String
    init(_ s: String) { description = s }
}

func fmt(_ x: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", x) }
