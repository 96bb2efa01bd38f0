/// A FIFO of block numbers with O(1) membership, sized once for the object's block count.
struct RingQueue {
    private var items: [Int32]
    private var member: [Bool]
    private var head = 0
    private(set) var count = 0

    init(capacity: Int) {
        items = .init(repeating: 0, count: max(1, capacity))
        member = .init(repeating: false, count: max(1, capacity))
    }

    var isEmpty: Bool { count == 0 }
    var first: Int? { count == 0 ? nil : Int(items[head]) }
    func contains(_ b: Int) -> Bool { member[b] }

    /// Adds `b` unless present.
    mutating func push(_ b: Int) {
        guard !member[b] else { return }
        items[(head + count) % items.count] = Int32(b)
        member[b] = true
        count += 1
    }

    mutating func popFirst() -> Int? {
        guard count > 0 else { return nil }
        let b = Int(items[head])
        member[b] = false
        head = (head + 1) % items.count
        count -= 1
        return b
    }
}
