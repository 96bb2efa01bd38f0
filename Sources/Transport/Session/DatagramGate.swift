/// The checks every received datagram passes before a session reads a byte of its payload: the
/// header decodes and is valid, it belongs to our session and object, and its tag is right (or,
/// for sealed symbols, it opens). Sender and receiver admit through the same gate, so a check
/// added here guards both; what fails is one `DropReason`, for the caller to count.
///
/// A class: it owns the plaintext buffer sealed symbols are opened into, and the receiver learns
/// its session, object and opener from the ANNOUNCE after construction.
final class DatagramGate {
    /// A datagram that passed: its header and the payload to read (in place, or opened).
    struct Admitted {
        var header: PacketHeader
        var payload: UnsafeRawBufferPointer
    }

    /// Nil until known: a receiver accepts the first session announced on its group.
    var sessionID: UInt32?
    var objectID: UInt32?
    /// Checks the tags of control datagrams (and of symbols, unless the session is sealed).
    let authenticator: PacketAuthenticator?
    /// Opens sealed DATA and PARITY; nil until the ANNOUNCE gave the sender's salt.
    var opener: PacketSealer?
    /// Where sealed symbols are opened; non-nil exactly when symbols must arrive sealed.
    private let plaintext: UnsafeMutableRawPointer?

    /// - Parameters:
    ///   - sealedSymbols: DATA and PARITY must be sealed (an encrypted session's receiver).
    init(sessionID: UInt32?, objectID: UInt32?, authenticator: PacketAuthenticator?, sealedSymbols: Bool) {
        self.sessionID = sessionID
        self.objectID = objectID
        self.authenticator = authenticator
        plaintext = sealedSymbols ? .allocate(byteCount: PacketHeader.maxPayload, alignment: 64) : nil
    }

    deinit { plaintext?.deallocate() }

    /// Admits `datagram` or says why not. The payload of an opened symbol is valid until the
    /// next call.
    @inline(__always)
    func admit(_ datagram: UnsafeRawBufferPointer) -> Result<Admitted, DropReason> {
        let h: PacketHeader
        switch PacketHeader.decode(datagram) {
        case .failure(let r): return .failure(r)
        case .success(let v): h = v
        }
        if let sid = sessionID, h.sessionID != sid { return .failure(.foreignSession) }
        if let oid = objectID, h.objectID != oid { return .failure(.foreignObject) }
        if let plaintext, h.type == .data || h.type == .parity {
            guard h.flags.contains(.sealed) else { return .failure(.authenticationFailed) }
            guard let opener else { return .failure(.beforeAnnounce) }
            guard let n = opener.open(datagram, into: plaintext) else { return .failure(.authenticationFailed) }
            return .success(Admitted(header: h, payload: UnsafeRawBufferPointer(start: plaintext, count: n)))
        }
        if let authenticator {
            guard h.flags.contains(.authenticated), authenticator.verify(datagram) else {
                return .failure(.authenticationFailed)
            }
        }
        let end = PacketHeader.size + Int(h.payloadLength)
        return .success(
            Admitted(header: h, payload: UnsafeRawBufferPointer(rebasing: datagram[PacketHeader.size..<end])))
    }

    /// Admits a datagram received in two pieces (`MulticastSocket.receive(placing:)`): its header
    /// and, elsewhere, the rest. Only sessions without tags or seals receive this way — a tag
    /// covers the datagram as one piece — so a gate that checks them refuses it.
    @inline(__always)
    func admit(header: UnsafeRawBufferPointer, rest: UnsafeRawBufferPointer) -> Result<Admitted, DropReason> {
        let h: PacketHeader
        switch PacketHeader.decode(header: header, datagramLength: header.count + rest.count) {
        case .failure(let r): return .failure(r)
        case .success(let v): h = v
        }
        if let sid = sessionID, h.sessionID != sid { return .failure(.foreignSession) }
        if let oid = objectID, h.objectID != oid { return .failure(.foreignObject) }
        guard plaintext == nil, authenticator == nil else { return .failure(.authenticationFailed) }
        return .success(
            Admitted(header: h, payload: UnsafeRawBufferPointer(rebasing: rest[0..<Int(h.payloadLength)])))
    }
}
