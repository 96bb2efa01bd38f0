import Platform
import XCTest

final class HostlistTests: XCTestCase {
    func testExpandsRangesListsAndProducts() throws {
        XCTAssertEqual(try Hostlist.expand("beo-[001-003,105]"), ["beo-001", "beo-002", "beo-003", "beo-105"])
        XCTAssertEqual(
            try Hostlist.expand("rack[1-2]-n[01-02]"), ["rack1-n01", "rack1-n02", "rack2-n01", "rack2-n02"])
        XCTAssertEqual(try Hostlist.expand("a,b,beo-[9-11]"), ["a", "b", "beo-9", "beo-10", "beo-11"])
        XCTAssertEqual(try Hostlist.expand("n[1-2],n1"), ["n1", "n2"], "no repeats")
        XCTAssertEqual(try Hostlist.expand("beo-[001-100]").count, 100)
    }

    func testMalformedExpressionsPointAtTheCharacter() {
        for (text, fragment) in [
            ("beo-[1-", "'[' is not closed at character 8"), ("beo-]", "']' without '['"),
            ("beo-[3-1]", "runs backwards"), ("beo-[a-b]", "is not a number"), ("a,,b", "an empty name"),
            ("beo-[]", "empty brackets"), ("be o", "' ' cannot be part of a host name at character 3"),
            ("n[[1]]", "'[' inside brackets"), ("beo;rm", "';' cannot be part"),
        ] {
            XCTAssertThrowsError(try Hostlist.expand(text), text) { e in
                let message = (e as? QlustarError)?.message ?? ""
                XCTAssertTrue(message.contains(fragment), "\(text): \(message)")
            }
        }
    }

    func testAnExpressionBeyondTheBoundIsRefused() {
        XCTAssertThrowsError(try Hostlist.expand("n[0-99999]-[0-9]")) { e in
            XCTAssertTrue("\(e)".contains("more than 100000 names"), "\(e)")
        }
        XCTAssertThrowsError(try Hostlist.expand("n[0-999999999]"))
        XCTAssertEqual(try Hostlist.expand("n[1-100000]").count, 100_000)
    }

    func testFoldsToTheShortestHostlistAndRoundTrips() throws {
        XCTAssertEqual(Hostlist.fold(["beo-002", "beo-001", "beo-007"]), "beo-[001-002,007]")
        XCTAssertEqual(Hostlist.fold(["n1", "n2", "n3", "n10"]), "n[1-3,10]")
        XCTAssertEqual(Hostlist.fold((1...100).map { String(format: "beo-%03d", $0) }), "beo-[001-100]")
        XCTAssertEqual(Hostlist.fold(["head", "beo-01"]), "beo-01,head")
        XCTAssertEqual(Hostlist.fold(["rack1-n01", "rack1-n02", "rack2-n01"]), "rack1-n[01-02],rack2-n01")
        XCTAssertEqual(Hostlist.fold([]), "")
        let names = try Hostlist.expand("beo-[001-050,060-064],gpu[1-4],login")
        XCTAssertEqual(Set(try Hostlist.expand(Hostlist.fold(names))), Set(names))
    }

    /// The examples of Slurm's own documentation (scontrol show hostnames, sbatch --nodelist).
    func testSlurmsDocumentedExamples() throws {
        let table: [(String, [String])] = [
            ("tux[2,7-9]", ["tux2", "tux7", "tux8", "tux9"]),
            ("lx[15,18,32-33]", ["lx15", "lx18", "lx32", "lx33"]),
            ("linux[00-03]", ["linux00", "linux01", "linux02", "linux03"]),
            ("alpha,beta,gamma", ["alpha", "beta", "gamma"]),
            ("rack[0-1]_blade[0-1]", ["rack0_blade0", "rack0_blade1", "rack1_blade0", "rack1_blade1"]),
        ]
        for (expression, names) in table {
            XCTAssertEqual(try Hostlist.expand(expression), names, expression)
            XCTAssertEqual(Set(try Hostlist.expand(Hostlist.fold(names))), Set(names), expression)
        }
        XCTAssertEqual(Hostlist.fold(["tux2", "tux7", "tux8", "tux9"]), "tux[2,7-9]")
        XCTAssertEqual(Hostlist.fold(["lx15", "lx18", "lx32", "lx33"]), "lx[15,18,32-33]")
        XCTAssertEqual(Hostlist.fold(["linux00", "linux01", "linux02", "linux03"]), "linux[00-03]")
    }

    /// Property: for random sets of names, fold(names) expands back to exactly the set, and is
    /// minimal — one bracket range per run of consecutive numbers of one prefix and width.
    func testFoldExpandsBackAndIsMinimalForRandomSets() throws {
        var rng = SeededGenerator(seed: 0x51_0D)
        for _ in 0..<300 {
            var names = Set<String>()
            var runs = 0
            for prefix in ["beo-", "gpu", "rack1-n"].filter({ _ in Bool.random(using: &rng) }) {
                let width = [0, 2, 3].randomElement(using: &rng) ?? 0
                let numbers = Set(
                    (0..<Int.random(in: 1...40, using: &rng)).map { _ in Int.random(in: 1...99, using: &rng) })
                for n in numbers {
                    names.insert(prefix + (width == 0 ? String(n) : String(format: "%0\(width)d", n)))
                }
                let sorted = numbers.sorted()
                runs += 1 + zip(sorted, sorted.dropFirst()).filter { $1 != $0 + 1 }.count
            }
            guard !names.isEmpty else { continue }
            let folded = Hostlist.fold(Array(names))
            XCTAssertEqual(Set(try Hostlist.expand(folded)), names, folded)
            // Each run is one range or one single value: as many as there are runs.
            let items = names.isEmpty ? 0 : folded.filter { $0 == "," }.count + 1
            XCTAssertEqual(items, runs, folded)
        }
    }
}

/// A small reproducible random source (SplitMix64), so a failing case can be rerun.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_E4B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
