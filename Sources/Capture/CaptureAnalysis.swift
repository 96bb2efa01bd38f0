import Foundation
import Transport

/// What a capture shows of the engine's sessions: per session its sender, object, counts by
/// datagram type, the receivers seen (by their NAKs and status reports) with the symbols each
/// asked for, NAK suppression, FEC overhead and the rate over time; and what did not decode.
public struct CaptureAnalysis: Codable, Sendable {
    public struct Receiver: Codable, Sendable, Equatable {
        public var address: String
        public var naks = 0
        /// Symbols asked for in those NAKs.
        public var symbolsRequested = 0
        public var statusReports = 0
        /// Symbols asked for per data symbol of the session seen: an estimate of this receiver's loss.
        public var lossEstimate = 0.0
    }

    public struct Session: Codable, Sendable {
        public var sessionID: UInt32
        public var objectID: UInt32
        public var sender: String
        public var group: String
        public var object: String?
        public var size: UInt64?
        public var data = 0
        public var parity = 0
        /// Symbols flagged as repair (answers to NAKs).
        public var repairs = 0
        public var naks = 0
        public var announces = 0
        public var fins = 0
        public var statusReports = 0
        public var bytes = 0
        public var firstSeconds = 0.0
        public var lastSeconds = 0.0
        /// Blocks NAKed by more than one receiver, NAK entries in all: how much suppression left.
        public var nakEntries = 0
        public var distinctNakedBlocks = 0
        public var receivers: [Receiver] = []
        /// Megabytes per second of data and parity, per second of the capture.
        public var rateOverTime: [Double] = []

        /// Parity symbols per data symbol.
        public var fecOverhead: Double { data == 0 ? 0 : Double(parity) / Double(data) }
        /// NAK entries for a block some receiver had already NAKed, per entry: what suppression
        /// (receivers holding back their NAK after overhearing one) did not prevent. 0 is perfect.
        public var nakRedundancy: Double { nakEntries == 0 ? 0 : Double(nakEntries - distinctNakedBlocks) / Double(nakEntries) }
    }

    public var packets = 0
    /// Datagrams on the filter that are not this protocol (or not UDP/IPv4).
    public var foreign = 0
    /// Datagrams with the magic that do not decode, by reason.
    public var malformed: [String: Int] = [:]
    public var sessions: [Session] = []

    public init() {}
}

/// Builds a `CaptureAnalysis` packet by packet.
public final class CaptureAnalyzer {
    private var analysis = CaptureAnalysis()
    private var sessions: [UInt32: CaptureAnalysis.Session] = [:]
    private var receivers: [UInt32: [String: CaptureAnalysis.Receiver]] = [:]
    private var nakedBlocks: [UInt32: Set<UInt32>] = [:]
    private var buckets: [UInt32: [Int: Int]] = [:]

    public init() {}

    public func add(_ packet: PcapSource.Packet, linkType: Int32) {
        analysis.packets += 1
        guard let frame = Frame.decode(packet.bytes, linkType: linkType) else {
            analysis.foreign += 1
            return
        }
        var rest = frame.payload
        guard rest.count >= 4, rest.load(as: UInt32.self).bigEndian == PacketHeader.magic else {
            analysis.foreign += 1
            return
        }
        // One datagram, or several behind one UDP header (a GSO super-packet).
        while rest.count >= 4, rest.load(as: UInt32.self).bigEndian == PacketHeader.magic {
            let length = min(PacketHeader.claimedLength(atStartOf: rest) ?? rest.count, rest.count)
            let datagram = UnsafeRawBufferPointer(rebasing: rest.prefix(length))
            switch PacketHeader.decode(datagram) {
            case .success(let header): add(header, datagram, frame, seconds: packet.seconds)
            case .failure(let reason):
                analysis.malformed["\(reason)", default: 0] += 1
                return
            }
            rest = UnsafeRawBufferPointer(rebasing: rest.dropFirst(length))
        }
        // Whatever follows the last datagram must be link padding (zeros).
        if rest.contains(where: { $0 != 0 }) { analysis.malformed["trailing-bytes", default: 0] += 1 }
    }

    private func add(_ header: PacketHeader, _ payload: UnsafeRawBufferPointer, _ frame: Frame, seconds: Double) {
        let id = header.sessionID
        var s = sessions[id] ?? CaptureAnalysis.Session(
            sessionID: id, objectID: header.objectID, sender: "", group: Frame.address(frame.destination) + ":\(frame.destinationPort)",
            firstSeconds: seconds)
        s.lastSeconds = seconds
        let body = UnsafeRawBufferPointer(rebasing: payload[PacketHeader.size..<min(payload.count, PacketHeader.size + Int(header.payloadLength))])
        let from = Frame.address(frame.source)
        switch header.type {
        case .data, .parity:
            if header.type == .data { s.data += 1 } else { s.parity += 1 }
            if header.flags.contains(.repair) { s.repairs += 1 }
            s.sender = from
            s.bytes += Int(header.payloadLength)
            buckets[id, default: [:]][Int(seconds - s.firstSeconds), default: 0] += Int(header.payloadLength)
        case .announce:
            s.announces += 1
            s.sender = from
            if case .success(let a) = AnnounceBody.decode(body) {
                s.object = a.name
                s.size = a.layout.objectSize
            }
        case .fin:
            s.fins += 1
        case .nak:
            s.naks += 1
            var r = receivers[id, default: [:]][from] ?? CaptureAnalysis.Receiver(address: from)
            r.naks += 1
            _ = NakBody.forEachEntry(body) { entry in
                r.symbolsRequested += Int(entry.needed)
                s.nakEntries += 1
                nakedBlocks[id, default: []].insert(entry.block)
            }
            receivers[id, default: [:]][from] = r
        case .status:
            s.statusReports += 1
            if from != s.sender {
                var r = receivers[id, default: [:]][from] ?? CaptureAnalysis.Receiver(address: from)
                r.statusReports += 1
                receivers[id, default: [:]][from] = r
            }
        }
        sessions[id] = s
    }

    /// The analysis so far.
    public var result: CaptureAnalysis {
        var out = analysis
        out.sessions = sessions.keys.sorted().map { id in
            var s = sessions[id]!
            s.receivers = (receivers[id] ?? [:]).values.sorted { $0.address < $1.address }.map { r in
                var r = r
                r.lossEstimate = s.data == 0 ? 0 : Double(r.symbolsRequested) / Double(s.data)
                return r
            }
            s.distinctNakedBlocks = nakedBlocks[id]?.count ?? 0
            let b = buckets[id] ?? [:]
            s.rateOverTime = (0...(b.keys.max() ?? -1)).map { Double(b[$0] ?? 0) / 1e6 }
            return s
        }
        return out
    }
}
