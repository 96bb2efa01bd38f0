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
        public var nakRedundancy: Double {
            nakEntries == 0 ? 0 : Double(nakEntries - distinctNakedBlocks) / Double(nakEntries)
        }
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
    /// Bounds on what a capture can make us hold: its contents are whatever was on the wire
    /// (forged session ids and NAKs included) or in a file (any timestamp).
    /// Together they bound the rate history to 1,000 × 21,600 values (≈ 170 MB) in the worst case.
    public static let maxSessions = 1_000
    public static let maxNakedBlocks = 1_000_000
    /// Seconds of rate history per session (6 hours): later packets are still counted, not plotted.
    public static let maxSeconds = 21_600

    private var analysis = CaptureAnalysis()
    private var sessions: [UInt32: CaptureAnalysis.Session] = [:]
    private var receivers: [UInt32: [String: CaptureAnalysis.Receiver]] = [:]
    private var nakedBlocks: [UInt32: Set<UInt32>] = [:]
    private var buckets: [UInt32: [Int: Int]] = [:]
    /// The last timestamp that was a number: stands in for one that is not (NaN, ±∞ from a file).
    private var lastGoodSeconds = 0.0

    public init() {}

    public func add(_ packet: PcapSource.Packet, linkType: Int32) {
        analysis.packets += 1
        var seconds = packet.seconds
        if seconds.isFinite {
            lastGoodSeconds = seconds
        } else {
            analysis.malformed["bad-timestamp", default: 0] += 1
            seconds = lastGoodSeconds
        }
        guard let frame = Frame.decode(packet.bytes, linkType: linkType) else {
            analysis.foreign += 1
            return
        }
        var rest = frame.payload
        guard rest.count >= 4, rest.loadUnaligned(as: UInt32.self).bigEndian == PacketHeader.magic else {
            analysis.foreign += 1
            return
        }
        // One datagram, or several behind one UDP header (a GSO super-packet).
        while rest.count >= 4, rest.loadUnaligned(as: UInt32.self).bigEndian == PacketHeader.magic {
            let length = min(PacketHeader.claimedLength(atStartOf: rest) ?? rest.count, rest.count)
            let datagram = UnsafeRawBufferPointer(rebasing: rest.prefix(length))
            switch PacketHeader.decode(datagram) {
            case .success(let header): add(header, datagram, frame, seconds: seconds)
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
        if sessions[id] == nil, sessions.count >= CaptureAnalyzer.maxSessions {
            analysis.malformed["too-many-sessions", default: 0] += 1
            return
        }
        var s =
            sessions[id]
            ?? CaptureAnalysis.Session(
                sessionID: id, objectID: header.objectID, sender: "",
                group: Frame.address(frame.destination) + ":\(frame.destinationPort)",
                firstSeconds: seconds)
        s.lastSeconds = seconds
        let body = UnsafeRawBufferPointer(
            rebasing: payload[PacketHeader.size..<min(payload.count, PacketHeader.size + Int(header.payloadLength))])
        let from = Frame.address(frame.source)
        switch header.type {
        case .data, .parity:
            if header.type == .data { s.data += 1 } else { s.parity += 1 }
            if header.flags.contains(.repair) { s.repairs += 1 }
            s.sender = from
            s.bytes += Int(header.payloadLength)
            if let second = second(seconds, since: s.firstSeconds) {
                buckets[id, default: [:]][second, default: 0] += Int(header.payloadLength)
            }
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
                if nakedBlocks[id, default: []].count < CaptureAnalyzer.maxNakedBlocks {
                    nakedBlocks[id, default: []].insert(entry.block)
                }
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

    /// The whole second of the capture, counted from `first`, that `seconds` falls in; nil (and
    /// counted) when it lies before `first` or beyond `maxSeconds` after it.
    private func second(_ seconds: Double, since first: Double) -> Int? {
        let offset = seconds - first
        guard offset >= 0 else {
            analysis.malformed["timestamp-backwards", default: 0] += 1
            return nil
        }
        guard offset < Double(CaptureAnalyzer.maxSeconds) else {  // also ∞ − x
            analysis.malformed["timestamp-jump", default: 0] += 1
            return nil
        }
        return Int(offset)
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
            // Keys are 0..<maxSeconds (see `second`); a session without data has none.
            s.rateOverTime = b.keys.max().map { last in (0...last).map { Double(b[$0] ?? 0) / 1e6 } } ?? []
            return s
        }
        return out
    }
}
