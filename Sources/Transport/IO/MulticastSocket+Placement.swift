import CQLSys

#if canImport(Glibc)
    import Glibc
#endif

/// The placed receive: a GRO run scattered by the kernel so that each datagram's header lands in
/// a slot of its own and its payload straight where the caller predicts it belongs (for a
/// receiver, the symbol's place in the image). A right prediction costs no copy in user space;
/// a wrong one is moved once.
///
/// Why it is safe: the caller only predicts places that nothing has filled yet, so whatever the
/// kernel writes there — the predicted symbol, another symbol, a forged or foreign datagram —
/// overwrites nothing of value, and a place counts as filled only once its datagram was admitted
/// (`docs/PROTOCOL.md`, *Placed receive*). Before any datagram of the run is handed on, every
/// payload that landed in another's place is moved to where it belongs (or, if that place is
/// taken or unknown, into the socket's own buffer), so handling one datagram never overwrites
/// another's payload still waiting to be handled.
extension MulticastSocket {
    /// Buffers of the placed receive: one iovec pair per datagram of a run plus an overflow.
    final class Placement {
        /// Datagrams one placed receive plans for: a GRO run holds at most 64.
        static let maxPositions = 64
        /// Most header bytes a plan may ask for.
        static let maxHeader = 64
        let iovecs = UnsafeMutablePointer<iovec>.allocate(capacity: 2 * maxPositions + 1)
        /// Where each datagram's payload is now, and where it belongs (nil: no place).
        let payloads = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: maxPositions)
        let targets = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: maxPositions)
        let displaced = UnsafeMutablePointer<Int>.allocate(capacity: maxPositions)
        /// Datagrams found at their predicted place, moved to theirs, or moved into our buffer.
        var inPlace: UInt64 = 0
        var moved: UInt64 = 0
        var evacuated: UInt64 = 0
        /// Runs that did not fit the plan's datagram size and were gathered into one buffer.
        var gathered: UInt64 = 0

        deinit {
            iovecs.deallocate()
            payloads.deallocate()
            targets.deallocate()
            displaced.deallocate()
        }
    }

    /// True when `receive(placing:…)` scatters payloads (it needs GRO: one run per call).
    public var placesPayloads: Bool { groEnabled }

    /// How many datagrams of `datagramSize` bytes a GRO run may hold: the length of a plan.
    public static func placementPositions(datagramSize: Int) -> Int {
        min(Placement.maxPositions, 65_536 / max(datagramSize, 1) + 1)
    }

    /// What the placed receive did so far: payloads found in place, moved once to their place,
    /// moved into the socket's buffer; runs gathered because they did not fit the plan.
    public var placementCounts: (inPlace: UInt64, moved: UInt64, evacuated: UInt64, gathered: UInt64) {
        (placement.inPlace, placement.moved, placement.evacuated, placement.gathered)
    }

    /// Receives one run of datagrams (non-blocking) with each payload scattered to its predicted
    /// place, and hands each datagram on as header and rest.
    ///
    /// - Parameters:
    ///   - places: Where the payload of the run's i-th datagram should land; nil where no place
    ///     is predicted. Every non-nil place must have `payloadSize` writable bytes the caller
    ///     does not mind being overwritten (nothing filled yet).
    ///   - headerSize: Bytes of each datagram before its payload.
    ///   - payloadSize: A full payload: the run is expected in datagrams of `headerSize +
    ///     payloadSize` bytes (the last may be shorter).
    ///   - belongsAt: Given a datagram's header, the place its payload belongs (nil: none, or
    ///     one that must not be written now). Asked before any datagram is handed on.
    ///   - handler: Each datagram, in the order received: its first `headerSize` bytes (fewer
    ///     if it is shorter) and the rest, wherever it now lies.
    /// - Returns: The number of datagrams handed on.
    @discardableResult
    public func receive(
        placing places: UnsafeBufferPointer<UnsafeMutableRawPointer?>, headerSize: Int, payloadSize: Int,
        belongsAt: (UnsafeRawBufferPointer) -> UnsafeMutableRawPointer?,
        _ handler: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void
    ) throws(TransportError) -> Int {
        let datagramSize = headerSize + payloadSize
        let positions = MulticastSocket.placementPositions(datagramSize: datagramSize)
        guard groEnabled, headerSize > 0, headerSize <= Placement.maxHeader, payloadSize > 0,
            payloadSize <= PacketHeader.maxPayload, places.count <= positions
        else {
            return try receive { d in handler(Self.split(d, headerSize), Self.rest(d, headerSize)) }
        }
        // The socket's buffer: headers at 0, payloads without a place from 64 KiB, the overflow
        // from 1 MiB, a run gathered into one piece from 1 MiB + 64 KiB (2 MiB with GRO).
        let headers = receiveRegion.base
        let scratch = receiveRegion.base + 65_536
        let overflow = receiveRegion.base + (1 << 20)
        let gatheredRun = overflow + 65_536
        let p = placement
        for i in 0..<positions {
            p.iovecs[2 * i] = iovec(iov_base: headers + i * headerSize, iov_len: headerSize)
            let place = i < places.count ? places[i] : nil
            p.iovecs[2 * i + 1] = iovec(iov_base: place ?? scratch + i * payloadSize, iov_len: payloadSize)
        }
        p.iovecs[2 * positions] = iovec(iov_base: overflow, iov_len: 65_536)
        var msg = msghdr()
        msg.msg_iov = p.iovecs
        msg.msg_iovlen = 2 * positions + 1
        msg.msg_control = receiveControl
        msg.msg_controllen = receiveControlSpace
        var mmsg = qlsys_mmsghdr(msg_hdr: msg, msg_len: 0)
        receiveCalls += 1
        guard let got = try receiveMessages(&mmsg, 1), got == 1 else { return 0 }
        messagesReceived += 1
        let length = Int(mmsg.msg_len)
        let segment = Int(withUnsafePointer(to: &mmsg.msg_hdr) { qlsys_gro_segment($0, &kernelDrops) })
        let fits = (segment == 0 || segment >= length) ? length <= datagramSize : segment == datagramSize
        guard fits, length <= positions * datagramSize else {
            // Not the plan's shape (a control datagram, another session's size): gather the run
            // into one piece and hand it on from there; the places it touched were free.
            p.gathered += 1
            var copied = 0
            for v in 0...(2 * positions) where copied < length {
                let n = min(p.iovecs[v].iov_len, length - copied)
                (gatheredRun + copied).copyMemory(from: p.iovecs[v].iov_base, byteCount: n)
                copied += n
            }
            let step = segment > 0 && segment < length ? segment : length
            var delivered = 0
            var off = 0
            while off < length {
                let d = UnsafeRawBufferPointer(start: gatheredRun + off, count: min(step, length - off))
                handler(Self.split(d, headerSize), Self.rest(d, headerSize))
                off += d.count
                delivered += 1
            }
            datagramsReceived += UInt64(delivered)
            return delivered
        }
        let count = length == 0 ? 1 : (length + datagramSize - 1) / datagramSize
        func header(_ i: Int) -> UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(start: headers + i * headerSize, count: min(headerSize, length - i * datagramSize))
        }
        func restLength(_ i: Int) -> Int { max(0, min(datagramSize, length - i * datagramSize) - headerSize) }
        // Where each payload is, and which landed in another's place.
        var displacedCount = 0
        for i in 0..<count {
            let place = i < places.count ? places[i] : nil
            p.payloads[i] = place ?? scratch + i * payloadSize
            guard let place else { continue }
            let target = header(i).count == headerSize ? belongsAt(header(i)) : nil
            if target == place {
                p.inPlace += 1
            } else {
                p.targets[i] = target
                p.displaced[displacedCount] = i
                displacedCount += 1
            }
        }
        // Last first: a loss shifts the rest of a run one place on, so each displaced payload
        // moves into a place whose own payload has already moved on.
        var d = displacedCount
        while d > 0 {
            d -= 1
            let i = p.displaced[d]
            let n = restLength(i)
            if let target = p.targets[i], !placeIsTaken(target, places, count: count) {
                target.copyMemory(from: p.payloads[i], byteCount: n)
                p.payloads[i] = target
                p.moved += 1
            } else {
                (scratch + i * payloadSize).copyMemory(from: p.payloads[i], byteCount: n)
                p.payloads[i] = scratch + i * payloadSize
                p.evacuated += 1
            }
        }
        for i in 0..<count {
            handler(header(i), UnsafeRawBufferPointer(start: p.payloads[i], count: restLength(i)))
        }
        datagramsReceived += UInt64(count)
        return count
    }

    /// True when `target` is the place of a datagram whose payload still lies there: one found
    /// in place, or a displaced one not yet moved.
    private func placeIsTaken(
        _ target: UnsafeMutableRawPointer, _ places: UnsafeBufferPointer<UnsafeMutableRawPointer?>, count: Int
    ) -> Bool {
        for i in 0..<min(count, places.count) where places[i] == target && placement.payloads[i] == target {
            return true
        }
        return false
    }

    private static func split(_ d: UnsafeRawBufferPointer, _ headerSize: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: d[0..<min(headerSize, d.count)])
    }

    private static func rest(_ d: UnsafeRawBufferPointer, _ headerSize: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: d[min(headerSize, d.count)...])
    }
}
