import CQLSys

/// What a session needs from the network: batched sends, single control sends, non-blocking
/// receive and a bounded wait. `MulticastSocket` is the real one; the tests' in-memory wire
/// (`SteppedSessionTests`) joins a sender and a receiver in one process, stepped on a clock of
/// their own, for deterministic tests of the protocol logic.
public protocol DatagramChannel: AnyObject {
    func send(_ batch: OutgoingBatch) throws(TransportError)
    func sendOne(_ bytes: UnsafeRawBufferPointer) throws(TransportError)
    /// Delivers waiting datagrams to `handler`; returns how many.
    @discardableResult
    func receive(_ handler: (UnsafeRawBufferPointer) -> Void) throws(TransportError) -> Int
    /// Waits up to `timeoutNanos` for a datagram; true if one is waiting.
    func waitReadable(timeoutNanos: UInt64) throws(TransportError) -> Bool
    /// Datagrams the kernel dropped because we did not read fast enough (cumulative).
    var overruns: UInt64 { get }
    /// How full the receive queue is now, in percent of its buffer (0 where unknown).
    var receiveQueuePercent: Int { get }
    /// True when `receive(placing:…)` puts payloads where they are predicted to belong.
    var placesPayloads: Bool { get }
    /// Sends this host's queue refused and that were sent again, and errors about the stream
    /// reported to the socket and ignored (cumulative; see `SocketOptions.localDropsPushBack`).
    var localDrops: UInt64 { get }
    var reportedErrors: UInt64 { get }
    /// Receives one run of datagrams with their payloads scattered to predicted places (see
    /// `MulticastSocket.receive(placing:headerSize:payloadSize:belongsAt:_:)`); each datagram is
    /// handed on as header and rest.
    @discardableResult
    func receive(
        placing places: UnsafeBufferPointer<UnsafeMutableRawPointer?>, headerSize: Int, payloadSize: Int,
        belongsAt: (UnsafeRawBufferPointer) -> UnsafeMutableRawPointer?,
        _ handler: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void
    ) throws(TransportError) -> Int
}

extension DatagramChannel {
    /// Channels that cannot scatter (the tests' in-memory wires) place nothing.
    public var placesPayloads: Bool { false }
    /// Channels without a host queue of their own (the tests' in-memory wires) never push back.
    public var localDrops: UInt64 { 0 }
    public var reportedErrors: UInt64 { 0 }

    /// Without scattering: each datagram split after its header, nothing placed.
    @discardableResult
    public func receive(
        placing places: UnsafeBufferPointer<UnsafeMutableRawPointer?>, headerSize: Int, payloadSize: Int,
        belongsAt: (UnsafeRawBufferPointer) -> UnsafeMutableRawPointer?,
        _ handler: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void
    ) throws(TransportError) -> Int {
        try receive { d in
            let h = min(headerSize, d.count)
            handler(UnsafeRawBufferPointer(rebasing: d[0..<h]), UnsafeRawBufferPointer(rebasing: d[h...]))
        }
    }
}

extension MulticastSocket: DatagramChannel {
    public var overruns: UInt64 { UInt64(kernelDrops) }
    public var receiveQueuePercent: Int { max(0, Int(qlsys_receive_queue_percent(fd))) }
}
