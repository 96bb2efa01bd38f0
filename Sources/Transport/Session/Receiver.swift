import Platform

/// Receives one object from a multicast session into a destination buffer, repairing losses
/// with FEC and NAKs, and verifies it against the announced SHA-256.
///
/// Each datagram is validated, then its payload is copied once into its final place in the
/// destination (source symbols) or into a parity slot; a block with `k` symbols is decoded in
/// place. Blocks that ended short are NAKed after a random back-off unless another receiver's
/// NAK (overheard on the group) or arriving repair already covers them. The SHA-256 advances over
/// the completed in-order prefix as blocks complete, so verification needs no second pass.
///
/// `handle(_:now:)` and `tick(now:)` are the whole state machine, callable without sockets for
/// deterministic tests; `run()` drives them from the channel. A class: owns state and buffers,
/// used from one thread. Datagrams are admitted by the `DatagramGate` the sender uses too; the
/// per-block state is a `BlockTable`. Split by aspect: `Receiver+Blocks.swift` (symbols into
/// blocks, decoding, the in-order hash), `Receiver+Repair.swift` (the NAK schedule, overheard
/// NAKs, repair waits) and `Receiver+Reports.swift` (FIN and verdicts, STATUS, what is missing).
public final class Receiver {
    public enum State: Equatable, Sendable {
        case waitingForAnnounce
        case receiving
        case complete(SHA256Digest)
        case failed(TransportError)
    }

    public let configuration: ReceiverConfiguration
    public internal(set) var state = State.waitingForAnnounce
    public internal(set) var counters = ReceiverCounters()
    public internal(set) var announce: AnnounceBody?
    /// The session and object received: configured, or learnt from the first ANNOUNCE.
    public var sessionID: UInt32? { gate.sessionID }
    public var objectID: UInt32? { gate.objectID }
    /// Called from `run()` at most every 100 ms with (blocks complete, blocks in the object).
    public var onProgress: ((Int, Int) -> Void)?
    /// Asked about every 100 ms while receiving: a reason to give the session up (its server is
    /// known to be gone), or nil to go on. The receiver then fails with `.abandoned` and what is
    /// still missing, as after a silent sender, without waiting out `idleTimeoutNanos`.
    public var shouldAbandon: (() -> String?)?

    let channel: DatagramChannel?
    let makeDestination: (AnnounceBody) throws(TransportError) -> UnsafeMutableRawBufferPointer
    let gate: DatagramGate
    var loss: LossModel
    var rng: SplitMix64
    var destination = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    var layout: ObjectLayout?
    var decoder: BlockDecoder?
    var parity = ParityStore(symbolSize: 64, memoryLimit: 0)
    let hasher = SHA256()

    /// Every block's state: `BlockTable.swift`.
    var table = BlockTable()
    var naks = NakSchedule()
    /// The sender's NAK-to-repair response time, smoothed.
    var responseNanos: UInt64 = 0
    /// The block whose repair symbols arrived last, until another datagram shows the run is
    /// over (-1: none): `endRepairRun`.
    var repairRun = -1
    /// Silence after a repair symbol that ends its run: the sender sends a run back to back, so
    /// a few milliseconds without a datagram mean nothing more of it is coming.
    static let repairRunQuiet: UInt64 = 5_000_000
    var nakEntries: [NakEntry] = []
    var parityList: [(index: Int, bytes: UnsafePointer<UInt8>)] = []

