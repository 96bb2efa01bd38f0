import ArgumentParser
import Foundation
import Platform
import Transport

/// `ql-bench probe-send`: the raw ceiling of a lab — datagrams of a fixed size blasted to a
/// group with no protocol at all (sendmmsg batches, optionally UDP GSO super-datagrams).
struct ProbeSend: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe-send", abstract: "Blast raw datagrams to a group (raw ceiling probe).", shouldDisplay: false
    )

    @Option var group: String
    @Option var interface: String
    @Option var datagram = 1_472
    @Option var bytes: Int
    @Flag var gso = false

    func run() throws {
        var opts = SocketOptions(interface: IPv4Address(interface)!)
        opts.segmentationOffload = gso
        opts.receiveOffload = false
        let socket = try MulticastSocket(endpoint: try MulticastEndpoint(parsing: group), options: opts)
        let payload = UnsafeMutableRawBufferPointer.allocate(byteCount: datagram, alignment: 64)
        defer { payload.deallocate() }
        payload.initializeMemory(as: UInt8.self, repeating: 0x5A)
        let batch = OutgoingBatch(capacity: 64)
        let count = (bytes + datagram - 1) / datagram
        var sent = 0
        let header = PacketHeader(type: .data, sessionID: 0, objectID: 0)
        let body = UnsafeRawBufferPointer(rebasing: payload[0..<(datagram - PacketHeader.size)])
        while sent < count {
            batch.removeAll()
            for _ in 0..<min(64, count - sent) { batch.append(header, payload: body, authenticator: nil) }
            try socket.send(batch)
            sent += batch.count
        }
    }
}

/// `ql-bench probe-recv`: counts what arrives until `bytes` came or the group is idle for 1 s;
/// prints `bytes seconds` (first to last datagram). With `--work FILE` it also does the work a
/// verified receive cannot avoid (the `raw-work` system): each payload copied into a fresh mapping
/// of FILE (tmpfs) in arrival order, and SHA-256 of the written prefix as it grows (1 MiB steps).
struct ProbeReceive: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe-recv", abstract: "Count raw datagrams from a group (raw ceiling probe).",
        shouldDisplay: false)

    @Option var group: String
    @Option var interface: String
    @Option var bytes: Int
    @Flag var gro = false
    @Option var timeout = 30.0
    @Option(help: "Copy payloads into a fresh mapping of this file and hash them (raw-work).") var work: String?

    /// The payloads written into `file` and the prefix hashed so far.
    final class Work {
        let file: MappedFile
        let hasher = SHA256()
        var written = 0
        var hashed = 0
        static let step = 1 << 20

        init(path: String, size: Int) throws { file = try MappedFile.create(writingTo: path, size: size) }

        func take(_ payload: UnsafeRawBufferPointer) {
            let room = file.mappedSize - written
            guard room > 0, let base = file.base else { return }
            let n = min(room, payload.count)
            (base + written).copyMemory(from: payload.baseAddress!, byteCount: n)
            written += n
            if written - hashed >= Self.step { hashPrefix() }
        }

        func hashPrefix() {
            guard let base = file.base, written > hashed else { return }
            hasher.update(UnsafeRawBufferPointer(start: base + hashed, count: written - hashed))
            hashed = written
        }
    }

    func run() throws {
        var opts = SocketOptions(interface: IPv4Address(interface)!)
        opts.receiveOffload = gro
        let socket = try MulticastSocket(endpoint: try MulticastEndpoint(parsing: group), options: opts)
        let sink = try work.map { try Work(path: $0, size: bytes) }
        var got = 0
        var first: UInt64 = 0
        var last: UInt64 = 0
        let start = MonotonicClock.nanoseconds()
        while got < bytes {
            let n = try socket.receive { d in
                got += d.count
                if let sink, d.count > PacketHeader.size {
                    sink.take(UnsafeRawBufferPointer(rebasing: d[PacketHeader.size...]))
                }
            }
            let now = MonotonicClock.nanoseconds()
            if n > 0 {
                if first == 0 { first = now }
                last = now
            } else {
                if first != 0 && now - last > 1_000_000_000 { break }
                if now - start > UInt64(timeout * 1e9) { break }
                _ = try socket.waitReadable(timeoutNanos: 5_000_000)
            }
        }
        if let sink {
            sink.hashPrefix()
            _ = sink.hasher.finalize()
        }
        print(got, Double(last &- first) / 1e9)
    }
}
