import CQLFEC

/// Systematic Reed–Solomon over GF(2⁸) with a Cauchy generator.
///
/// Symbols `0..<k` of a block are the source symbols; symbol `p` in `k..<255` is the parity
/// `Σ_j C(p, j) · s_j` with `C(p, j) = 1 / (p ⊕ j)`. Every square submatrix of a Cauchy matrix is
/// invertible, so any `k` of the `255` symbols rebuild the block, and repair can keep sending
/// *fresh* parity indices that no receiver has seen.
///
/// Decoding solves only for the lost sources: with `e` sources lost and `e` parity symbols at
/// hand, the parities minus the known sources' contributions leave an `e × e` Cauchy system whose
/// inverse has a closed form (O(e²)), so the cost grows with the losses, not with `k`.
public enum ReedSolomon {
    /// Highest symbol index plus one.
    public static let maxSymbols = 255

    /// The vector kernel chosen for this CPU ("gfni-avx512", "avx2" or "scalar").
    public static var kernelName: String { String(cString: qlfec_kernel_name()) }

    /// The generator coefficient of source `source` in parity symbol `parity` (parity ≥ k > source).
    @inlinable
    public static func coefficient(parity: Int, source: Int) -> UInt8 {
        qlfec_inv(UInt8(truncatingIfNeeded: parity ^ source))
    }

    /// Computes parity symbols.
    ///
    /// - Parameters:
    ///   - sources: The block's `k` source symbols, each `length` bytes (pad a short last symbol).
    ///   - parityIndices: Symbol indices to produce, each in `k..<255`.
    ///   - outputs: One buffer of `length` bytes per parity index.
    ///   - length: Symbol size in bytes.
    ///   - scratch: At least `parityIndices.count * sources.count` bytes for the coefficients.
    public static func encode(
        sources: UnsafeBufferPointer<UnsafePointer<UInt8>?>,
        parityIndices: UnsafeBufferPointer<Int>,
        outputs: UnsafeBufferPointer<UnsafeMutablePointer<UInt8>?>,
        length: Int,
        scratch: UnsafeMutableBufferPointer<UInt8>
    ) {
        let k = sources.count
        let n = parityIndices.count
        precondition(outputs.count >= n && scratch.count >= n * k, "encode buffers too small")
        for (o, p) in parityIndices.enumerated() {
            precondition(p >= k && p < maxSymbols, "parity index \(p) outside \(k)..<\(maxSymbols)")
            for j in 0..<k { scratch[o * k + j] = coefficient(parity: p, source: j) }
        }
        qlfec_dot(length, Int32(k), Int32(n), scratch.baseAddress, sources.baseAddress, outputs.baseAddress, 0)
    }
}