    var startedAt: UInt64 = 0
    /// When the session's first ANNOUNCE was taken (0: none yet): the session reached us.
    public private(set) var announcedAt: UInt64 = 0
    var lastSenderPacket: UInt64 = 0
    /// Last sender datagram other than a final FIN: the sender still sending.
    var lastStreamAt: UInt64 = 0
    /// Last new symbol taken: the session still delivering to us.
    var lastProgressAt: UInt64 = 0
    /// When a final FIN with blocks missing, or a "dropped" verdict, arrived (0: none standing).
    var finalFinAt: UInt64 = 0
    var droppedAt: UInt64 = 0
    var lastStatus: UInt64 = 0
    var lastTimestamp: UInt32 = 0
    var firstSequence: UInt32?
    var highestSequence: UInt32 = 0
    var senderDatagrams: UInt64 = 0
    /// `senderDatagrams` and `sequenceGaps` when the last STATUS went out.
    var receivedAtStatus: UInt64 = 0
    var gapsAtStatus: UInt64 = 0
    var reportedOverruns: UInt64 = 0
    var queueFill = 0
    var lastQueueProbe: UInt64 = 0
    let control = ControlDatagram()
    /// The placed receive's predictions (`Receiver+Placement.swift`).
    let places = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: 64)
    /// The next datagram the pass should bring: block and position in it (sources, then parity).
    var passCursor = (block: 0, offset: 0)
    /// Parity symbols the pass sent after each block's sources, as last seen.
    var passParity = 0

    /// - Parameters:
    ///   - channel: The group's socket (nil when a test feeds `handle` directly).
    ///   - destination: Called once the layout is known; returns a zero-filled buffer of
    ///     `layout.paddedSize` bytes (typically a file mapping) that outlives the receiver.
    public init(
        channel: DatagramChannel?, configuration: ReceiverConfiguration,
        destination: @escaping (AnnounceBody) throws(TransportError) -> UnsafeMutableRawBufferPointer
    ) throws(TransportError) {
        self.channel = channel
        self.configuration = configuration
        makeDestination = destination
        let authenticator: PacketAuthenticator?
        if configuration.encrypted {
            guard let master = configuration.authenticationKey else {
                throw TransportError(.invalidArgument, "an encrypted session needs its session key")
            }
            authenticator = try PacketAuthenticator(key: PacketSealer.controlKey(master: master))
        } else {
            authenticator = try configuration.authenticationKey.map { k throws(TransportError) in
                try PacketAuthenticator(key: k)
            }
        }
        gate = DatagramGate(
            sessionID: configuration.sessionID, objectID: configuration.objectID, authenticator: authenticator,
            sealedSymbols: configuration.encrypted)
        loss = configuration.loss
        rng = SplitMix64(seed: configuration.seed)
    }

    deinit { places.deallocate() }

    public var isFinished: Bool {
        switch state {
        case .complete, .failed: true
        default: false
        }
    }

    /// Receives until the object is complete and verified, or the session fails.
    /// - Returns: The verified digest.
    /// - Throws: The session's failure (repair exhausted naming blocks, digest mismatch,
    ///   timed out, dropped by the sender), or a socket error.
    @discardableResult
    public func run() throws(TransportError) -> SHA256Digest {
        guard let channel else { throw TransportError(.invalidArgument, "receiver has no channel") }
        startedAt = MonotonicClock.nanoseconds()
        var lastProgress: UInt64 = 0
        while !isFinished {
            let n: Int
            if let positions = predictPlaces(channel) {
                n = try channel.receive(
                    placing: UnsafeBufferPointer(start: places, count: positions), headerSize: PacketHeader.size,
                    payloadSize: layout!.symbolSize, belongsAt: { placeOf($0) },
                    { header, rest in handle(header: header, rest: rest, now: MonotonicClock.nanoseconds()) })
            } else {
                n = try channel.receive { datagram in handle(datagram, now: MonotonicClock.nanoseconds()) }
            }
            counters.receiveCalls += 1
            let now = MonotonicClock.nanoseconds()
            try tick(now: now)
            if now - lastProgress >= 100_000_000 {
                lastProgress = now
                if let onProgress, let l = layout { onProgress(table.completed, l.blockCount) }
                if !isFinished, let why = shouldAbandon?() { state = .failed(TransportError(.abandoned, why)) }
            }
            if n == 0 && !isFinished { _ = try channel.waitReadable(timeoutNanos: 2_000_000) }
        }
        if let socket = channel as? MulticastSocket {
            let p = socket.placementCounts
            counters.payloadsMoved = p.moved + p.evacuated
        }
        switch state {
        case .complete(let d):
            try reportEnd(now: MonotonicClock.nanoseconds())
            return d
        case .failed(let e):
            try? reportEnd(now: MonotonicClock.nanoseconds())
            throw e
        default: preconditionFailure("unreachable")
        }
    }

    // MARK: - Datagrams

    /// Processes one datagram as received. Never throws: every problem is a counted drop.
    public func handle(_ datagram: UnsafeRawBufferPointer, now: UInt64) {
        counters.datagramsReceived += 1
        counters.wireBytes += UInt64(datagram.count)
        if isFinished { return counters.drops.count(.sessionOver) }
        if loss.kind != .none, loss.drop() { return counters.drops.count(.injectedLoss) }
        switch gate.admit(datagram) {
        case .failure(let r): counters.drops.count(r)
        case .success(let a): dispatch(a.header, a.payload, now: now)
        }
    }

    /// Processes one datagram received in two pieces (a placed receive): its header, and the
    /// rest wherever the socket put it. Never throws, as `handle(_:now:)`.
    public func handle(header: UnsafeRawBufferPointer, rest: UnsafeRawBufferPointer, now: UInt64) {
        counters.datagramsReceived += 1
        counters.wireBytes += UInt64(header.count + rest.count)
        if isFinished { return counters.drops.count(.sessionOver) }
        if loss.kind != .none, loss.drop() { return counters.drops.count(.injectedLoss) }
        switch gate.admit(header: header, rest: rest) {
        case .failure(let r): counters.drops.count(r)
        case .success(let a): dispatch(a.header, a.payload, now: now)
        }
    }

    private func dispatch(_ h: PacketHeader, _ payload: UnsafeRawBufferPointer, now: UInt64) {
        switch h.type {
        case .announce: handleAnnounce(h, payload, now: now)
        case .nak: handleOverheardNak(payload, now: now)
        case .status: handleStatus(payload, now: now)
        case .data, .parity, .fin:
            guard layout != nil else { return counters.drops.count(.beforeAnnounce) }
            noteSender(h, now: now)
            if h.type == .fin || !h.flags.contains(.repair) || Int(h.block) != repairRun { endRepairRun(now: now) }
            if h.type == .fin {
                handleFin(h, payload, now: now)
            } else {
                handleSymbol(h, payload, now: now)
            }
        }
    }

    func noteSender(_ h: PacketHeader, now: UInt64) {
        lastSenderPacket = now
        if h.type != .fin || !h.flags.contains(.final) { lastStreamAt = now }
        lastTimestamp = h.timestamp
        senderDatagrams += 1
        if firstSequence == nil {
            firstSequence = h.sequence
            highestSequence = h.sequence
        } else if Int32(bitPattern: h.sequence &- highestSequence) > 0 {
            highestSequence = h.sequence
        }
    }

    private func handleAnnounce(_ h: PacketHeader, _ payload: UnsafeRawBufferPointer, now: UInt64) {
        let body: AnnounceBody
        switch AnnounceBody.decode(payload) {
        case .failure(let r): return counters.drops.count(r)
        case .success(let b): body = b
        }
        if let a = announce {
            // Repeats must agree with what we set up; a different layout is another object.
            guard a.layout == body.layout, a.digest == body.digest, a.salt == body.salt else {
                return counters.drops.count(.foreignObject)
            }
            noteSender(h, now: now)
            counters.accepted += 1
            return
        }
        if configuration.encrypted {
            // The tag was right, so this is the sender (or a key holder): without a salt its
            // symbols could not be opened, so it is not the session we were told of.
            guard let salt = body.salt, let master = configuration.authenticationKey,
                let opener = try? PacketSealer(master: master, salt: salt)
            else { return counters.drops.count(.authenticationFailed) }
            gate.opener = opener
        }
        do throws(TransportError) {
            let dest = try makeDestination(body)
            guard dest.count >= body.layout.paddedSize else {
                throw TransportError(.invalidArgument, "destination smaller than \(body.layout.paddedSize) bytes")
            }
            destination = dest
        } catch {
            state = .failed(error)
            counters.accepted += 1
            return
        }
        counters.accepted += 1
        gate.sessionID = h.sessionID
        gate.objectID = h.objectID
        announce = body
        announcedAt = now
        let l = body.layout
        layout = l
        decoder = BlockDecoder(symbolSize: l.symbolSize)
        parity = ParityStore(symbolSize: l.symbolSize, memoryLimit: configuration.parityMemoryLimit)
        table = BlockTable(count: l.blockCount)
        naks.reserve(l.blockCount * 2)
        nakEntries.reserveCapacity(NakBody.capacity(payload: l.symbolSize))
        parityList.reserveCapacity(255)
        state = .receiving
        noteSender(h, now: now)
        if startedAt == 0 { startedAt = now }
    }

    // MARK: - Timers

    /// Advances hashing, sends due NAKs and STATUS, and enforces the timeouts.
    public func tick(now: UInt64) throws(TransportError) {
        if startedAt == 0 { startedAt = now }
        switch state {
        case .waitingForAnnounce:
            if now - startedAt > configuration.joinTimeoutNanos {
                state = .failed(
                    TransportError(
                        .timedOut,
                        "no session announced on the group within \(configuration.joinTimeoutNanos / 1_000_000_000) s; "
                            + "check the group, port and interface, and that multicast reaches this host"))
            }
            return
        case .complete, .failed: return
        case .receiving: break
        }
        advanceHash()
        if table.allComplete, table.hashed == table.count {
            let d = hasher.finalize()
            state =
                d == announce!.digest
                ? .complete(d)
                : .failed(
                    TransportError(
                        .integrity,
                        "SHA-256 mismatch for '\(announce!.name)': announced \(announce!.digest), received \(d); "
                            + "the copy is discarded"))
            return
        }
        confirmVerdicts(now: now)
        if isFinished { return }
        // A repair run followed by silence (the last the sender had to send) is over too.
        if repairRun >= 0, now - lastSenderPacket > Self.repairRunQuiet { endRepairRun(now: now) }
        try processNaks(now: now)
        try reportIfDue(now: now)
        if now - lastSenderPacket > configuration.idleTimeoutNanos {
            state = .failed(
                TransportError(
                    .timedOut,
                    "sender silent for \(configuration.idleTimeoutNanos / 1_000_000_000) s with "
                        + "\(table.count - table.completed) blocks missing (\(missingBlocksDescription()))"))
        }
    }

    /// Blocks complete so far.
    public var completedBlocks: Int { table.completed }

    /// Hands over the in-line SHA-256 for the caller to finish after filling the gaps, so the
    /// prefix already hashed is not read again.
    /// - Returns: The hash state and how many leading bytes of the object it covers. The receiver
    ///   must not be used afterwards.
    public func takeHashState() -> (hasher: SHA256, hashedBytes: UInt64) {
        (hasher, counters.hashedBytes)
    }
}
