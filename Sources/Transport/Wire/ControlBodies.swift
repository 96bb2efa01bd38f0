import Platform

/// ANNOUNCE body: what a receiver needs to take part, repeated by the sender.
///
/// ```
/// u64 object size   u16 symbol size   u16 source symbols (k)   u16 proactive parity
/// u16 options       u32 block count   u8[32] SHA-256 of the object
/// u16 name length   name (UTF-8, ≤ 255 bytes)
/// u8[16] sealing salt, when options bit 0 (sealed) is set; other option bits must be zero
/// ```
public struct AnnounceBody: Sendable, Equatable {
    public static let fixedSize = 8 + 2 + 2 + 2 + 2 + 4 + 32 + 2
    public static let maxName = 255

    public var layout: ObjectLayout
    public var proactiveParity: Int
    public var digest: SHA256Digest
    public var name: String
    /// The sender's sealing salt when its symbols are sealed (`PacketSealer`).
    public var salt: [UInt8]?
    /// Options bit: the session's symbols are sealed and the salt follows the name.
    static let sealedFlag: UInt16 = 1

    public init(layout: ObjectLayout, proactiveParity: Int, digest: SHA256Digest, name: String, salt: [UInt8]? = nil) {
        self.layout = layout
        self.proactiveParity = proactiveParity
        self.digest = digest
        self.name = name
        self.salt = salt
    }

    /// Writes the body; returns its length.
    public func encode(to base: UnsafeMutableRawPointer, capacity: Int) -> Int {
        var w = ByteWriter(base, capacity: capacity)
        w.write(layout.objectSize)
        w.write(UInt16(layout.symbolSize))
        w.write(UInt16(layout.sourceSymbols))
        w.write(UInt16(proactiveParity))
        w.write(UInt16(salt == nil ? 0 : AnnounceBody.sealedFlag))
        w.write(UInt32(layout.blockCount))
        digest.withBytes { w.write(bytes: $0) }
        var nameBytes = Array(name.utf8.prefix(AnnounceBody.maxName))
        w.write(UInt16(nameBytes.count))
        nameBytes.withUnsafeMutableBytes { w.write(bytes: UnsafeRawBufferPointer($0)) }
        if var salt { salt.withUnsafeMutableBytes { w.write(bytes: UnsafeRawBufferPointer($0)) } }
        return w.offset
    }

    public static func decode(_ body: UnsafeRawBufferPointer) -> Result<AnnounceBody, DropReason> {
        var r = ByteReader(body)
        guard let size = r.read(UInt64.self), let symbolSize = r.read(UInt16.self),
            let k = r.read(UInt16.self), let parity = r.read(UInt16.self), let options = r.read(UInt16.self),
            options & ~sealedFlag == 0, let blocks = r.read(UInt32.self), let digestBytes = r.slice(32),
            let nameLength = r.read(UInt16.self), Int(nameLength) <= maxName,
            let nameBytes = r.slice(Int(nameLength))
        else { return .failure(.malformedBody) }
        var salt: [UInt8]?
        if options & sealedFlag != 0 {
            guard let bytes = r.slice(PacketSealer.saltSize) else { return .failure(.malformedBody) }
            salt = Array(bytes)
        }
        guard r.remaining == 0 else { return .failure(.malformedBody) }
        guard let layout = try? ObjectLayout(objectSize: size, symbolSize: Int(symbolSize), sourceSymbols: Int(k)),
            layout.blockCount == Int(blocks), Int(parity) <= layout.maxParity,
            let name = String(validating: nameBytes, as: UTF8.self)
        else { return .failure(.malformedBody) }
        return .success(
            AnnounceBody(
                layout: layout, proactiveParity: Int(parity), digest: SHA256Digest(bytes: digestBytes), name: name,
                salt: salt))
    }
}

/// NAK body: a receiver asks for the number of further symbols it needs per block.
///
/// ```
/// u32 receiver id   u32 echoed sender timestamp   u16 entry count   u16 reserved
/// entry × count: u32 block, u16 symbols needed (1...255)
/// ```
public struct NakBody: Sendable, Equatable {
    public static let fixedSize = 12
    public static let entrySize = 6

    public var receiverID: UInt32
    public var echoTimestamp: UInt32
    public var entries: [NakEntry]

    public init(receiverID: UInt32, echoTimestamp: UInt32, entries: [NakEntry]) {
        self.receiverID = receiverID
        self.echoTimestamp = echoTimestamp
        self.entries = entries
    }

    /// How many entries fit in a payload of `payload` bytes.
    public static func capacity(payload: Int) -> Int { max(0, (payload - fixedSize) / entrySize) }

    public func encode(to base: UnsafeMutableRawPointer, capacity: Int) -> Int {
        var w = ByteWriter(base, capacity: capacity)
        w.write(receiverID)
        w.write(echoTimestamp)
        w.write(UInt16(entries.count))
        w.write(UInt16(0))
        for e in entries {
            w.write(e.block)
            w.write(e.needed)
        }
        return w.offset
    }

    /// Calls `body` for every entry without building an array (the sender's hot path).
    /// - Returns: The receiver id and echoed timestamp, or why the body is malformed.
    public static func forEachEntry(
        _ bytes: UnsafeRawBufferPointer, _ body: (NakEntry) -> Void
    ) -> Result<(receiverID: UInt32, echo: UInt32), DropReason> {
        var r = ByteReader(bytes)
        guard let id = r.read(UInt32.self), let echo = r.read(UInt32.self), let count = r.read(UInt16.self),
            r.read(UInt16.self) == 0, r.remaining == Int(count) * entrySize
        else { return .failure(.malformedBody) }
        // Validate every entry before acting on any, so a bad tail cannot half-apply a NAK.
        var check = r
        for _ in 0..<count {
            guard check.read(UInt32.self) != nil, let need = check.read(UInt16.self), need >= 1, need <= 255 else {
                return .failure(.malformedBody)
            }
        }
        for _ in 0..<count {
            body(NakEntry(block: r.read(UInt32.self)!, needed: r.read(UInt16.self)!))
        }
        return .success((id, echo))
    }

