import CCrypto

/// Incremental SHA-256 through OpenSSL's EVP interface (SHA-NI where the CPU has it).
///
/// A class because it owns an `EVP_MD_CTX`; not shared between threads.
public final class SHA256 {
    private let ctx: OpaquePointer

    public init() {
        // EVP_MD_CTX_new fails only when out of memory.
        guard let ctx = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new: out of memory") }
        self.ctx = ctx
        EVP_DigestInit_ex(ctx, EVP_sha256(), nil)
    }

    deinit { EVP_MD_CTX_free(ctx) }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        EVP_DigestUpdate(ctx, base, bytes.count)
    }

    /// Ends the computation; the hasher must not be updated afterwards.
    public func finalize() -> SHA256Digest {
        var out = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &out) { raw in
            var len: UInt32 = 0
            EVP_DigestFinal_ex(ctx, raw.baseAddress!.assumingMemoryBound(to: UInt8.self), &len)
        }
        return withUnsafeBytes(of: &out) { SHA256Digest(bytes: $0) }
    }

    /// Digest of a buffer in one call.
    public static func hash(_ bytes: UnsafeRawBufferPointer) -> SHA256Digest {
        let h = SHA256()
        h.update(bytes)
        return h.finalize()
    }
}
