/// The fixed 32-byte header that starts every datagram, in network byte order.
///
/// ```
///  0  u32 magic "QLMC"      4  u8 version   5  u8 type   6  u16 flags
///  8  u32 session id       12  u32 object id
/// 16  u32 block            20  u16 symbol index          22  u16 payload length
/// 24  u32 sequence         28  u32 timestamp (sender µs, low 32 bits; echoed in NAKs)
/// ```
/// Decoding reads the bytes in place and validates every field that does not depend on the
/// session; the receiver checks the rest (block and symbol ranges) against the announced layout.
public struct PacketHeader: Sendable, Equatable {
    public static let size = 32
    public static let magic: UInt32 = 0x514C_4D43  // "QLMC"
    public static let version: UInt8 = 1
    /// Length of the tag that follows the payload when `.authenticated` or `.sealed` is set.
    public static let tagSize = 16
    /// The largest payload any datagram may carry (a jumbo-frame symbol).
    public static let maxPayload = 8_960

    public var type: PacketType
    public var flags: PacketFlags
    public var sessionID: UInt32
    public var objectID: UInt32
    public var block: UInt32
    public var symbol: UInt16
    public var payloadLength: UInt16
    public var sequence: UInt32
    public var timestamp: UInt32

    public init(
        type: PacketType, flags: PacketFlags = [], sessionID: UInt32, objectID: UInt32, block: UInt32 = 0,
        symbol: UInt16 = 0, payloadLength: UInt16 = 0, sequence: UInt32 = 0, timestamp: UInt32 = 0
    ) {
        self.type = type
        self.flags = flags
        self.sessionID = sessionID
        self.objectID = objectID
        self.block = block
        self.symbol = symbol
        self.payloadLength = payloadLength
        self.sequence = sequence
        self.timestamp = timestamp
    }

    /// Bytes on the wire for this header, its payload and the tag if any.
    public var datagramLength: Int {
        PacketHeader.size + Int(payloadLength) + (flags.hasTag ? PacketHeader.tagSize : 0)
    }

    /// The length the header at the start of `bytes` claims for its datagram (not validated):
    /// how captures split a GSO super-packet (many datagrams behind one UDP header) again.
    public static func claimedLength(atStartOf bytes: UnsafeRawBufferPointer) -> Int? {
        guard bytes.count >= size, let base = bytes.baseAddress else { return nil }
        let flags = PacketFlags(rawValue: UInt16(bigEndian: base.loadUnaligned(fromByteOffset: 6, as: UInt16.self)))
        let payloadLength = UInt16(bigEndian: base.loadUnaligned(fromByteOffset: 22, as: UInt16.self))
        return size + Int(payloadLength) + (flags.hasTag ? tagSize : 0)
    }

    /// Decodes and validates a header at the start of `datagram`.
    ///
    /// - Parameter datagram: The whole datagram as received.
    /// - Returns: The header, or the reason the datagram must be dropped.
    @inlinable
    public static func decode(_ datagram: UnsafeRawBufferPointer) -> Result<PacketHeader, DropReason> {
        decode(header: datagram, datagramLength: datagram.count)
    }

    /// Decodes and validates a header received apart from its payload (a placed receive: the
    /// header in a slot of its own, the payload already where it belongs).
    ///
    /// - Parameters:
    ///   - header: At least the header's bytes.
    ///   - datagramLength: The whole datagram's length, header, payload and tag together.
    /// - Returns: The header, or the reason the datagram must be dropped.
    @inlinable
    public static func decode(header datagram: UnsafeRawBufferPointer, datagramLength: Int) -> Result<
        PacketHeader, DropReason
    > {
        guard datagram.count >= size, let base = datagram.baseAddress else { return .failure(.tooShort) }
        guard UInt32(bigEndian: base.loadUnaligned(as: UInt32.self)) == magic else { return .failure(.badMagic) }
        guard base.load(fromByteOffset: 4, as: UInt8.self) == version else { return .failure(.badVersion) }
        guard let type = PacketType(rawValue: base.load(fromByteOffset: 5, as: UInt8.self)) else {
            return .failure(.badType)
        }
        let flags = PacketFlags(rawValue: UInt16(bigEndian: base.loadUnaligned(fromByteOffset: 6, as: UInt16.self)))
        guard flags.isSubset(of: .known), !flags.isSuperset(of: [.authenticated, .sealed]) else {
            return .failure(.badFlags)
        }
        let payloadLength = UInt16(bigEndian: base.loadUnaligned(fromByteOffset: 22, as: UInt16.self))
        let expected = size + Int(payloadLength) + (flags.hasTag ? tagSize : 0)
        guard Int(payloadLength) <= maxPayload, expected == datagramLength else { return .failure(.badLength) }
        return .success(
            PacketHeader(
                type: type,
                flags: flags,
                sessionID: UInt32(bigEndian: base.loadUnaligned(fromByteOffset: 8, as: UInt32.self)),
                objectID: UInt32(bigEndian: base.loadUnaligned(fromByteOffset: 12, as: UInt32.self)),
                block: UInt32(bigEndian: base.loadUnaligned(fromByteOffset: 16, as: UInt32.self)),
                symbol: UInt16(bigEndian: base.loadUnaligned(fromByteOffset: 20, as: UInt16.self)),
                payloadLength: payloadLength,
                sequence: UInt32(bigEndian: base.loadUnaligned(fromByteOffset: 24, as: UInt32.self)),
                timestamp: UInt32(bigEndian: base.loadUnaligned(fromByteOffset: 28, as: UInt32.self))
            ))
    }

    /// Writes the header into the first `size` bytes at `to`.
    @inlinable
    public func encode(to base: UnsafeMutableRawPointer) {
        base.storeBytes(of: PacketHeader.magic.bigEndian, as: UInt32.self)
        base.storeBytes(of: PacketHeader.version, toByteOffset: 4, as: UInt8.self)
        base.storeBytes(of: type.rawValue, toByteOffset: 5, as: UInt8.self)
        base.storeBytes(of: flags.rawValue.bigEndian, toByteOffset: 6, as: UInt16.self)
        base.storeBytes(of: sessionID.bigEndian, toByteOffset: 8, as: UInt32.self)
        base.storeBytes(of: objectID.bigEndian, toByteOffset: 12, as: UInt32.self)
        base.storeBytes(of: block.bigEndian, toByteOffset: 16, as: UInt32.self)
        base.storeBytes(of: symbol.bigEndian, toByteOffset: 20, as: UInt16.self)
        base.storeBytes(of: payloadLength.bigEndian, toByteOffset: 22, as: UInt16.self)
        base.storeBytes(of: sequence.bigEndian, toByteOffset: 24, as: UInt32.self)
        base.storeBytes(of: timestamp.bigEndian, toByteOffset: 28, as: UInt32.self)
    }
}
