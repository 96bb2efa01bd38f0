/// Datagrams queued for one send call: each is (header slot, pointer to payload, tag slot).
///
/// Headers and tags live in a preallocated area; payloads are pointers into the object's
/// mapping (DATA) or the sender's parity scratch (PARITY), so no payload byte is copied to send.
public final class OutgoingBatch {
    public static let slotSize = PacketHeader.size + PacketHeader.tagSize
    public let capacity: Int
    let slots: UnsafeMutableRawPointer
    var payloads: [UnsafeRawPointer?]
    var payloadLengths: [Int]
    var tagged: [Bool]
    /// Ciphertext of sealed payloads, one `sealedStride` slot per datagram (allocated on first
    /// use): slots as long as the session's symbols, so a batch of them stays in the L2 cache.
    private var ciphertext: UnsafeMutableRawPointer?
    private let sealedStride: Int
    public private(set) var count = 0
    /// UDP payload bytes of the queued datagrams.
    public private(set) var bytes = 0

    /// - Parameter maxPayload: The longest payload that will be sealed (the symbol size).
    public init(capacity: Int, maxPayload: Int = PacketHeader.maxPayload) {
        self.capacity = capacity
        sealedStride = (min(max(maxPayload, 1), PacketHeader.maxPayload) + 63) & ~63
        slots = .allocate(byteCount: capacity * OutgoingBatch.slotSize, alignment: 64)
        payloads = .init(repeating: nil, count: capacity)
        payloadLengths = .init(repeating: 0, count: capacity)
        tagged = .init(repeating: false, count: capacity)
    }

    deinit {
        slots.deallocate()
        ciphertext?.deallocate()
    }

    public var isFull: Bool { count == capacity }
    public var isEmpty: Bool { count == 0 }

    /// Queues a datagram. With a sealer the payload is encrypted into the batch's own buffer and
    /// the header gets `.sealed`; else with an authenticator it gets `.authenticated` and the tag.
    /// - Returns: false when the sealer refused (its key is used up): nothing was queued.
    @discardableResult
    public func append(
        _ header: PacketHeader, payload: UnsafeRawBufferPointer, authenticator: PacketAuthenticator?,
        sealer: PacketSealer? = nil
    ) -> Bool {
        precondition(count < capacity, "OutgoingBatch overflow")
        var h = header
        h.payloadLength = UInt16(payload.count)
        if sealer != nil {
            h.flags.insert(.sealed)
        } else if authenticator != nil {
            h.flags.insert(.authenticated)
        }
        let slot = slots + count * OutgoingBatch.slotSize
        h.encode(to: slot)
        var body = payload.baseAddress.map { UnsafeRawPointer($0) }
        if let sealer {
            precondition(payload.count <= sealedStride, "sealed payload longer than the batch's maxPayload")
            if ciphertext == nil { ciphertext = .allocate(byteCount: capacity * sealedStride, alignment: 64) }
            let out = ciphertext! + count * sealedStride
            guard sealer.seal(header: slot, payload: payload, into: out, tag: slot + PacketHeader.size) else {
                return false
            }
            body = UnsafeRawPointer(out)
        } else if let auth = authenticator {
            auth.tag(
                UnsafeRawBufferPointer(start: slot, count: PacketHeader.size), payload, into: slot + PacketHeader.size)
        }
        payloads[count] = body
        payloadLengths[count] = payload.count
        tagged[count] = h.flags.hasTag
        bytes += h.datagramLength
        count += 1
        return true
    }

    public func removeAll() {
        count = 0
        bytes = 0
    }

    func datagramLength(_ i: Int) -> Int {
        PacketHeader.size + payloadLengths[i] + (tagged[i] ? PacketHeader.tagSize : 0)
    }
}
