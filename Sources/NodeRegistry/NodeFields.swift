import Foundation
import Platform

/// Validated values of the node registry: what an administrator types is checked before it is
/// stored, with an error that names the value and says what is expected.
public enum NodeFields {
    /// A host name: 1–63 letters, digits and '-', not starting or ending with '-' (RFC 1123).
    public static func hostname(_ text: String) throws(QlustarError) -> String {
        let bytes = Array(text.utf8)
        let valid =
            (1...63).contains(bytes.count) && bytes.first != 0x2D && bytes.last != 0x2D
            && bytes.allSatisfy {
                ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x41 && $0 <= 0x5A) || $0 == 0x2D
            }
        guard valid else {
            throw QlustarError(
                .invalidArgument,
                "node name \(quoted(text)) is not a host name (1–63 letters, digits, '-'; not starting or ending with '-')"
            )
        }
        return text.lowercased()
    }

    /// A MAC address as six hex pairs separated by ':' or '-', stored lower-case with ':'.
    public static func mac(_ text: String) throws(QlustarError) -> String {
        let parts = text.split(separator: text.contains("-") ? "-" : ":", omittingEmptySubsequences: false)
        guard parts.count == 6, parts.allSatisfy({ $0.count == 2 && UInt8($0, radix: 16) != nil }) else {
            throw QlustarError(
                .invalidArgument, "MAC address \(quoted(text)) is not six hex pairs like 52:54:00:12:34:56")
        }
        let mac = parts.joined(separator: ":").lowercased()
        guard UInt8(parts[0], radix: 16)! & 1 == 0 else {
            throw QlustarError(
                .invalidArgument, "MAC address \(mac) is a multicast address; a NIC's address is unicast")
        }
        return mac
    }

    /// An IPv4 address with an optional prefix length (`10.0.0.5` or `10.0.0.5/16`; /24 when
    /// none is given), not the network or broadcast address of that prefix.
    public static func ipv4(_ text: String) throws(QlustarError) -> (address: String, prefix: Int) {
        let pieces = text.split(separator: "/", omittingEmptySubsequences: false)
        let octets = pieces[0].split(separator: ".", omittingEmptySubsequences: false)
        guard pieces.count <= 2, octets.count == 4,
            octets.allSatisfy({ !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isNumber) && Int($0)! <= 255 }),
            !octets.contains(where: { $0.count > 1 && $0.hasPrefix("0") })
        else {
            throw QlustarError(
                .invalidArgument, "IP address \(quoted(text)) is not an IPv4 address like 10.0.0.5 or 10.0.0.5/16")
        }
        let prefix = pieces.count == 2 ? Int(pieces[1]) : 24
        guard let prefix, (8...30).contains(prefix) else {
            throw QlustarError(.invalidArgument, "netmask of \(quoted(text)) must be a prefix length from /8 to /30")
        }
        let value = octets.reduce(UInt32(0)) { $0 << 8 | UInt32($1)! }
        let host = value & (UInt32.max >> UInt32(prefix))
        guard host != 0, host != UInt32.max >> UInt32(prefix) else {
            throw QlustarError(
                .invalidArgument, "\(pieces[0]) is the network or broadcast address of /\(prefix), not a host's")
        }
        guard octets[0] != "0", Int(octets[0])! < 224, octets[0] != "127" else {
            throw QlustarError(.invalidArgument, "\(pieces[0]) cannot be a node's address (0/8, 127/8 or 224/3)")
        }
        return (String(pieces[0]), prefix)
    }

    /// A group name: as an image name (letters, digits, '.', '_', '+', '-').
    public static func group(_ text: String) throws(QlustarError) -> String {
        do { return try ImageName(text).value } catch {
            throw QlustarError(
                .invalidArgument, error.message.replacingOccurrences(of: "image name", with: "group name"))
        }
    }

    static func quoted(_ text: String) -> String { ImageName.quoted(text) }
}
