/// A UDP datagram pulled out of a captured link-layer frame (Ethernet, Linux cooked, raw IPv4).
public struct Frame {
    public var source: UInt32
    public var destination: UInt32
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    /// The UDP payload (what the engine sent).
    public var payload: UnsafeRawBufferPointer

    /// Link types of libpcap (`DLT_*` / `LINKTYPE_*`).
    public static let ethernet: Int32 = 1
    public static let raw: Int32 = 12
    public static let rawIPv4: Int32 = 228
    public static let linuxCooked: Int32 = 113
    public static let linuxCooked2: Int32 = 276

    /// The UDP datagram in `bytes`, nil when the frame is not IPv4/UDP (or is cut short).
    public static func decode(_ bytes: UnsafeRawBufferPointer, linkType: Int32) -> Frame? {
        var offset: Int
        var etherType: UInt16 = 0x0800
        switch linkType {
        case ethernet:
            guard bytes.count >= 14 else { return nil }
            etherType = UInt16(bytes[12]) << 8 | UInt16(bytes[13])
            offset = 14
            if etherType == 0x8100, bytes.count >= 18 {  // one VLAN tag
                etherType = UInt16(bytes[16]) << 8 | UInt16(bytes[17])
                offset = 18
            }
        case linuxCooked:
            guard bytes.count >= 16 else { return nil }
            etherType = UInt16(bytes[14]) << 8 | UInt16(bytes[15])
            offset = 16
        case linuxCooked2:
            guard bytes.count >= 20 else { return nil }
            etherType = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
            offset = 20
        case raw, rawIPv4, 101:
            offset = 0
        default:
            return nil
        }
        guard etherType == 0x0800, bytes.count >= offset + 20, bytes[offset] >> 4 == 4 else { return nil }
        let headerLength = Int(bytes[offset] & 0x0F) * 4
        let totalLength = Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
        let fragment = (UInt16(bytes[offset + 6]) << 8 | UInt16(bytes[offset + 7])) & 0x3FFF
        guard headerLength >= 20, bytes[offset + 9] == 17, fragment == 0, totalLength >= headerLength + 8 else {
            return nil
        }
        func u32(_ at: Int) -> UInt32 { (0..<4).reduce(UInt32(0)) { $0 << 8 | UInt32(bytes[at + $1]) } }
        let udp = offset + headerLength
        guard bytes.count >= udp + 8 else { return nil }
        let udpLength = Int(bytes[udp + 4]) << 8 | Int(bytes[udp + 5])
        guard udpLength >= 8 else { return nil }
        // Captured before segmentation (UDP GSO on a veth or on the sender), a frame holds many
        // datagrams behind one UDP header and its length fields describe only the first: keep
        // everything captured; `CaptureAnalyzer` walks the datagrams by their own lengths.
        let end = bytes.count
        return Frame(
            source: u32(offset + 12), destination: u32(offset + 16),
            sourcePort: UInt16(bytes[udp]) << 8 | UInt16(bytes[udp + 1]),
            destinationPort: UInt16(bytes[udp + 2]) << 8 | UInt16(bytes[udp + 3]),
            payload: UnsafeRawBufferPointer(rebasing: bytes[(udp + 8)..<max(end, udp + 8)]))
    }

    public static func address(_ value: UInt32) -> String {
        "\(value >> 24).\(value >> 16 & 0xFF).\(value >> 8 & 0xFF).\(value & 0xFF)"
    }
}
