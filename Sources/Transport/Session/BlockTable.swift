/// A set of symbol indices of one block (0..<256: Reed–Solomon's whole range), as four words.
struct SymbolSet {
    private var w0: UInt64 = 0, w1: UInt64 = 0, w2: UInt64 = 0, w3: UInt64 = 0

    @inline(__always)
    func contains(_ j: Int) -> Bool {
        let bit = UInt64(1) << UInt64(j & 63)
        switch j >> 6 {
        case 0: return w0 & bit != 0
        case 1: return w1 & bit != 0
        case 2: return w2 & bit != 0
        default: return w3 & bit != 0
        }
    }

    @inline(__always)
    mutating func insert(_ j: Int) {
        let bit = UInt64(1) << UInt64(j & 63)
        switch j >> 6 {
        case 0: w0 |= bit
        case 1: w1 |= bit
        case 2: w2 |= bit
        default: w3 |= bit
        }
    }
}

/// What the receiver holds of one block.
struct BlockState {
    /// Symbols held, source and parity: the block decodes when this reaches its `k`.
    var have: UInt16 = 0
    var sources: UInt16 = 0
    var sourceSet = SymbolSet()
    var paritySet = SymbolSet()
    /// First of the block's parity slots in the `ParityStore` (-1: none).
    var parityHead: Int32 = -1
    var complete = false
}

/// Where one block stands in the NAK exchange.
struct RepairState {
    /// Queued in the NAK schedule, since `scheduledAt`, due at `dueAt`.
    var pending = false
    var scheduledAt: UInt64 = 0
    var dueAt: UInt64 = 0
    /// This round was brought forward once already (a repair run for the block ended short).
    var broughtForward = false
    /// What the block still needed at its last NAK decision (0: none yet), and the repair symbols
    /// for it heard since: a run that brought less than half of it is overload, not path loss.
    var asked: UInt16 = 0
    var repairHeard: UInt16 = 0
    var rounds: UInt16 = 0
    /// The most symbols another receiver's NAK asked for, and when it was overheard.
    var heardNeed: UInt16 = 0
    var heardAt: UInt64 = 0
    var repairSeenAt: UInt64 = 0
    var nakSentAt: UInt64 = 0
    /// Our NAKs in a row that saw no repair at all.
    var unanswered: UInt8 = 0
    /// Our last NAK round for the block was suppressed by an overheard NAK.
    var suppressed = false
}

/// The receiver's per-block state: what it holds of each block, and how far the pass, the
/// completion and the in-order hash have got.
struct BlockTable {
    var blocks: [BlockState] = []
    var repair: [RepairState] = []
    var completed = 0
    /// The block of the first pass symbol heard (-1: none yet): a member that joined late hears
    /// the pass from there on, round the object (the sender's pass is a carousel).
    var passStart = -1
    /// How far the pass has come since `passStart`, in blocks, unwrapped.
    var passHeard = 0
    /// Blocks that have had their turn in the pass, counted from `passStart` round the object:
    /// those short are NAKed.
    var ended = 0
    /// Blocks before this one are in the SHA-256.
    var hashed = 0

    init() {}

    init(count: Int) {
        blocks = .init(repeating: BlockState(), count: count)
        repair = .init(repeating: RepairState(), count: count)
    }

    var count: Int { blocks.count }

    /// The pass moved on to block `b` (not a repair): returns how many blocks from `passStart`
    /// have now had their turn. A step forward by less than the whole object less a reorder
    /// margin is progress, round the end to the start too; a step back is a reordered datagram.
    /// - Parameter blockStart: The symbol is the block's first source. When the first symbol
    ///   heard is inside a later block than the first (a member joining late, mid-block), that
    ///   block counts as heard last: the pass brings its start round again.
    mutating func passHeard(block b: Int, blockStart: Bool) -> Int {
        let n = count
        if passStart < 0 { passStart = blockStart || b == 0 ? b : (b + 1) % n }
        let step = (b - (passStart + passHeard) % n + n) % n
        let reorderMargin = min((n - 1) / 2, 16)
        if step > 0, step < n - reorderMargin { passHeard += step }
        return min(passHeard, n)
    }

    /// The block at `position` blocks from `passStart`, round the object.
    func block(atPassPosition position: Int) -> Int { (max(0, passStart) + position) % count }

    var allComplete: Bool { completed == blocks.count }

    /// The runs of incomplete blocks, in order, as closed ranges of block numbers.
    func incompleteRuns() -> [ClosedRange<Int>] {
        var runs: [ClosedRange<Int>] = []
        for b in blocks.indices where !blocks[b].complete {
            if let last = runs.last, last.upperBound == b - 1 {
                runs[runs.count - 1] = last.lowerBound...b
            } else {
                runs.append(b...b)
            }
        }
        return runs
    }
}

/// Blocks waiting for their next NAK decision, taken in due order (a binary min-heap).
///
/// A block may be scheduled again for an earlier time (its repair run ended short: the next
/// round need not wait for the repair time-out); the entry it replaces stays in the heap and is
/// recognised as stale by the caller, whose `RepairState.dueAt` names the one that counts.
struct NakSchedule {
    private struct Entry {
        var due: UInt64
        var block: Int32
    }
    private var heap: [Entry] = []

    mutating func reserve(_ n: Int) { heap.reserveCapacity(n) }

    mutating func append(_ b: Int, due time: UInt64) {
        heap.append(Entry(due: time, block: Int32(b)))
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard heap[i].due < heap[parent].due else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    /// The next block whose time has come, with the time it was due, taken off the schedule.
    mutating func next(dueBy now: UInt64) -> (block: Int, due: UInt64)? {
        guard let top = heap.first, top.due <= now else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1
                let r = l + 1
                var m = i
                if l < heap.count, heap[l].due < heap[m].due { m = l }
                if r < heap.count, heap[r].due < heap[m].due { m = r }
                if m == i { break }
                heap.swapAt(i, m)
                i = m
            }
        }
        return (Int(top.block), top.due)
    }
}
