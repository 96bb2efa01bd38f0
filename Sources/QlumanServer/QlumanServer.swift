import Foundation
import ImageService
import NIOConcurrencyHelpers
import NodeConfig
import NodeRegistry
import Transport

/// qlumand: serves each node its configuration from the registry, over TLS only.
///
/// A node is identified by the address it connects from (the registry's IP); the MACs it
/// reports must include one registered for that node, and a node with an enrollment token must
/// present it. The answer is built from that node's record alone: a node can never receive
/// another node's configuration. Refusals are counted by reason and logged without secrets.
public final class QlumanServer: Sendable {
    public struct Settings: Sendable {
        public var root: Root
        public var listenHost = "0.0.0.0"
        public var listenPort = QlumanDefaults.port
        /// This head node's certificate and key (PEM, signed by the cluster CA).
        public var certificate: String
        public var key: String
        public var maxConnections = 2_048
        public var idleTimeoutSeconds = 30.0

        public init(root: Root, certificate: String, key: String) {
            self.root = root
            self.certificate = certificate
            self.key = key
        }
    }

    public let settings: Settings
    public let source: NodeConfigSource
    public var registry: Registry { source.registry }
    let log: EventLog
    private let control = NIOLockedValueBox<ControlServer?>(nil)
    private let counters = NIOLockedValueBox(QlumandStatus())

    public init(settings: Settings, log: EventLog) throws(ServiceError) {
        self.settings = settings
        self.log = log
        source = NodeConfigSource(root: settings.root, registry: try Registry(root: settings.root), log: log)
    }

    /// The port actually bound.
    public var port: Int { control.withLockedValue { $0?.port ?? 0 } }

    /// Listens.
    /// - Throws: `.configuration` when the certificate or key does not load, `.io` when the
    ///   address cannot be bound.
    public func start() throws(ServiceError) {
        var options = ControlServer.Options()
        do { options.tls = try ControlTLS.server(certificate: settings.certificate, key: settings.key) } catch {
            throw ServiceError(.configuration, error.message)
        }
        options.maxConnections = settings.maxConnections
        options.idleTimeout = .milliseconds(Int64(settings.idleTimeoutSeconds * 1_000))
        let server: ControlServer
        do {
            server = try ControlServer.start(host: settings.listenHost, port: settings.listenPort, options: options) {
                [self] request, peer throws(ControlFailure) in try answer(request, peer)
            }
        } catch { throw ServiceError(.io, error.message) }
        control.withLockedValue { $0 = server }
        let nodes = (try? registry.nodes().count) ?? 0
        log.info("qlumand listening on \(settings.listenHost):\(server.port) (TLS), registry \(registry.path) with \(nodes) nodes")
    }

    public func stop() {
        control.withLockedValue { $0?.stop() }
        log.info("qlumand stopped")
    }

    public func status() -> QlumandStatus {
        var s = counters.withLockedValue { $0 }
        s.rootFSArchivesBuilt = source.archivesBuilt
        s.nodes = (try? registry.nodes().count) ?? 0
        if let c = control.withLockedValue({ $0?.counters }) {
            s.connections = c.connections
            s.framingErrors = c.framingErrors
            s.tlsErrors = c.tlsErrors
        }
        return s
    }

    // MARK: - Operations

    func answer(_ request: ControlRequest, _ peer: ControlPeer) throws(ControlFailure) -> ControlReply {
        switch request.op {
        case QlumanOperation.configure:
            return try configure(try request.arguments(ConfigureRequest.self), peer)
        case QlumanOperation.status:
            return .json(canonicalJSON(status()))
        default:
            throw ControlFailure(.unknownOperation, "qlumand has no operation '\(request.op.prefix(64))'")
        }
    }

    private func configure(_ request: ConfigureRequest, _ peer: ControlPeer) throws(ControlFailure) -> ControlReply {
        let node: Node
        do {
            guard let found = try registry.node(ip: peer.host) else {
                throw refuse("unknown-address", "no node is registered with address \(peer.host)", peer)
            }
            node = found
            let macs = Set(request.macs.compactMap { try? NodeFields.mac($0) })
            guard !macs.isDisjoint(with: node.macs) else {
                throw refuse("mac-mismatch", "node \(node.name) (\(peer.host)) reported none of its registered MACs", peer)
            }
            guard try registry.tokenMatches(node.name, token: request.token) else {
                throw refuse(
                    "token", "node \(node.name) (\(peer.host)) presented \(request.token == nil ? "no" : "a wrong") enrollment token", peer)
            }
        } catch let failure as ControlFailure {
            throw failure
        } catch {
            throw failed("registry: \(error)")
        }
        do {
            let (options, trees) = try source.resolve(node)
            let payload = trees.flatMap(\.bytes)
            try? registry.recordConfigure(node.name, osFamily: request.osFamily)
            counters.withLockedValue { $0.configured += 1 }
            log.info(
                "configure \(node.name) (\(peer.host), \(request.osFamily.rawValue)): "
                    + (options.sources.keys.sorted().joined(separator: " ").nonEmpty ?? "no config classes")
                    + (payload.isEmpty ? "" : ", \(payload.count) bytes of Root FS Customization"))
            return .bytes(json: canonicalJSON(ConfigureReply(options: options)), payload: payload)
        } catch {
            throw failed("node \(node.name): \(error.message)")
        }
    }

    private func refuse(_ reason: String, _ message: String, _ peer: ControlPeer) -> ControlFailure {
        counters.withLockedValue { $0.refused[reason, default: 0] += 1 }
        log.warning("refused configure from \(peer.address): \(message)")
        return ControlFailure(.refused, message)
    }

    private func failed(_ message: String) -> ControlFailure {
        counters.withLockedValue { $0.failed += 1 }
        log.error("configure failed: \(message)")
        return ControlFailure(.internalError, message)
    }
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
