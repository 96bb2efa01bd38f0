import Foundation
import Platform

@testable import Transport

/// An object with every datagram a sender would put on the wire for it (sources, all parity,
/// announce, FIN), built with the engine's own codec, for feeding receivers directly.
final class SessionFixture {
    let object: [UInt8]
    let layout: ObjectLayout
    let digest: SHA256Digest
    let sessionID: UInt32 = 0xC0FFEE
    let objectID: UInt32 = 1
    let parityPerBlock: Int
    private(set) var sequence: UInt32 = 0

    init(size: Int, symbolSize: Int = 512, k: Int = 16, parityPerBlock: Int = 8, seed: UInt64 = 1) throws {
        var rng = SplitMix64(seed: seed)
        object = (0..<size).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        layout = try ObjectLayout(objectSize: UInt64(size), symbolSize: symbolSize, sourceSymbols: k)
        digest = object.withUnsafeBytes { SHA256.hash($0) }
        self.parityPerBlock = parityPerBlock
    }

    func datagram(_ h: PacketHeader, body: [UInt8], auth: PacketAuthenticator? = nil, sealer: PacketSealer? = nil)
        -> [UInt8]
    {
        var h = h
        h.payloadLength = UInt16(body.count)
        if auth != nil { h.flags.insert(.authenticated) }
        if sealer != nil { h.flags.insert(.sealed) }
        var out = [UInt8](repeating: 0, count: h.datagramLength)
        out.withUnsafeMutableBytes { p in
            h.encode(to: p.baseAddress!)
            body.withUnsafeBytes { b in
                if b.count > 0 {
                    (p.baseAddress! + PacketHeader.size).copyMemory(from: b.baseAddress!, byteCount: b.count)
                }
            }
            if let sealer {
                let plain = Array(body)
                let sealed = plain.withUnsafeBytes { b in
                    sealer.seal(
                        header: p.baseAddress!, payload: b, into: p.baseAddress! + PacketHeader.size,
                        tag: p.baseAddress! + PacketHeader.size + body.count)
                }
                precondition(sealed, "fixture sealer exhausted")
            } else if let auth {
                auth.tag(
                    UnsafeRawBufferPointer(start: p.baseAddress!, count: PacketHeader.size + body.count),
                    into: p.baseAddress! + PacketHeader.size + body.count)
            }
        }
        return out
    }

    func header(_ type: PacketType, block: Int = 0, symbol: Int = 0, flags: PacketFlags = []) -> PacketHeader {
        sequence &+= 1
        return PacketHeader(
            type: type, flags: flags, sessionID: sessionID, objectID: objectID, block: UInt32(block),
            symbol: UInt16(symbol), sequence: sequence)
    }

    func announce(digest: SHA256Digest? = nil, salt: [UInt8]? = nil, auth: PacketAuthenticator? = nil) -> [UInt8] {
        let body = AnnounceBody(
            layout: layout, proactiveParity: parityPerBlock, digest: digest ?? self.digest, name: "test.img", salt: salt
        )
        var buf = [UInt8](repeating: 0, count: 1_024)
        let n = buf.withUnsafeMutableBytes { body.encode(to: $0.baseAddress!, capacity: $0.count) }
        return datagram(header(.announce), body: Array(buf[0..<n]), auth: auth)
    }