    /// Checks a NAK body against the session's layout before anything acts on it: well formed,
    /// every block in the object (`block-out-of-range`), no need beyond the block's k
    /// (`implausible`: the sender would drop it, so no receiver may be silenced by it).
    /// - Returns: The receiver id, echoed timestamp and entry count, or why it must be dropped.
    public static func validate(
        _ bytes: UnsafeRawBufferPointer, against layout: ObjectLayout
    ) -> Result<(receiverID: UInt32, echo: UInt32, entries: Int), DropReason> {
        var entries = 0
        var problem: DropReason?
        let parsed = forEachEntry(bytes) { e in
            entries += 1
            guard problem == nil else { return }
            if Int(e.block) >= layout.blockCount {
                problem = .blockOutOfRange
            } else if Int(e.needed) > layout.sourceSymbols(inBlock: Int(e.block)) {
                problem = .implausible
            }
        }
        switch parsed {
        case .failure(let r): return .failure(r)
        case .success(let v): return problem.map { .failure($0) } ?? .success((v.receiverID, v.echo, entries))
        }
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer) -> Result<NakBody, DropReason> {
        var entries: [NakEntry] = []
        return forEachEntry(bytes) { entries.append($0) }.map {
            NakBody(receiverID: $0.receiverID, echoTimestamp: $0.echo, entries: entries)
        }
    }
}

/// One block a receiver is short of, and by how many symbols.
public struct NakEntry: Sendable, Equatable, Hashable {
    public var block: UInt32
    public var needed: UInt16
    public init(block: UInt32, needed: UInt16) {
        self.block = block
        self.needed = needed
    }
}

/// FIN body: the sender ended a pass. `u32 block count`, `u32 pass number`.
public struct FinBody: Sendable, Equatable {
    public static let size = 8
    public var blockCount: UInt32
    public var pass: UInt32

    public init(blockCount: UInt32, pass: UInt32) {
        self.blockCount = blockCount
        self.pass = pass
    }

    public func encode(to base: UnsafeMutableRawPointer, capacity: Int) -> Int {
        var w = ByteWriter(base, capacity: capacity)
        w.write(blockCount)
        w.write(pass)
        return w.offset
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer) -> Result<FinBody, DropReason> {
        var r = ByteReader(bytes)
        guard let b = r.read(UInt32.self), let p = r.read(UInt32.self), r.remaining == 0 else {
            return .failure(.malformedBody)
        }
        return .success(FinBody(blockCount: b, pass: p))
    }
}

/// STATUS body: a receiver's progress, or the sender's verdict on a receiver.
///
/// ```
/// u32 receiver id   u8 state   u8 receive-queue fill (percent, highest since the last report)
/// u16 reserved      u32 blocks complete
/// u64 datagrams received   u64 datagrams lost (estimated from sequence gaps)
/// u64 overruns (datagrams the receiver's kernel dropped because the receiver fell behind)
/// ```
public struct StatusBody: Sendable, Equatable {
    public static let size = 36

    public enum State: UInt8, Sendable, Codable {
        /// Receiver: still receiving.
        case receiving = 0
        /// Receiver: has the whole object, verified.
        case complete = 1
        /// Receiver: gave up (repair bound, digest mismatch).
        case failed = 2
        /// Sender → receiver: you are dropped from the session (too slow); use the fallback.
        case dropped = 3
    }

    public var receiverID: UInt32
    public var state: State
    public var blocksComplete: UInt32
    public var received: UInt64
    public var lost: UInt64
    public var overruns: UInt64
    /// Receive-queue fill in percent: an early sign that the receiver falls behind.
    public var queueFill: UInt8

    public init(
        receiverID: UInt32, state: State, blocksComplete: UInt32, received: UInt64, lost: UInt64, overruns: UInt64 = 0,
        queueFill: UInt8 = 0
    ) {
        self.queueFill = min(queueFill, 100)
        self.receiverID = receiverID
        self.state = state
        self.blocksComplete = blocksComplete
        self.received = received
        self.lost = lost
        self.overruns = overruns
    }

    public func encode(to base: UnsafeMutableRawPointer, capacity: Int) -> Int {
        var w = ByteWriter(base, capacity: capacity)
        w.write(receiverID)
        w.write(state.rawValue)
        w.write(queueFill)
        w.write(UInt16(0))
        w.write(blocksComplete)
        w.write(received)
        w.write(lost)
        w.write(overruns)
        return w.offset
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer) -> Result<StatusBody, DropReason> {
        var r = ByteReader(bytes)
        guard let id = r.read(UInt32.self), let raw = r.read(UInt8.self), let state = State(rawValue: raw),
            let fill = r.read(UInt8.self), fill <= 100, r.read(UInt16.self) == 0, let blocks = r.read(UInt32.self),
            let received = r.read(UInt64.self), let lost = r.read(UInt64.self), let overruns = r.read(UInt64.self),
            r.remaining == 0
        else { return .failure(.malformedBody) }
        return .success(
            StatusBody(
                receiverID: id, state: state, blocksComplete: blocks, received: received, lost: lost,
                overruns: overruns, queueFill: fill))
    }
}
