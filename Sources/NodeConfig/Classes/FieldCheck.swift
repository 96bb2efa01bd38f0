import Foundation
import Platform

/// Checks of the values config classes carry. Everything here ends up in files on a node
/// (shell option files, interfaces files, systemd units), so line breaks, quotes and control
/// characters are refused where they could change the meaning of what is written.
enum FieldCheck {
    static func fail(_ what: String, _ message: String) -> QlustarError {
        QlustarError(.invalidArgument, "\(what): \(message)")
    }

    /// A single line of printable text without control characters, at most `limit` bytes.
    static func line(_ text: String, _ what: String, limit: Int = 256, allowSpaces: Bool = true) throws(QlustarError)
        -> String
    {
        guard !text.isEmpty, text.utf8.count <= limit else {
            throw fail(what, "must be 1–\(limit) bytes (got \(text.utf8.count))")
        }
        guard !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw fail(what, "\(ImageName.quoted(text)) contains a line break or control character")
        }
        if !allowSpaces, text.contains(where: \.isWhitespace) {
            throw fail(what, "\(ImageName.quoted(text)) must not contain spaces")
        }
        return text
    }

    /// A network interface name as the kernel accepts it: 1–15 bytes of letters, digits, '.', '_', '-', ':'.
    static func interface(_ text: String, _ what: String) throws(QlustarError) -> String {
        let bytes = Array(text.utf8)
        let ok =
            (1...15).contains(bytes.count)
            && bytes.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2E
                    || c == 0x5F || c == 0x2D
                    || c == 0x3A
            } && text != "." && text != ".."
        guard ok else {
            throw fail(
                what, "interface name \(ImageName.quoted(text)) must be 1–15 letters, digits, '.', '_', '-' or ':'")
        }
        return text
    }

    /// An absolute path on the node without '..', '.', empty components, spaces or control characters.
    static func absolutePath(_ text: String, _ what: String) throws(QlustarError) -> String {
        _ = try line(text, what, limit: 1024, allowSpaces: false)
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard text.hasPrefix("/"),
            text == "/" || !parts.dropFirst().contains(where: { $0.isEmpty || $0 == "." || $0 == ".." })
        else {
            throw fail(what, "\(ImageName.quoted(text)) must be an absolute path without '.', '..' or '//'")
        }
        return text
    }

    /// An IPv4 address (dotted quad, no leading zeros).
    static func ipv4(_ text: String, _ what: String) throws(QlustarError) -> UInt32 {
        let octets = text.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4,
            octets.allSatisfy({
                !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) && Int($0)! <= 255
            }),
            !octets.contains(where: { $0.count > 1 && $0.hasPrefix("0") })
        else {
            throw fail(what, "\(ImageName.quoted(text)) is not an IPv4 address like 10.0.0.1")
        }
        return octets.reduce(UInt32(0)) { $0 << 8 | UInt32($1)! }
    }

    /// A network as ADDRESS/PREFIX (8–30) whose host bits are zero.
    static func network(_ text: String, _ what: String) throws(QlustarError) -> IPv4Network {
        let pieces = text.split(separator: "/", omittingEmptySubsequences: false)
        guard pieces.count == 2, let prefix = Int(pieces[1]), (8...30).contains(prefix) else {
            throw fail(what, "\(ImageName.quoted(text)) is not a network like 10.1.0.0/16 (prefix 8–30)")
        }
        let address = try ipv4(String(pieces[0]), what)
        let network = IPv4Network(address: address, prefix: prefix)
        guard address & ~network.mask == 0 else {
            throw fail(
                what,
                "\(text) has host bits set; the network is \(IPv4Network.format(address & network.mask))/\(prefix)")
        }
        return network
    }

    /// A config name: as an image name (letters, digits, '.', '_', '+', '-').
    static func name(_ text: String, _ what: String) throws(QlustarError) -> String {
        do { return try ImageName(text).value } catch {
            throw QlustarError(.invalidArgument, error.message.replacingOccurrences(of: "image name", with: what))
        }
    }
}

/// An IPv4 network; maps a node's host number into it (how a node's other addresses — IPoIB,
/// IPMI, a second Ethernet — follow from its boot address, as QluMan's networks do).
public struct IPv4Network: Sendable, Equatable {
    public let address: UInt32
    public let prefix: Int
    public var mask: UInt32 { prefix == 0 ? 0 : UInt32.max << UInt32(32 - prefix) }

    /// The address with `host`'s host number (its bits below `hostPrefix`) in this network.
    /// - Throws: `.invalidArgument` when the host number does not fit or lands on the network
    ///   or broadcast address.
    public func address(forHost host: UInt32, hostPrefix: Int, node: String) throws(QlustarError) -> UInt32 {
        let hostBits = host & ~(hostPrefix == 0 ? 0 : UInt32.max << UInt32(32 - hostPrefix))
        guard hostBits & mask == 0, hostBits != 0, hostBits != ~mask else {
            throw QlustarError(
                .invalidArgument,
                "node \(node): host number \(hostBits) of its boot address does not fit network \(IPv4Network.format(address))/\(prefix)"
            )
        }
        return address | hostBits
    }

    public static func format(_ value: UInt32) -> String {
        "\(value >> 24).\(value >> 16 & 0xFF).\(value >> 8 & 0xFF).\(value & 0xFF)"
    }

    public var netmask: String { IPv4Network.format(mask) }
}
