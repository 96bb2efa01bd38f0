/// The kinds of datagram on a session's group (see `docs/PROTOCOL.md`).
public enum PacketType: UInt8, Sendable, CaseIterable, Codable {
    /// A source symbol: bytes of the object itself.
    case data = 1
    /// A Reed–Solomon parity symbol of one block.
    case parity = 2
    /// A receiver's request for more symbols of some blocks (multicast so others overhear it).
    case nak = 3
    /// The object's layout, digest and FEC parameters, repeated by the sender.
    case announce = 4
    /// The sender finished a pass over the object.
    case fin = 5
    /// A receiver's progress report, or the sender's verdict on one receiver.
    case status = 6
}

/// Header flag bits.
public struct PacketFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// The symbol answers a NAK (it is a repair, not part of a pass).
    public static let repair = PacketFlags(rawValue: 1 << 0)
    /// A 16-byte authentication tag follows the payload.
    public static let authenticated = PacketFlags(rawValue: 1 << 1)
    /// The sender's last packet of a session (on FIN): receivers still short fail now.
    public static let final = PacketFlags(rawValue: 1 << 2)

    /// The payload is AES-GCM ciphertext and its 16-byte tag follows (`PacketSealer`); never
    /// together with `.authenticated`.
    public static let sealed = PacketFlags(rawValue: 1 << 3)

    /// Every bit this version defines; others must be zero.
    public static let known: PacketFlags = [.repair, .authenticated, .final, .sealed]

    /// A 16-byte tag (HMAC or GCM) follows the payload.
    @inlinable public var hasTag: Bool { !isDisjoint(with: [.authenticated, .sealed]) }
}
