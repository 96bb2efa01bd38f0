import NIOConcurrencyHelpers

/// Commands for a running `Sender` from other threads (a daemon's conductor).
///
/// The sender owns its state and runs on one thread; nothing else touches it. Other threads
/// post commands here and the sender applies them between two batches (at most one batch
/// later). `Sendable`: the queue is protected by its lock.
public final class SenderMailbox: Sendable {
    public enum Command: Sendable, Equatable {
        /// A member joined: wait for it (as if it had spoken now) before ending the session.
        case expectReceiver(UInt32)
        /// A member joined the session while it runs: wait for it, and take the pass round the
        /// object once more from here (`SenderConfiguration.maxPasses` bounds the turns).
        case joinLate(UInt32)
        /// The most this session may send, in bytes per second (a share of a daemon-wide cap).
        case rateLimit(Rate)
        /// End now: tell receivers with a final FIN, then return from `run()`.
        case abort(String)
    }

    private let queue = NIOLockedValueBox<[Command]>([])

    public init() {}

    /// Queues `command` for the sender's next turn.
    public func post(_ command: Command) {
        queue.withLockedValue { $0.append(command) }
    }

    /// Takes every queued command (empty when none).
    func take() -> [Command] {
        queue.withLockedValue { q in
            guard !q.isEmpty else { return [] }
            defer { q.removeAll(keepingCapacity: true) }
            return q
        }
    }
}
