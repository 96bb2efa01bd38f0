import ArgumentParser
import FoundationEssentials
import ImageService
import Logging
import Platform
import Transport

#if canImport(Glibc)
    import Glibc
#endif

@main
struct QLMcastClient: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ql-mcast-client",
        abstract:
            "Fetch a node OS image from ql-mcastd by multicast (unicast fallback), verify it, lay out the union root.",
        discussion: HelpText.paragraphs(
            """
            Run by the initrd's /init (boot step 4). Asks ql-mcastd for the image, receives it together
            with every node that asked at the same time, fetches over unicast only what multicast did
            not deliver (or everything, with --unicast), and verifies the SHA-256 before the file
            appears at --output (written as OUTPUT.partial until then). With --union DIR it then lays
            out DIR/union/image (unpacked, or mounted with --mount), DIR/union/rw and DIR/union/chroot.

              ql-mcast-client --server 192.168.52.1 --image compute \\
                  --output /tmp/compute.img --union /

            Exit status:
              0  image received and verified (and the union root laid out, with --union)
             64  bad arguments
              2  the server does not serve this image, or refused the request
                 (e.g. not-registered: this host is not a registered node, or not
                 with this MAC or token)
              3  verification failed (twice): nothing was written
              4  the server could not be reached, or the transfer failed
              5  the union root could not be laid out
            Log: <root>/var/log/qlustar/ql-mcast-client.log (a line per 10 % when not on a terminal).
            """)
    )

    @Option(
        help: ArgumentHelp(
            "ql-mcastd's control address HOST[:PORT] (port \(DaemonConfiguration.defaultPort) if omitted); with two head nodes A,B.",
            discussion:
                "The first head that answers is used. When it is lost mid-transfer the client goes on at the next: a new session there while much of the image is still to come, else only the missing ranges by unicast, the SHA-256 carried over. The log and --report-json name every switch and the bytes from each head."
        ))
    var server: String
    @Option(help: "Name of the image to fetch (the server's NAME.img).") var image: String
    @Option(name: .shortAndLong, help: "Where to write the verified image.") var output: String
    @Option(
        help:
            "Local interface to receive multicast on: its name (eth0) or its IPv4 address (default: the one routing picks toward the server)."
    )
    var interface: String?
    @Option(
        help: "The cluster CA (PEM): talk TLS to ql-mcastd and accept only a server certificate it signed for --server."
    )
    var ca: String?
    @Option(help: "Also lay out the union root under DIR/union (image, rw, chroot).") var union: String?
    @Flag(help: "With --union: mount the image (squashfs, loop) and a tmpfs instead of unpacking (needs root).")
    var mount = false
    @Flag(help: "Skip multicast: fetch the whole image over the control connection.") var unicast = false
    @Option(help: "Seconds to wait for the multicast session to reach this node after it starts, before falling back.")
    var multicastTimeout = 10.0
    @Option(help: "Seconds to keep trying to reach the server and get a ticket.") var serverTimeout = 60.0
    @Option(
        help: ArgumentHelp(
            "Nodes of this boot wave that will ask for the image, this one included.",
            discussion:
                "The session starts as soon as that many nodes have asked (the largest number any of them gave), instead of at the end of ql-mcastd's grouping window (--window), which stays the upper bound. /init passes ql.expect=N from the kernel command line."
        ))
    var expect: Int?
    @Option(
        help: ArgumentHelp(
            "Testing aid: drop received datagrams with the engine's seeded model: \(LossModel.syntax).",
            discussion:
                "P is the loss fraction (1 = multicast never arrives), LENGTH the mean burst length; the seed defaults to this node's receiver id."
        ))
    var simulateLoss = "none"
    @Option(help: "Root prefix for the log directory (default: $QLUSTAR_ROOT or /).") var root: String?
    @Option(
        help: """
            File holding this node's enrollment token, for a ql-mcastd whose registry gives the node one \
            (default <root>/etc/qlustar/execd.token when present, the token qluman-execd presents).
            """)
    var tokenFile: String?
    @Flag(help: "No progress output.") var quiet = false
    @Option(help: "Write a JSON report of the transfer to this file.") var reportJson: String?

    mutating func validate() throws {
        guard multicastTimeout > 0, serverTimeout > 0 else { throw ValidationError("timeouts must be positive") }
        if let expect, !(1...ImageRequest.maxExpect).contains(expect) {
            throw ValidationError("--expect \(expect) is outside 1…\(ImageRequest.maxExpect)")
        }
        if mount && union == nil { throw ValidationError("--mount needs --union DIR") }
        _ = try Self.lossModel(simulateLoss)
        do { _ = try ImageName(image) } catch { throw ValidationError(error.message) }
        do { _ = try HeadNode.list(server, defaultPort: DaemonConfiguration.defaultPort) } catch {
            throw ValidationError("--server: \(error.message)")
        }
        if let interface, IPv4Address(interface) == nil {
            do { _ = try NetworkInterface.resolve(interface) } catch {
                throw ValidationError("--interface: \(error.message)")
            }
        }
    }

    /// The loss model (`LossModel.syntax`); without a seed the client seeds it with its receiver
    /// id (`ClientOptions.simulateLossSeed`).
    static func lossModel(_ text: String) throws -> (LossModel, UInt64?) {
        do { return try LossModel.parse(text) } catch {
            throw ValidationError("--simulate-loss: \(error.message)")
        }
    }

    func run() throws {
        let rootPath = Root(root)
        let log = Logger(root: rootPath, name: "ql-mcast-client")
        let heads = try HeadNode.list(server, defaultPort: DaemonConfiguration.defaultPort)
        var options = ClientOptions(server: heads[0], image: image, output: output)
        options.otherServers = Array(heads.dropFirst())
        if let interface {
            options.interface = try IPv4Address(interface) ?? IPv4Address(NetworkInterface.resolve(interface).address)
        }
        options.unicastOnly = unicast
        options.ca = ca
        let tokenPath = tokenFile ?? rootPath.path("/etc/qlustar/execd.token")
        if tokenFile != nil || FileSystem.isRegularFile(tokenPath) {
            let bytes = try FileSystem.readFile(tokenPath, limit: 4_096)
            options.token = String(decoding: bytes, as: UTF8.self)  // as qluman-execd reads it
        }
        options.multicastTimeout = multicastTimeout
        options.serverTimeout = serverTimeout
        options.expect = expect
        (options.simulateLoss, options.simulateLossSeed) = try Self.lossModel(simulateLoss)
        let client = ImageClient(options: options, log: log)
        client.showProgress = !quiet
        do {
            let report = try client.run()
            if let reportJson {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try encoder.encode(report).write(to: URL(fileURLWithPath: reportJson))
            }
            let figures = String(
                printf: "%.2f s (%.2f s after the grouping window, %.1f MB/s)", report.seconds, report.transferSeconds,
                Double(report.size) / 1e6 / max(report.transferSeconds, 1e-9))
            log.info("'\(image)': \(report.size) bytes in \(figures) via \(report.path)")
            if let union { try UnionLayout(directory: union, mount: mount).build(from: output, log: log) }
        } catch let error as QlustarError {
            log.error("\(error.message)")
            let status = Self.exitStatus(error.code)
            // ql-mcastd shows it to the head node's boot monitor — not when it cannot be reached,
            // nor when it refused this host (it knows, and would refuse the report too).
            if error.code != .unreachable, error.code != .refused {
                client.reportFailure(
                    exitStatus: status, message: error.message,
                    logFile: rootPath.path("/var/log/qlustar/ql-mcast-client.log"))
            }
            throw ExitCode(status)
        }
    }

    static func exitStatus(_ code: QlustarError.Code) -> Int32 {
        switch code {
        case .invalidArgument, .configuration: 1
        case .notFound, .refused: 2
        case .integrity: 3
        case .union: 5
        default: 4
        }
    }
}
