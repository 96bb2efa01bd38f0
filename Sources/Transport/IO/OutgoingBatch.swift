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
    public private(set) var count = 0
    /// UDP payload bytes of the queued datagrams.
    public private(set) var bytes = 0

    public init(capacity: Int) {
        self.capacity = capacity
        slots = .allocate(byteCount: capacity * OutgoingBatch.slotSize, alignment: 64)
        payloads = .init(repeating: nil, count: capacity)
        payloadLengths = .init(repeating: 0, count: capacity)
        tagged = .init(repeating: false, count: capacity)
    }

    deinit { slots.deallocate() }

    public var isFull: Bool { count == capacity }
    public var isEmpty: Bool { count == 0 }

    /// Queues a datagram; with an authenticator the header gets the flag and the tag is computed.
    public func append(
        _ header: PacketHeader, payload: UnsafeRawBufferPointer, authenticator: PacketAuthenticator?
    ) {
        precondition(count < capacity, "OutgoingBatch overflow")
        var h = header
        h.payloadLength = UInt16(payload.count)
        if authenticator != nil { h.flags.insert(.authenticated) }
        let slot = slots + count * OutgoingBatch.slotSize
        h.encode(to: slot)
        if let auth = authenticator {
            auth.tag(UnsafeRawBufferPointer(start: slot, count: PacketHeader.size), payload, into: slot + PacketHeader.size)
        }
        payloads[count] = payload.baseAddress
        payloadLengths[count] = payload.count
        tagged[count] = authenticator != nil
        bytes += h.datagramLength
        count += 1
    }

    public func removeAll() {
        count = 0
        bytes = 0
    }

    func datagramLength(_ i: Int) -> Int {
        PacketHeader.size + payloadLengths[i] + (tagged[i] ? PacketHeader.tagSize : 0)
    }
}
