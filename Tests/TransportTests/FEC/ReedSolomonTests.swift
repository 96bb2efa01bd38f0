import CQLFEC
import XCTest

@testable import Transport

final class ReedSolomonTests: XCTestCase {
    /// A block of k random source symbols and all its parity, kept for the decode checks.
    struct Block {
        let k: Int
        let m: Int
        let size: Int
        var symbols: [[UInt8]]  // k sources then m parity (indices k..<k+m)

        init(k: Int, m: Int, size: Int, seed: UInt64) {
            self.k = k
            self.m = m
            self.size = size
            var rng = SplitMix64(seed: seed)
            var sources = (0..<k).map { _ in (0..<size).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
            var parity = [[UInt8]](repeating: [UInt8](repeating: 0, count: size), count: m)
            let sourcePtrs = sources.indices.map { i in
                sources[i].withUnsafeMutableBufferPointer { UnsafePointer($0.baseAddress) }
            }
            _ = sourcePtrs
            // Build pointer arrays from stable allocations.
            let srcBuf = UnsafeMutablePointer<UInt8>.allocate(capacity: k * size)
            let parBuf = UnsafeMutablePointer<UInt8>.allocate(capacity: m * size)
            defer {
                srcBuf.deallocate()
                parBuf.deallocate()
            }
            for i in 0..<k {
                sources[i].withUnsafeBufferPointer { (srcBuf + i * size).update(from: $0.baseAddress!, count: size) }
            }
            var sp = (0..<k).map { UnsafePointer<UInt8>?(srcBuf + $0 * size) }
            var op = (0..<m).map { UnsafeMutablePointer<UInt8>?(parBuf + $0 * size) }
            var idx = (0..<m).map { k + $0 }
            var scratch = [UInt8](repeating: 0, count: k * m)
            sp.withUnsafeMutableBufferPointer { s in
                op.withUnsafeMutableBufferPointer { o in
                    idx.withUnsafeMutableBufferPointer { ix in
                        scratch.withUnsafeMutableBufferPointer { sc in
                            ReedSolomon.encode(
                                sources: UnsafeBufferPointer(s), parityIndices: UnsafeBufferPointer(ix),
                                outputs: UnsafeBufferPointer(o), length: size, scratch: sc)
                        }
                    }
                }
            }
            for i in 0..<m { parity[i] = Array(UnsafeBufferPointer(start: parBuf + i * size, count: size)) }
            symbols = sources + parity
        }

        /// Decodes with the symbols in `lost` (indices 0..<k+m) erased; returns the rebuilt sources.
        func decode(losing lost: Set<Int>) throws -> [[UInt8]] {
            let work = UnsafeMutablePointer<UInt8>.allocate(capacity: k * size)
            defer { work.deallocate() }
            work.initialize(repeating: 0xEE, count: k * size)
            for j in 0..<k where !lost.contains(j) {
                symbols[j].withUnsafeBufferPointer { (work + j * size).update(from: $0.baseAddress!, count: size) }
            }
            let parityCopies = (k..<(k + m)).filter { !lost.contains($0) }.map {
                i -> (Int, UnsafeMutablePointer<UInt8>) in
                let p = UnsafeMutablePointer<UInt8>.allocate(capacity: size)
                symbols[i].withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: size) }
                return (i, p)
            }
            defer { parityCopies.forEach { $0.1.deallocate() } }
            let decoder = BlockDecoder(symbolSize: size)
            try decoder.decode(
                k: k, sources: { work + $0 * size }, present: { !lost.contains($0) },
                parity: parityCopies.map { (index: $0.0, bytes: UnsafePointer($0.1)) })
            return (0..<k).map { Array(UnsafeBufferPointer(start: work + $0 * size, count: size)) }
        }
    }

    func testFieldInverseAndKernelsAgreeWithScalar() {
        for a in 1...255 { XCTAssertEqual(qlfec_mul(UInt8(a), qlfec_inv(UInt8(a))), 1) }
        // Every kernel the CPU has must give the scalar result, including odd lengths (tails).
        let best = qlfec_set_kernel(Int32(QLFEC_KERNEL_AUTO))
        defer { qlfec_set_kernel(Int32(QLFEC_KERNEL_AUTO)) }
        var rng = SplitMix64(seed: 7)
        // Lengths around the two-column step (128 bytes) and shapes past one matrix (255 sources).
        for len in [1, 31, 32, 63, 64, 65, 127, 128, 129, 191, 1400, 1440, 1471, 8900] {
            for (nsrc, ndst) in [(1, 1), (5, 3), (17, 7), (64, 16), (128, 9), (300, 2)] {
                let src = (0..<nsrc).map { _ in (0..<len).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
                let coef = (0..<(nsrc * ndst)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                var results: [[[UInt8]]] = []
                for kernel in Int32(QLFEC_KERNEL_SCALAR)...best {
                    qlfec_set_kernel(kernel)
                    results.append(Self.dot(len: len, coef: coef, src: src, ndst: ndst, accumulate: false))
                    results.append(Self.dot(len: len, coef: coef, src: src, ndst: ndst, accumulate: true))
                }
                for (i, r) in results.enumerated().dropFirst(2) {
                    XCTAssertEqual(r, results[i % 2], "len \(len) \(nsrc)x\(ndst) accumulate \(i % 2 == 1)")
                }
            }
        }
    }

    func testCauchyInverseMultipliesToIdentity() {
        for n in [1, 2, 5, 16, 55] {
            let x = (0..<n).map { UInt8(254 - $0) }
            let y = (0..<n).map { UInt8($0 * 2) }
            var inv = [UInt8](repeating: 0, count: n * n)
            XCTAssertEqual(qlfec_cauchy_inverse(x, y, Int32(n), &inv), 0)
            for i in 0..<n {
                for j in 0..<n {
                    var acc: UInt8 = 0
                    for l in 0..<n { acc ^= qlfec_mul(qlfec_inv(x[i] ^ y[l]), inv[l * n + j]) }
                    XCTAssertEqual(acc, i == j ? 1 : 0)
                }
            }
        }
        var bad = [UInt8](repeating: 0, count: 4)
        XCTAssertEqual(qlfec_cauchy_inverse([1, 2], [2, 3], 2, &bad), -1, "x equal to y must be refused")
    }

    func testRecoversFromEveryErasureClass() throws {
        for (k, m, size, seed) in [
            (8, 4, 512, 1), (32, 8, 1400, 2), (64, 16, 1400, 3), (200, 55, 1400, 4), (16, 4, 8900, 5),
        ] {
            let block = Block(k: k, m: m, size: size, seed: UInt64(seed))
            let original = Array(block.symbols.prefix(k))
            var rng = SplitMix64(seed: UInt64(seed) * 31)
            let patterns: [(String, Set<Int>)] = [
                ("none", []),
                ("one source", [Int(rng.next() % UInt64(k))]),
                ("sources only, exactly m", Set((0..<k).shuffled(using: &rng).prefix(m))),
                ("parity only", Set((k..<(k + m)).shuffled(using: &rng).prefix(m))),
                (
                    "mixed, exactly m",
                    Set(
                        (0..<k).shuffled(using: &rng).prefix(m / 2)
                            + (k..<(k + m)).shuffled(using: &rng).prefix(m - m / 2))
                ),
            ]
            for (name, lost) in patterns {
                XCTAssertEqual(try block.decode(losing: lost), original, "(\(k),\(m))/\(size) \(name)")
            }
            // m + 1 lost: not enough symbols, must fail clearly.
            let tooMany = Set((0..<k).shuffled(using: &rng).prefix(min(k, m + 1)))
            XCTAssertThrowsError(try block.decode(losing: tooMany)) { error in
                XCTAssertEqual((error as? TransportError)?.code, .decodeFailed)
            }
        }
    }

    static func dot(len: Int, coef: [UInt8], src: [[UInt8]], ndst: Int, accumulate: Bool = false) -> [[UInt8]] {
        let nsrc = src.count
        let s = UnsafeMutablePointer<UInt8>.allocate(capacity: nsrc * len)
        let d = UnsafeMutablePointer<UInt8>.allocate(capacity: ndst * len)
        defer {
            s.deallocate()
            d.deallocate()
        }
        for i in 0..<nsrc { src[i].withUnsafeBufferPointer { (s + i * len).update(from: $0.baseAddress!, count: len) } }
        d.initialize(repeating: 0x55, count: ndst * len)
        let sp = (0..<nsrc).map { UnsafePointer<UInt8>?(s + $0 * len) }
        let dp = (0..<ndst).map { UnsafeMutablePointer<UInt8>?(d + $0 * len) }
        qlfec_dot(len, Int32(nsrc), Int32(ndst), coef, sp, dp, accumulate ? 1 : 0)
        return (0..<ndst).map { Array(UnsafeBufferPointer(start: d + $0 * len, count: len)) }
    }
}
