import CCrypto
import Platform

/// Confidential symbols: DATA and PARITY payloads sealed with AES-128-GCM (`PacketFlags.sealed`),
/// the 32-byte header as additional data, the 16-byte GCM tag after the ciphertext.
///
/// Keys. The session key handed out over TLS is a master key; nothing is sealed or tagged with
/// it directly. `controlKey(master:)` derives the HMAC key of the session's control datagrams
/// (ANNOUNCE, NAK, STATUS, FIN stay readable but tagged); the sealing key is derived from the master
/// key and a 16-byte salt that each sender draws afresh and announces (in the tagged ANNOUNCE):
/// `HMAC-SHA256(master, "ql-mcast seal v1" ‖ salt)[0..<16]`. So two senders never share a sealing
/// key, even when an operator reuses a master key for `ql-mcast send`.
///
/// Nonces. The 96-bit GCM nonce is the header's session id, object id and sequence number. A
/// sender numbers every datagram it builds with the next sequence number, so within one sealing
/// key a nonce repeats only if the 32-bit sequence wraps; `seal` refuses to seal once the sequence
/// would come round to the first one sealed (2³² datagrams: 5.6 TiB of 1,400-byte symbols in one
/// session) and the sender ends the session with an error instead. Receivers never seal.
///
/// A class because it owns OpenSSL contexts; one per session side, used from one thread.
public final class PacketSealer {
    public static let saltSize = 16
    static let keySize = 16
    private let encrypt: OpaquePointer
    private let decrypt: OpaquePointer
    /// Sequence of the first datagram sealed, and how far past it the last one was.
    private var firstSequence: UInt32?
    private var lastOffset: UInt32 = 0
    /// Set when `seal` refused because the sequence came round: the key is used up.
    public private(set) var exhausted = false
    /// The salt this sealer's key was derived with (announced by the sender).
    public let salt: [UInt8]

    /// - Parameters:
    ///   - master: The session key (16 to 64 bytes).
    ///   - salt: The sender's salt (`saltSize` bytes), from its ANNOUNCE.
    /// - Throws: `.invalidArgument` for a key or salt of another size.
    public init(master: [UInt8], salt: [UInt8]) throws(TransportError) {
        guard (16...64).contains(master.count) else {
            throw TransportError(.invalidArgument, "session key must be 16 to 64 bytes, got \(master.count)")
        }
        guard salt.count == PacketSealer.saltSize else {
            throw TransportError(
                .invalidArgument, "sealing salt must be \(PacketSealer.saltSize) bytes, got \(salt.count)")
        }
        self.salt = salt
        let key = Array(PacketSealer.derive(master, label: "ql-mcast seal v1", salt).prefix(PacketSealer.keySize))
        guard let e = EVP_CIPHER_CTX_new() else {
            throw TransportError(.invalidArgument, "EVP_CIPHER_CTX_new: out of memory")
        }
        guard let d = EVP_CIPHER_CTX_new() else {
            EVP_CIPHER_CTX_free(e)
            throw TransportError(.invalidArgument, "EVP_CIPHER_CTX_new: out of memory")
        }
        // Set up before the contexts are ours: a throw here must not reach deinit.
        guard EVP_EncryptInit_ex(e, EVP_aes_128_gcm(), nil, key, nil) == 1,
            EVP_DecryptInit_ex(d, EVP_aes_128_gcm(), nil, key, nil) == 1
        else {
            EVP_CIPHER_CTX_free(e)
            EVP_CIPHER_CTX_free(d)
            throw TransportError(
                .invalidArgument, "AES-128-GCM is not available in this libcrypto (OpenSSL configuration?)")
        }
        (encrypt, decrypt) = (e, d)
    }

    deinit {
        EVP_CIPHER_CTX_free(encrypt)
        EVP_CIPHER_CTX_free(decrypt)
    }

    /// A fresh salt from OpenSSL's CSPRNG.
    public static func randomSalt() -> [UInt8] {
        var salt = [UInt8](repeating: 0, count: saltSize)
        guard RAND_bytes(&salt, Int32(saltSize)) == 1 else { fatalError("RAND_bytes failed") }
        return salt
    }

    /// The HMAC key of a sealed session's control datagrams.
    public static func controlKey(master: [UInt8]) -> [UInt8] { derive(master, label: "ql-mcast control v1", []) }

