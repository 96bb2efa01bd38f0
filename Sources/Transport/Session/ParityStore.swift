/// Holds parity symbols of incomplete blocks until the block can be decoded: fixed-size slots
/// in page-aligned chunks, a free list, and per-block singly linked lists (no per-packet
/// allocation; chunks are added up to a memory limit).
struct ParityStore {
    let symbolSize: Int
    let limitSlots: Int
    private var chunks: [AlignedRegion] = []
    private static let slotsPerChunk = 256
    private var next: [Int32] = []
    private var symbolIndex: [UInt8] = []
    private var freeHead: Int32 = -1
    private(set) var inUse = 0
    private(set) var highWater = 0

    init(symbolSize: Int, memoryLimit: Int) {
        self.symbolSize = symbolSize
        limitSlots = max(Self.slotsPerChunk, memoryLimit / symbolSize)
    }

    func pointer(_ slot: Int32) -> UnsafeMutablePointer<UInt8> {
        let s = Int(slot)
        let region = chunks[s / Self.slotsPerChunk]
        return (region.base + (s % Self.slotsPerChunk) * symbolSize).assumingMemoryBound(to: UInt8.self)
    }

    func index(_ slot: Int32) -> Int { Int(symbolIndex[Int(slot)]) }
    func successor(_ slot: Int32) -> Int32 { next[Int(slot)] }

    /// Takes a slot and links it in front of `head`; nil when the memory limit is reached.
    mutating func take(symbol: Int, linkedTo head: Int32) -> Int32? {
        if freeHead < 0 {
            guard next.count < limitSlots,
                let region = try? AlignedRegion(size: Self.slotsPerChunk * symbolSize)
            else { return nil }
            let first = Int32(next.count)
            chunks.append(region)
            next.append(
                contentsOf: (0..<Self.slotsPerChunk).map { i in i + 1 < Self.slotsPerChunk ? first + Int32(i + 1) : -1 }
            )
            symbolIndex.append(contentsOf: repeatElement(0, count: Self.slotsPerChunk))
            freeHead = first
        }
        let slot = freeHead
        freeHead = next[Int(slot)]
        next[Int(slot)] = head
        symbolIndex[Int(slot)] = UInt8(symbol)
        inUse += 1
        highWater = max(highWater, inUse)
        return slot
    }

    /// Returns a whole list to the free list.
    mutating func release(list head: Int32) {
        var s = head
        while s >= 0 {
            let n = next[Int(s)]
            next[Int(s)] = freeHead
            freeHead = s
            inUse -= 1
            s = n
        }
    }
}
