import CCrypto
import Platform

/// Per-datagram authentication: HMAC-SHA256 over header and payload with the session key,
/// truncated to 16 bytes and appended to the datagram (`PacketFlags.authenticated`).
///
/// The key is handed out over the (authenticated) control channel, so a host that is not a
/// session member cannot forge a symbol that would poison a block. The padded-key states are
/// computed once; each tag then costs one context copy and the digest of the datagram.
/// A class because it owns OpenSSL contexts; not shared between threads.
public final class PacketAuthenticator {
    public static let keySize = 32
    private let inner: OpaquePointer
    private let outer: OpaquePointer
    private let work: OpaquePointer

    /// - Parameter key: The session key, 16 to 64 bytes.
    /// - Throws: `TransportError.invalidArgument` for a key of another size.
    public init(key: [UInt8]) throws(TransportError) {
        guard (16...64).contains(key.count) else {
            throw TransportError(.invalidArgument, "session key must be 16 to 64 bytes, got \(key.count)")
        }
        guard let i = EVP_MD_CTX_new(), let o = EVP_MD_CTX_new(), let w = EVP_MD_CTX_new() else {
            fatalError("EVP_MD_CTX_new: out of memory")
        }
        (inner, outer, work) = (i, o, w)
        var ipad = [UInt8](repeating: 0x36, count: 64)
        var opad = [UInt8](repeating: 0x5C, count: 64)
        for (n, byte) in key.enumerated() {
            ipad[n] ^= byte
            opad[n] ^= byte
        }
        EVP_DigestInit_ex(inner, EVP_sha256(), nil)
        EVP_DigestUpdate(inner, ipad, 64)
        EVP_DigestInit_ex(outer, EVP_sha256(), nil)
        EVP_DigestUpdate(outer, opad, 64)
    }

    deinit {
        EVP_MD_CTX_free(inner)
        EVP_MD_CTX_free(outer)
        EVP_MD_CTX_free(work)
    }

    /// A key written as hex digits (32 to 128 of them), as tools and tickets carry it.
    /// - Throws: `.invalidArgument` naming what is wrong.
    public static func key(hex: String) throws(TransportError) -> [UInt8] {
        let chars = Array(hex.utf8)
        guard chars.count % 2 == 0, (32...128).contains(chars.count) else {
            throw TransportError(.invalidArgument, "session key must be 32 to 128 hex digits")
        }
        var key: [UInt8] = []
        key.reserveCapacity(chars.count / 2)
        for i in stride(from: 0, to: chars.count, by: 2) {
            guard let v = UInt8(String(decoding: chars[i..<i + 2], as: UTF8.self), radix: 16) else {
                throw TransportError(.invalidArgument, "session key is not hex")
            }
            key.append(v)
        }
        return key
    }

    /// `key` as lower-case hex digits.
    public static func hex(_ key: [UInt8]) -> String {
        key.map { String(printf: "%02x", $0) }.joined()
    }

    /// A fresh random key from OpenSSL's CSPRNG.
    public static func randomKey() -> [UInt8] {
        var key = [UInt8](repeating: 0, count: keySize)
        guard RAND_bytes(&key, Int32(keySize)) == 1 else { fatalError("RAND_bytes failed") }
        return key
    }

    /// Writes the 16-byte tag of `parts` (concatenated) to `tag`.
    public func tag(_ parts: UnsafeRawBufferPointer..., into tag: UnsafeMutableRawPointer) {
        var digest = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &digest) { d in
            let out = d.baseAddress!.assumingMemoryBound(to: UInt8.self)
            var len: UInt32 = 0
            EVP_MD_CTX_copy_ex(work, inner)
            for p in parts where p.count > 0 { EVP_DigestUpdate(work, p.baseAddress, p.count) }
            EVP_DigestFinal_ex(work, out, &len)
            EVP_MD_CTX_copy_ex(work, outer)
            EVP_DigestUpdate(work, out, 32)
            EVP_DigestFinal_ex(work, out, &len)
            tag.copyMemory(from: d.baseAddress!, byteCount: PacketHeader.tagSize)
        }
    }

    /// Checks the tag at the end of `datagram` (header ‖ payload ‖ tag) in constant time.
    public func verify(_ datagram: UnsafeRawBufferPointer) -> Bool {
        guard datagram.count >= PacketHeader.size + PacketHeader.tagSize else { return false }
        let bodyEnd = datagram.count - PacketHeader.tagSize
        var expected = (UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &expected) { e in
            tag(UnsafeRawBufferPointer(rebasing: datagram[0..<bodyEnd]), into: e.baseAddress!)
        }
        return withUnsafeBytes(of: &expected) { e in
            CRYPTO_memcmp(e.baseAddress, datagram.baseAddress! + bodyEnd, PacketHeader.tagSize) == 0
        }
    }
}
