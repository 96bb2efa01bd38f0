import CQLFEC

/// Rebuilds the lost source symbols of one block from the received ones.
///
/// Owns its scratch space (sized for the largest block) so decoding allocates nothing.
/// A class because it owns buffers; one per receiver, not shared between threads.
public final class BlockDecoder {
    public let symbolSize: Int
    private let scratch: UnsafeMutableRawPointer  // 255 symbols for the e intermediate results
    private var coefficients = [UInt8](repeating: 0, count: 255 * 255)
    private var inverse = [UInt8](repeating: 0, count: 255 * 255)
    private var knownPtrs = [UnsafePointer<UInt8>?](repeating: nil, count: 255)
    private var lostPtrs = [UnsafeMutablePointer<UInt8>?](repeating: nil, count: 255)
    private var tempPtrs = [UnsafePointer<UInt8>?](repeating: nil, count: 255)
    private var tempMutPtrs = [UnsafeMutablePointer<UInt8>?](repeating: nil, count: 255)
    private var lost = [UInt8](repeating: 0, count: 255)
    private var parityIdx = [UInt8](repeating: 0, count: 255)

    public init(symbolSize: Int) {
        self.symbolSize = symbolSize
        // 64-byte alignment for the vector kernels' stores.
        scratch = UnsafeMutableRawPointer.allocate(byteCount: 255 * symbolSize, alignment: 64)
        for i in 0..<255 {
            let p = (scratch + i * symbolSize).assumingMemoryBound(to: UInt8.self)
            tempPtrs[i] = UnsafePointer(p)
            tempMutPtrs[i] = p
        }
    }

    deinit { scratch.deallocate() }

    /// Rebuilds the missing sources of a block in place.
    ///
    /// - Parameters:
    ///   - k: Source symbols in the block.
    ///   - sources: Pointer to source symbol `j` (the destination for lost ones), `k` entries.
    ///   - present: Whether source `j` was received.
    ///   - parity: (index, bytes) of received parity symbols; at least as many as lost sources.
    /// - Returns: The number of sources rebuilt.
    /// - Throws: `.decodeFailed` if fewer symbols than `k` are at hand or an index is invalid.
    @discardableResult
    public func decode(
        k: Int,
        sources: (Int) -> UnsafeMutablePointer<UInt8>,
        present: (Int) -> Bool,
        parity: [(index: Int, bytes: UnsafePointer<UInt8>)]
    ) throws(TransportError) -> Int {
        var e = 0
        var known = 0
        for j in 0..<k {
            if present(j) {
                knownPtrs[known] = UnsafePointer(sources(j))
                known += 1
            } else {
                lost[e] = UInt8(j)
                lostPtrs[e] = sources(j)
                e += 1
            }
        }
        if e == 0 { return 0 }
        guard parity.count >= e else {
            throw TransportError(.decodeFailed, "block needs \(e) parity symbols, has \(parity.count)")
        }
        for i in 0..<e {
            let p = parity[i].index
            guard p >= k, p < ReedSolomon.maxSymbols else {
                throw TransportError(.decodeFailed, "parity index \(p) outside \(k)..<255")
            }
            parityIdx[i] = UInt8(p)
        }
        // r_i = parity_i ⊕ Σ_{j known} C(p_i, j) s_j  (the lost sources' share of parity i).
        var row = 0
        for i in 0..<e {
            tempMutPtrs[i]!.update(from: parity[i].bytes, count: symbolSize)
            var col = 0
            for j in 0..<k where present(j) {
                coefficients[row * known + col] = ReedSolomon.coefficient(parity: Int(parityIdx[i]), source: j)
                col += 1
            }
            row += 1
        }
        if known > 0 {
            coefficients.withUnsafeBufferPointer { c in
                knownPtrs.withUnsafeBufferPointer { src in
                    tempMutPtrs.withUnsafeBufferPointer { dst in
                        qlfec_dot(
                            symbolSize, Int32(known), Int32(e), c.baseAddress, src.baseAddress, dst.baseAddress, 1)
                    }
                }
            }
        }
        // s_lost = M⁻¹ r with M[i][l] = 1 / (p_i ⊕ lost_l), a Cauchy matrix.
        let rc = parityIdx.withUnsafeBufferPointer { x in
            lost.withUnsafeBufferPointer { y in
                inverse.withUnsafeMutableBufferPointer { out in
                    qlfec_cauchy_inverse(x.baseAddress, y.baseAddress, Int32(e), out.baseAddress)
                }
            }
        }
        guard rc == 0 else { throw TransportError(.decodeFailed, "duplicate parity indices in block") }
        // inverse maps r (indexed by parity row) to the lost sources: s_l = Σ_i inv[l][i] r_i.
        inverse.withUnsafeBufferPointer { c in
            tempPtrs.withUnsafeBufferPointer { src in
                lostPtrs.withUnsafeBufferPointer { dst in
                    qlfec_dot(symbolSize, Int32(e), Int32(e), c.baseAddress, src.baseAddress, dst.baseAddress, 0)
                }
            }
        }
        return e
    }
}