    func fin(final: Bool = false) -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: 64)
        let n = buf.withUnsafeMutableBytes {
            FinBody(blockCount: UInt32(layout.blockCount), pass: 1).encode(to: $0.baseAddress!, capacity: $0.count)
        }
        return datagram(header(.fin, flags: final ? .final : []), body: Array(buf[0..<n]))
    }

    func nak(receiver: UInt32, entries: [NakEntry]) -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: 2_048)
        let n = buf.withUnsafeMutableBytes {
            NakBody(receiverID: receiver, echoTimestamp: 0, entries: entries).encode(
                to: $0.baseAddress!, capacity: $0.count)
        }
        return datagram(header(.nak), body: Array(buf[0..<n]))
    }

    /// Source symbol `j` of block `b` as sent (short at the object's end).
    func data(
        block b: Int, symbol j: Int, flags: PacketFlags = [], auth: PacketAuthenticator? = nil,
        sealer: PacketSealer? = nil
    ) -> [UInt8] {
        let start = layout.offset(ofBlock: b) + j * layout.symbolSize
        let len = layout.payloadLength(block: b, symbol: j)
        return datagram(
            header(.data, block: b, symbol: j, flags: flags), body: Array(object[start..<(start + len)]), auth: auth,
            sealer: sealer)
    }

    /// Parity symbol with index `p` (≥ k) of block `b`.
    func parity(block b: Int, index p: Int, flags: PacketFlags = []) -> [UInt8] {
        let s = layout.symbolSize
        let kb = layout.sourceSymbols(inBlock: b)
        var padded = [UInt8](repeating: 0, count: kb * s)
        let start = layout.offset(ofBlock: b)
        let end = min(object.count, start + kb * s)
        padded.replaceSubrange(0..<(end - start), with: object[start..<end])
        var out = [UInt8](repeating: 0, count: s)
        padded.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                let sources = (0..<kb).map { UnsafePointer<UInt8>?(src.baseAddress! + $0 * s) }
                let outputs = [UnsafeMutablePointer<UInt8>?(dst.baseAddress!)]
                var scratch = [UInt8](repeating: 0, count: kb)
                sources.withUnsafeBufferPointer { sp in
                    outputs.withUnsafeBufferPointer { op in
                        [p].withUnsafeBufferPointer { ip in
                            scratch.withUnsafeMutableBufferPointer { sc in
                                ReedSolomon.encode(sources: sp, parityIndices: ip, outputs: op, length: s, scratch: sc)
                            }
                        }
                    }
                }
            }
        }
        return datagram(header(.parity, block: b, symbol: p, flags: flags), body: out)
    }

    /// Every source and `parityPerBlock` parity datagram, in pass order.
    func pass() -> [[UInt8]] {
        (0..<layout.blockCount).flatMap { b in
            (0..<layout.sourceSymbols(inBlock: b)).map { data(block: b, symbol: $0) }
                + (0..<parityPerBlock).map { parity(block: b, index: layout.sourceSymbols + $0) }
        }
    }

    /// A receiver writing into a buffer the fixture owns.
    func receiver(
        channel: DatagramChannel? = nil, configure: (inout ReceiverConfiguration) -> Void = { _ in }
    ) throws -> (Receiver, Destination) {
        var c = ReceiverConfiguration()
        c.seed = 7
        configure(&c)
        let dest = Destination()
        let r = try Receiver(channel: channel, configuration: c) { a throws(TransportError) in
            dest.allocate(a.layout.paddedSize)
        }
        return (r, dest)
    }

    final class Destination {
        var buffer = UnsafeMutableRawBufferPointer(start: nil, count: 0)
        func allocate(_ n: Int) -> UnsafeMutableRawBufferPointer {
            buffer = .allocate(byteCount: n, alignment: 64)
            buffer.initializeMemory(as: UInt8.self, repeating: 0)
            return buffer
        }
        func bytes(_ n: Int) -> [UInt8] { Array(buffer.prefix(n)) }
        deinit { if buffer.baseAddress != nil { buffer.deallocate() } }
    }
}

/// Records what a receiver sends (NAK, STATUS) so tests can read it; receives nothing.
final class RecordingChannel: DatagramChannel {
    var sent: [[UInt8]] = []
    func send(_ batch: OutgoingBatch) throws(TransportError) {}
    func sendOne(_ bytes: UnsafeRawBufferPointer) throws(TransportError) { sent.append(Array(bytes)) }
    func receive(_ handler: (UnsafeRawBufferPointer) -> Void) throws(TransportError) -> Int { 0 }
    func waitReadable(timeoutNanos: UInt64) throws(TransportError) -> Bool { false }
    var overruns: UInt64 { 0 }
    var receiveQueuePercent: Int { 0 }

    /// The NAK bodies sent so far.
    var naks: [NakBody] {
        sent.compactMap { d in
            d.withUnsafeBytes { raw -> NakBody? in
                guard case .success(let h) = PacketHeader.decode(raw), h.type == .nak else { return nil }
                return try? NakBody.decode(UnsafeRawBufferPointer(rebasing: raw[PacketHeader.size...])).get()
            }
        }
    }
}

extension Receiver {
    func feed(_ d: [UInt8], at now: UInt64) { d.withUnsafeBytes { handle($0, now: now) } }
}
