import ArgumentParser
import CISAL
import CQLFEC
import Platform
import Transport

/// `ql-bench fec`: encode and decode throughput of our codec against Intel ISA-L in the same run.
///
/// Decode counts everything a receiver pays per block: each block gets its own random erasure
/// pattern, so per-pattern setup (our e×e Cauchy inverse; ISA-L's textbook k×k inversion) is
/// inside the timing.
struct FECBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fec",
        abstract: "Reed–Solomon encode/decode MB/s vs ISA-L, per (k,m) and symbol size."
    )

    @Option(help: "Code shapes as k,m pairs.") var codes: [String] = ["32,8", "64,16", "200,55"]
    @Option(help: "Symbol sizes in bytes.") var sizes: [Int] = [1400, 8900]
    @Option(help: "Alternating repetitions per measurement (median reported).") var reps = 5
    @Option(help: "Source bytes per repetition, in MiB.") var mib = 24
    @Option(help: "Write the table as JSON to this file.") var json: String?

    func run() throws {
        var report = Report(
            benchmark: "fec (kernel: \(ReedSolomon.kernelName))",
            columns: ["code", "symbol", "op", "ours MB/s", "isa-l MB/s", "ratio"])
        for code in codes {
            let parts = code.split(separator: ",").compactMap { Int($0) }
            guard parts.count == 2 else { throw ValidationError("--codes takes k,m pairs, got \(code)") }
            let (k, m) = (parts[0], parts[1])
            guard k >= 1, m >= 1, k + m <= ReedSolomon.maxSymbols else {
                throw ValidationError("--codes \(code): need k ≥ 1, m ≥ 1 and k + m ≤ \(ReedSolomon.maxSymbols)")
            }
            for size in sizes {
                let fixture = FECFixture(k: k, m: m, size: size, totalBytes: mib << 20)
                var ours: [String: [Double]] = [:]
                var isal: [String: [Double]] = [:]
                // A block cannot lose more sources than it has parity for.
                let lostCounts = Array(Set([1, 4, m].filter { $0 <= m })).sorted()
                for _ in 0..<reps {
                    ours["encode", default: []].append(fixture.encodeOurs())
                    isal["encode", default: []].append(fixture.encodeISAL())
                    for lost in lostCounts {
                        ours["decode \(lost) lost", default: []].append(fixture.decodeOurs(lost: lost))
                        isal["decode \(lost) lost", default: []].append(fixture.decodeISAL(lost: lost))
                    }
                }
                for op in ["encode"] + lostCounts.map({ "decode \($0) lost" }) {
                    let o = median(ours[op]!)
                    let i = median(isal[op]!)
                    report.rows.append(["(\(k),\(m))", "\(size)", op, fmt(o, 0), fmt(i, 0), fmt(o / i)])
                }
            }
        }
        report.notes.append("MB/s of source data; decode includes per-block setup for a fresh erasure pattern")
        report.printTable()
        try report.write(json: json)
    }
}

/// Blocks of random data with their parity, reused by every measurement of one (k, m, size).
final class FECFixture {
    let k: Int, m: Int, size: Int, blocks: Int
    let data: UnsafeMutablePointer<UInt8>  // blocks × (k + m) symbols
    let spare: UnsafeMutablePointer<UInt8>  // blocks × m symbols of output space
    var rng = SplitMix64(seed: 42)
    var isalMatrix: [UInt8]
    var isalTables: [UInt8]

    init(k: Int, m: Int, size: Int, totalBytes: Int) {
        (self.k, self.m, self.size) = (k, m, size)
        blocks = max(2, totalBytes / (k * size))
        data = .allocate(capacity: blocks * (k + m) * size)
        spare = .allocate(capacity: blocks * m * size)
        for i in 0..<(blocks * (k + m) * size) { data[i] = UInt8(truncatingIfNeeded: i &* 2_654_435_761 >> 7) }
        spare.initialize(repeating: 0, count: blocks * m * size)
        isalMatrix = [UInt8](repeating: 0, count: (k + m) * k)
        gf_gen_cauchy1_matrix(&isalMatrix, Int32(k + m), Int32(k))
        isalTables = [UInt8](repeating: 0, count: 32 * k * m)
        isalMatrix.withUnsafeMutableBufferPointer { a in
            ec_init_tables(Int32(k), Int32(m), a.baseAddress! + k * k, &isalTables)
        }
        _ = encodeOurs()  // fill parity with our code for our decode runs
    }

    deinit {
        data.deallocate()
        spare.deallocate()
    }

