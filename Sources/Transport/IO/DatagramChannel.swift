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
}

extension MulticastSocket: DatagramChannel {
    public var overruns: UInt64 { UInt64(kernelDrops) }
    public var receiveQueuePercent: Int { max(0, Int(qlsys_receive_queue_percent(fd))) }
}