    /// HMAC-SHA256(master, label ‖ salt).
    static func derive(_ master: [UInt8], label: String, _ salt: [UInt8]) -> [UInt8] {
        let message = Array(label.utf8) + salt
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        guard HMAC(EVP_sha256(), master, Int32(master.count), message, message.count, &out, &length) != nil,
            length == 32
        else {
            fatalError("HMAC-SHA256 failed")
        }
        return out
    }

    /// The nonce of the datagram whose encoded header starts at `header`: session id ‖ object id ‖ sequence.
    private static func nonce(_ header: UnsafeRawPointer) -> (UInt64, UInt32) {
        (
            header.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
            header.loadUnaligned(fromByteOffset: 24, as: UInt32.self)
        )
    }

    /// Encrypts `payload` into `ciphertext` (same length) and writes the tag, with the encoded
    /// header at `header` (its `.sealed` flag already set) as additional data.
    /// - Returns: false when the sequence number came round (`exhausted`): nothing was written.
    public func seal(
        header: UnsafeRawPointer, payload: UnsafeRawBufferPointer, into ciphertext: UnsafeMutableRawPointer,
        tag: UnsafeMutableRawPointer
    ) -> Bool {
        guard !exhausted else { return false }
        let sequence = UInt32(bigEndian: header.loadUnaligned(fromByteOffset: 24, as: UInt32.self))
        if let first = firstSequence {
            let offset = sequence &- first
            guard offset > lastOffset else {
                exhausted = true
                return false
            }
            lastOffset = offset
        } else {
            firstSequence = sequence
        }
        var iv = PacketSealer.nonce(header)
        var n: Int32 = 0
        let ok = withUnsafeBytes(of: &iv) { iv in
            EVP_EncryptInit_ex(encrypt, nil, nil, nil, iv.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 1
                && EVP_EncryptUpdate(
                    encrypt, nil, &n, header.assumingMemoryBound(to: UInt8.self), Int32(PacketHeader.size)) == 1
                && (payload.count == 0
                    || EVP_EncryptUpdate(
                        encrypt, ciphertext.assumingMemoryBound(to: UInt8.self), &n,
                        payload.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(payload.count)) == 1)
                && EVP_EncryptFinal_ex(encrypt, ciphertext.assumingMemoryBound(to: UInt8.self) + payload.count, &n) == 1
                && EVP_CIPHER_CTX_ctrl(encrypt, EVP_CTRL_AEAD_GET_TAG, Int32(PacketHeader.tagSize), tag) == 1
        }
        if !ok { fatalError("AES-GCM encryption failed") }  // only on a broken libcrypto: no input reaches this
        return true
    }

    /// Checks the tag of a sealed `datagram` (header ‖ ciphertext ‖ tag) and decrypts its payload
    /// into `plaintext` (room for `PacketHeader.maxPayload` bytes).
    /// - Returns: The payload length, or nil when the tag is wrong (`plaintext` then holds nothing usable).
    public func open(_ datagram: UnsafeRawBufferPointer, into plaintext: UnsafeMutableRawPointer) -> Int? {
        guard datagram.count >= PacketHeader.size + PacketHeader.tagSize, let base = datagram.baseAddress else {
            return nil
        }
        let length = datagram.count - PacketHeader.size - PacketHeader.tagSize
        guard length <= PacketHeader.maxPayload else { return nil }
        var iv = PacketSealer.nonce(base)
        var tag = (UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &tag) {
            $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: datagram[(datagram.count - 16)...]))
        }
        var n: Int32 = 0
        let ok = withUnsafeBytes(of: &iv) { iv in
            withUnsafeMutableBytes(of: &tag) { tag in
                let out = plaintext.assumingMemoryBound(to: UInt8.self)
                return EVP_DecryptInit_ex(decrypt, nil, nil, nil, iv.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    == 1
                    && EVP_DecryptUpdate(
                        decrypt, nil, &n, base.assumingMemoryBound(to: UInt8.self), Int32(PacketHeader.size)) == 1
                    && (length == 0
                        || EVP_DecryptUpdate(
                            decrypt, out, &n, (base + PacketHeader.size).assumingMemoryBound(to: UInt8.self),
                            Int32(length)) == 1)
                    && EVP_CIPHER_CTX_ctrl(decrypt, EVP_CTRL_AEAD_SET_TAG, Int32(PacketHeader.tagSize), tag.baseAddress)
                        == 1
                    && EVP_DecryptFinal_ex(decrypt, out + length, &n) == 1
            }
        }
        return ok ? length : nil
    }
}