    func symbol(_ b: Int, _ i: Int) -> UnsafeMutablePointer<UInt8> { data + (b * (k + m) + i) * size }
    var sourceBytes: Double { Double(blocks * k * size) }

    func timed(_ body: () -> Void) -> Double {
        let t0 = MonotonicClock.nanoseconds()
        body()
        return sourceBytes / (Double(MonotonicClock.nanoseconds() - t0) / 1e9) / 1e6
    }

    func encodeOurs() -> Double {
        var src = [UnsafePointer<UInt8>?](repeating: nil, count: k)
        var out = [UnsafeMutablePointer<UInt8>?](repeating: nil, count: m)
        let idx = (0..<m).map { k + $0 }
        var scratch = [UInt8](repeating: 0, count: k * m)
        return timed {
            for b in 0..<blocks {
                for j in 0..<k { src[j] = UnsafePointer(symbol(b, j)) }
                for p in 0..<m { out[p] = symbol(b, k + p) }
                src.withUnsafeBufferPointer { s in
                    out.withUnsafeBufferPointer { o in
                        idx.withUnsafeBufferPointer { ix in
                            scratch.withUnsafeMutableBufferPointer { sc in
                                ReedSolomon.encode(sources: s, parityIndices: ix, outputs: o, length: size, scratch: sc)
                            }
                        }
                    }
                }
            }
        }
    }

    func encodeISAL() -> Double {
        var src = [UnsafeMutablePointer<UInt8>?](repeating: nil, count: k)
        var out = [UnsafeMutablePointer<UInt8>?](repeating: nil, count: m)
        return timed {
            for b in 0..<blocks {
                for j in 0..<k { src[j] = symbol(b, j) }
                for p in 0..<m { out[p] = spare + (b * m + p) * size }
                ec_encode_data(Int32(size), Int32(k), Int32(m), &isalTables, &src, &out)
            }
        }
    }

    func pattern(lost: Int) -> [Int] { Array((0..<k).shuffled(using: &rng).prefix(lost)).sorted() }

    func decodeOurs(lost: Int) -> Double {
        let patterns = (0..<blocks).map { _ in pattern(lost: lost) }
        let decoder = BlockDecoder(symbolSize: size)
        var present = [Bool](repeating: true, count: k)
        return timed {
            for b in 0..<blocks {
                for j in 0..<k { present[j] = true }
                for j in patterns[b] { present[j] = false }
                let parity = (0..<lost).map { (index: k + $0, bytes: UnsafePointer(symbol(b, k + $0))) }
                // Rebuild into the spare area so the fixture's data stays intact.
                let out = spare + b * m * size
                var slot = [Int](repeating: -1, count: k)
                for (n, j) in patterns[b].enumerated() { slot[j] = n }
                try! decoder.decode(
                    k: k, sources: { j in slot[j] >= 0 ? out + slot[j] * size : self.symbol(b, j) },
                    present: { present[$0] }, parity: parity)
            }
        }
    }

    /// ISA-L's textbook decode: invert the k×k matrix of surviving rows for every pattern.
    func decodeISAL(lost: Int) -> Double {
        let patterns = (0..<blocks).map { _ in pattern(lost: lost) }
        var sub = [UInt8](repeating: 0, count: k * k)
        var inv = [UInt8](repeating: 0, count: k * k)
        var dec = [UInt8](repeating: 0, count: k * lost)
        var tables = [UInt8](repeating: 0, count: 32 * k * lost)
        var src = [UnsafeMutablePointer<UInt8>?](repeating: nil, count: k)
        var out = [UnsafeMutablePointer<UInt8>?](repeating: nil, count: lost)
        return timed {
            for b in 0..<blocks {
                let lostSet = patterns[b]
                var rows: [Int] = []
                for j in 0..<k where !lostSet.contains(j) { rows.append(j) }
                for p in 0..<lost { rows.append(k + p) }
                for (r, row) in rows.enumerated() {
                    for c in 0..<k { sub[r * k + c] = isalMatrix[row * k + c] }
                    src[r] = symbol(b, row)
                }
                _ = gf_invert_matrix(&sub, &inv, Int32(k))
                for (n, j) in lostSet.enumerated() { for c in 0..<k { dec[n * k + c] = inv[j * k + c] } }
                ec_init_tables(Int32(k), Int32(lost), &dec, &tables)
                for n in 0..<lost { out[n] = spare + (b * m + n) * size }
                ec_encode_data(Int32(size), Int32(k), Int32(lost), &tables, &src, &out)
            }
        }
    }
}
