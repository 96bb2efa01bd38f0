/// The buffer in which a session builds its control datagrams (ANNOUNCE, NAK, FIN, STATUS):
/// header, body written in place, and the tag when the session is authenticated.
/// A class because it owns the buffer; one per session, used from one thread.
final class ControlDatagram {
    static let capacity = 2_048
    /// The most body bytes `build` gives its writer (room for the header and a tag taken off).
    static let bodyCapacity = capacity - PacketHeader.size - PacketHeader.tagSize
    private let base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)

    deinit { base.deallocate() }

    /// Writes `header` (its length and authentication flag set here), the body that `body`
    /// writes into the space it is given (returning its length), and the tag.
    /// - Returns: The datagram, valid until the next call.
    func build(
        _ header: PacketHeader, authenticator: PacketAuthenticator?, body: (UnsafeMutableRawPointer, Int) -> Int
    ) -> UnsafeRawBufferPointer {
        var h = header
        let n = body(base + PacketHeader.size, ControlDatagram.bodyCapacity)
        h.payloadLength = UInt16(n)
        if authenticator != nil { h.flags.insert(.authenticated) }
        h.encode(to: base)
        if let auth = authenticator {
            auth.tag(
                UnsafeRawBufferPointer(start: base, count: PacketHeader.size + n), into: base + PacketHeader.size + n)
        }
        return UnsafeRawBufferPointer(start: base, count: h.datagramLength)
    }
}
