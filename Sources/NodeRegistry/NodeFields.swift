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
        guard (UInt8(parts[0], radix: 16) ?? 1) & 1 == 0 else {
            throw QlustarError(
                .invalidArgument, "MAC address \(mac) is a multicast address; a NIC's address is unicast")
        }
        return mac
    }

    /// An IPv4 address with an optional prefix length (`10.0.0.5` or `10.0.0.5/16`; /24 when
    /// none is given), not the network or broadcast address of that prefix.
    public static func ipv4(_ text: String, loopback: Bool = false) throws(QlustarError) -> (
        address: String, prefix: Int
    ) {
        let pieces = text.split(separator: "/", omittingEmptySubsequences: false)
        let octets = pieces[0].split(separator: ".", omittingEmptySubsequences: false)
        guard pieces.count <= 2, octets.count == 4,
            octets.allSatisfy({ o in
                !o.isEmpty && o.count <= 3 && o.allSatisfy { $0.isASCII && $0.isNumber } && (UInt8(o) != nil)
            }),
            !octets.contains(where: { $0.count > 1 && $0.hasPrefix("0") })
        else {
            throw QlustarError(
                .invalidArgument, "IP address \(quoted(text)) is not an IPv4 address like 10.0.0.5 or 10.0.0.5/16")
        }
        let prefix = pieces.count == 2 ? Int(pieces[1]) : 24
        guard let prefix, (8...30).contains(prefix) else {
            throw QlustarError(.invalidArgument, "netmask of \(quoted(text)) must be a prefix length from /8 to /30")
        }
        // Each octet is 1–3 ASCII digits below 256 (checked above).
        let value = octets.reduce(UInt32(0)) { $0 << 8 | UInt32(UInt8($1) ?? 0) }
        let host = value & (UInt32.max >> UInt32(prefix))
        guard host != 0, host != UInt32.max >> UInt32(prefix) else {
            throw QlustarError(
                .invalidArgument, "\(pieces[0]) is the network or broadcast address of /\(prefix), not a host's")
        }
        guard octets[0] != "0", value >> 24 < 224, loopback || octets[0] != "127" else {
            throw QlustarError(.invalidArgument, "\(pieces[0]) cannot be a node's address (0/8, 127/8 or 224/3)")
        }
        return (String(pieces[0]), prefix)
    }

    /// A BMC address: an IPv4 address (loopback allowed) with an optional UDP port (`10.2.0.5`, `10.2.0.5:6230`);
    /// the standard port 623 is not stored, so one BMC has one spelling.
    public static func bmc(_ text: String) throws(QlustarError) -> String {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        let port = parts.count == 2 ? UInt16(parts[1]) : 623
        guard parts.count <= 2, let port, port > 0, !parts[0].contains("/") else {
            throw QlustarError(
                .invalidArgument, "BMC address \(quoted(text)) is not an IPv4 address like 10.2.0.5 or 10.2.0.5:623")
        }
        let address: String
        // Loopback too: a BMC simulator (ipmi_sim) on the head node for a virtual node.
        do { address = try ipv4(String(parts[0]) + "/8", loopback: true).address } catch {
            throw QlustarError(.invalidArgument, "BMC address \(quoted(text)): \(error.message)")
        }
        return port == 623 ? address : "\(address):\(port)"
    }

    /// `address` (dotted quad) plus `step`, with its port when it has one.
    /// - Throws: `.invalidArgument` when the result leaves the prefix `/prefix` or IPv4.
    public static func ipv4(_ address: String, plus step: Int, prefix: Int) throws(QlustarError) -> String {
        let hostPart = address.split(separator: ":", maxSplits: 1)
        let octets = hostPart[0].split(separator: ".").compactMap { UInt32($0) }
        guard octets.count == 4 else { throw QlustarError(.invalidArgument, "\(quoted(address)) is not IPv4") }
        let value = octets.reduce(UInt32(0)) { $0 << 8 | $1 }
        let hostMask = UInt32.max >> UInt32(prefix)
        let (sum, overflow) = UInt64(value).addingReportingOverflow(UInt64(step))
        guard !overflow, sum <= UInt64(UInt32.max), UInt32(sum) & ~hostMask == value & ~hostMask,
            UInt32(sum) & hostMask != hostMask
        else {
            throw QlustarError(
                .invalidArgument,
                "counting up from \(hostPart[0]) by \(step) leaves its network /\(prefix) (give a larger prefix)")
        }
        let v = UInt32(sum)
        let dotted = "\(v >> 24).\(v >> 16 & 0xFF).\(v >> 8 & 0xFF).\(v & 0xFF)"
        return hostPart.count == 2 ? dotted + ":" + hostPart[1] : dotted
    }

    /// `mac` (as `mac(_:)` returns it) plus `step`, counted as one 48-bit number.
    /// - Throws: `.invalidArgument` when the count leaves the MAC's vendor prefix (OUI).
    public static func mac(_ mac: String, plus step: Int) throws(QlustarError) -> String {
        let value = mac.split(separator: ":").reduce(UInt64(0)) { $0 << 8 | (UInt64($1, radix: 16) ?? 0) }
        let (sum, overflow) = value.addingReportingOverflow(UInt64(step))
        guard !overflow, sum >> 24 == value >> 24 else {
            throw QlustarError(
                .invalidArgument, "counting up from MAC \(mac) by \(step) leaves its vendor prefix \(mac.prefix(8))")
        }
        return (0..<6).map { String(format: "%02x", (sum >> (40 - 8 * UInt64($0))) & 0xFF) }.joined(separator: ":")
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
