import FoundationEssentials
import Logging
import NIOConcurrencyHelpers
import Platform
import Transport

#if canImport(Glibc)
    import Glibc
#endif

/// What the other head node serves, as ql-mcastd last heard it (`peer = HOST[:PORT]`): its
/// `list-images`, asked with the heads' shared secret every `interval` seconds. With it a head
/// serves no image version the other does not have (`SessionManager`, docs/HA.md) — while the
/// other can be asked: an answer older than `staleAfter` counts as no answer, and a head whose
/// peer is gone serves what it has rather than hold up a boot.
public final class PeerWatch: Sendable {
    public let peer: HeadNode
    let token: String
    let ca: String?
    let log: Logger
    public static let interval = 5.0
    public static let staleAfter = 30.0
    /// The last answer: when (monotonic ns) and each image's digest.
    private let heard = NIOLockedValueBox<(at: UInt64, digests: [String: SHA256Digest])?>(nil)
    private let stopping = NIOLockedValueBox(false)

    /// What the peer serves of one image.
    public enum Lookup: Equatable, Sendable {
        /// No recent answer: the peer cannot be asked.
        case unknown
        /// The peer's version (nil: it has no such image).
        case known(SHA256Digest?)
    }

    public init(peer: HeadNode, token: String, ca: String?, log: Logger) {
        self.peer = peer
        self.token = token
        self.ca = ca
        self.log = log
    }

    public func lookup(_ name: ImageName, now: UInt64 = MonotonicClock.nanoseconds()) -> Lookup {
        guard let h = heard.withLockedValue({ $0 }), now < h.at || now - h.at <= UInt64(Self.staleAfter * 1e9)
        else { return .unknown }
        return .known(h.digests[name.value])
    }

    /// What `status` shows of the peer.
    public func status(holdBack: Bool, now: UInt64 = MonotonicClock.nanoseconds()) -> PeerStatus {
        let h = heard.withLockedValue { $0 }
        return PeerStatus(
            address: peer.description, heardSecondsAgo: h.map { Double(now > $0.at ? now - $0.at : 0) / 1e9 },
            images: h?.digests.mapValues(\.description) ?? [:], holdBack: holdBack)
    }

    /// Asks the peer once.
    /// - Throws: the peer's or the connection's failure.
    public func ask() throws(ControlFailure) {
        let tls = try ca.map { ca throws(ControlFailure) in try ControlTLS.client(ca: ca, host: peer.host) }
        let client = try ControlClient(host: peer.host, port: peer.port, timeout: 3, tls: tls)
        defer { client.close() }
        let listed = try client.call(
            ImageOperation.listImages, Credentials(token: token), as: [ImageManifest].self, timeout: 30)
        let digests = Dictionary(listed.map { ($0.name, $0.sha256) }, uniquingKeysWith: { a, _ in a })
        heard.withLockedValue { $0 = (MonotonicClock.nanoseconds(), digests) }
    }

    /// Polls every `interval` seconds on a thread of its own until `stop`.
    public func start() throws(QlustarError) {
        do {
            try DetachedThread.start(name: "peer-watch") { [self] in
                var lastFailure = ""
                while !stopping.withLockedValue({ $0 }) {
                    do throws(ControlFailure) {
                        try ask()
                        if !lastFailure.isEmpty { log.notice("the other head node \(peer) answers again") }
                        lastFailure = ""
                    } catch {
                        // Each new reason once.
                        if error.message != lastFailure {
                            log.warning("the other head node \(peer): \(error.message)")
                        }
                        lastFailure = error.message
                    }
                    var left = Self.interval
                    while left > 0, !stopping.withLockedValue({ $0 }) {
                        usleep(200_000)
                        left -= 0.2
                    }
                }
            }
        } catch {
            throw QlustarError(.io, "cannot start watching the other head node: \(error)")
        }
    }

    public func stop() { stopping.withLockedValue { $0 = true } }
}
