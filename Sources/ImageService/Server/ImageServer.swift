import FoundationEssentials
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Platform
import Transport

/// ql-mcastd: the image catalog, the session conductor and the control port, put together.
///
/// Operations on the control port: `request-image`, `fetch`, `status`, `list-images` (see
/// `ImageOperation`). Every bad request is answered with an error naming the problem and
/// counted; nothing a client sends stops the server serving the others.
public final class ImageServer: Sendable {
    public let configuration: DaemonConfiguration
    public let catalog: ImageCatalog
    public let sessions: SessionManager
    public let log: Logger
    private let control = NIOLockedValueBox<ControlServer?>(nil)
    private let metrics = NIOLockedValueBox<MetricsServer?>(nil)
    /// The registry's gate (nil: every host is served, the bare daemon of a small lab).
    private let gate: AdmissionGate?
    /// The heads' shared secret (`peer-token`), nil when none is configured.
    private let peerSecret: String?
    /// What the other head serves (`peer`), nil when none is configured.
    public let peerWatch: PeerWatch?

    /// - Parameter admission: Who may have images and keys (from the node registry); nil serves anyone.
    public init(configuration: DaemonConfiguration, log: Logger, admission: NodeAdmission? = nil) throws(QlustarError) {
        self.configuration = configuration
        self.log = log
        gate = admission.map { AdmissionGate(admission: $0, log: log, table: configuration.neighbourTable) }
        peerSecret = try configuration.peerToken.map { path throws(QlustarError) in
            let secret = try SecretFile.firstLine(path, what: "peer-token file")
            guard secret.utf8.count >= 16 else {
                throw QlustarError(
                    .configuration,
                    "peer-token file \(path): the secret is shorter than 16 characters (openssl rand -hex 32)")
            }
            return secret
        }
        catalog = ImageCatalog(
            root: configuration.root, symbolSize: configuration.streamSymbolSize,
            sourceSymbols: configuration.blockSymbols,
            log: log, keepsPrevious: configuration.peer != nil && configuration.holdBack)
        let secret = peerSecret
        peerWatch = try configuration.peer.map { peer throws(QlustarError) in
            guard let secret else {
                throw QlustarError(.configuration, "peer needs peer-token (the secret both head nodes share)")
            }
            // The other head speaks TLS when this one does, with a certificate of the same CA.
            let ca = configuration.tlsCertificate == nil ? nil : configuration.root.path("/etc/qlustar/ssl/ca.crt")
            return PeerWatch(peer: peer, token: secret, ca: ca, log: log)
        }
        sessions = try SessionManager(
            configuration: configuration, catalog: catalog, log: log,
            peerWatch: configuration.holdBack ? peerWatch : nil)
    }

    /// The control port actually bound (useful with port 0).
    public var port: Int { control.withLockedValue { $0?.port ?? 0 } }
    /// The metrics port actually bound (0 when off).
    public var metricsPort: Int { metrics.withLockedValue { $0?.port ?? 0 } }

    /// Loads the image list, starts the conductor and listens.
    public func start() throws(QlustarError) {
        FileSystem.ensureDirectory(configuration.root.images, log: log)
        let manifests = catalog.reload()
        log.info(
            gate == nil
                ? "no node registry: every host on the network may list and fetch images and gets the session keys"
                : "serving registered nodes only (registry: \(configuration.registryDescription))")
        log.info(
            "serving \(manifests.count) images from \(configuration.root.images): \(manifests.map(\.name).joined(separator: ", "))"
        )
        try sessions.startConductor()
        if let peerWatch {
            try peerWatch.start()
            log.info(
                "the other head node: \(peerWatch.peer)\(configuration.holdBack ? "; image versions it does not have are held back" : "")"
            )
        }
        var options = ControlServer.Options()
        options.tls = try configuration.controlTLS()
        if options.tls == nil, configuration.sessionKeys {
            let setting = configuration.encryptsSessions ? "encrypt" : "authenticate"
            log.warning(
                "\(setting) = yes without TLS: session keys travel in the clear (set tls-certificate and tls-key)")
        }
        options.maxConnections = configuration.maxConnections
        options.maxConnectionsPerHost = configuration.maxConnectionsPerHost
        options.idleTimeout = .milliseconds(Int64(configuration.idleTimeoutSeconds * 1_000))
        let server: ControlServer
        do {
            server = try ControlServer.start(
                host: configuration.listenHost, port: configuration.listenPort, options: options
            ) { [self] request, peer throws(ControlFailure) in try answer(request, peer) }
        } catch {
            sessions.shutdown(grace: 0)
            throw QlustarError(.io, error.message)
        }
        control.withLockedValue { $0 = server }
        if let m = configuration.metrics {
            do {
                let http = try MetricsServer.start(host: m.host, port: m.port) { [self] in
                    sessions.status(control: control.withLockedValue { $0?.counters }).prometheusText()
                }
                metrics.withLockedValue { $0 = http }
                log.info("Prometheus metrics on http://\(m.host):\(http.port)/metrics")
            } catch {
                stop()
                throw error
            }
        }
        let sealing =
            configuration.encryptsSessions
            ? "encrypted (AES-128-GCM)" : configuration.authenticate ? "tagged (HMAC)" : "in the clear"
        let started =
            "ql-mcastd listening on \(configuration.listenHost):\(server.port), sending from \(configuration.interface!), "
            + "groups \(configuration.groupPool) ports \(configuration.portRange), window \(configuration.windowSeconds) s, "
            + "rate \(configuration.rate), \(options.tls == nil ? "plain TCP" : "TLS"), sessions \(sealing)"
        log.info("\(started)")
    }

    /// SIGHUP: rescan the image directory (new images appear, removed ones go, changed ones
    /// are re-hashed); running sessions keep their snapshots.
    public func reload() {
        let manifests = catalog.reload()
        log.info(
            "reloaded the image list: \(manifests.count) images (\(manifests.map(\.name).joined(separator: ", ")))")
    }

    /// SIGTERM: finish running sessions within the grace period, abort the rest, close the port.
    public func stop() {
        log.info("shutting down: running sessions get \(configuration.shutdownGraceSeconds) s to finish")
        sessions.shutdown(grace: configuration.shutdownGraceSeconds)
        peerWatch?.stop()
        control.withLockedValue { $0?.stop() }
        metrics.withLockedValue { $0?.stop() }
        log.info("ql-mcastd stopped")
    }

    func answer(_ request: ControlRequest, _ peer: ControlPeer) throws(ControlFailure) -> ControlReply {
        switch request.op {
        case ImageOperation.requestImage:
            var args = try counted { () throws(ControlFailure) in try request.arguments(ImageRequest.self) }
            // An admitted node is shown by its registered name, not the name it claims.
            do {
                if let node = try admit(peer, token: args.token) { args.host = node }
            } catch {
                // Not counted against the node at that address as its failure: anyone can knock.
                sessions.note(peer, image: args.image, "image request refused: \(error.message)")
                throw error
            }
            let ticket: ImageTicket
            do { ticket = try sessions.request(args, peer: peer) } catch {
                let busy = error.code == .busy
                sessions.note(
                    peer, image: args.image, "image request \(busy ? "deferred" : "refused"): \(error.message)",
                    failed: !busy, retry: busy)
                throw error
            }
            if ticket.mode == .unicast {
                sessions.note(peer, image: args.image, "unicast: \(ticket.reason ?? "asked for")")
            }
            return .json(try encode(ticket))
        case ImageOperation.fetch:
            let args = try counted { () throws(ControlFailure) in try request.arguments(FetchRequest.self) }
            _ = try admit(peer, token: args.token)
            return try sessions.fetch(args)
        case ImageOperation.report:
            let r = try counted { () throws(ControlFailure) in try request.arguments(ClientFailureReport.self) }
            // Only a registered node may say its boot failed (with a registry): not anyone on the LAN.
            _ = try admit(peer, token: r.token)
            // The client's words, to be printed on administrators' terminals: one line each.
            let tail = (r.logTail ?? []).suffix(10).map { String($0.prefix(150)).printableLine }
            sessions.note(
                peer, image: r.image,
                "ql-mcast-client failed (exit status \(r.exitStatus)): \(String(r.message.prefix(300)).printableLine)"
                    + (tail.isEmpty ? "" : "\n" + tail.joined(separator: "\n")), failed: true)
            sessions.count { $0.clientFailures += 1 }
            return .json(Array("{}".utf8))
        case ImageOperation.status:
            let since = try counted { () throws(ControlFailure) in try request.arguments(StatusRequest.self) }
            var status = sessions.status(
                control: control.withLockedValue { $0?.counters }, eventsSince: since.eventsSince)
            status.peer = peerWatch?.status(holdBack: configuration.holdBack)
            return .json(try encode(status))
        case ImageOperation.listImages:
            let args = try counted { () throws(ControlFailure) in try request.arguments(Credentials.self) }
            _ = try admit(peer, token: args.token)
            return .json(try encode(catalog.reload()))
        case ImageOperation.fetchFile:
            let args = try counted { () throws(ControlFailure) in try request.arguments(FileFetchRequest.self) }
            guard let peerSecret, SecretFile.equal(args.token, peerSecret) else {
                sessions.count { $0.peerRefusals += 1 }
                throw ControlFailure(
                    .notRegistered, "fetch-file is for the other head node only (its peer-token does not match)")
            }
            return try sessions.fetchFile(args)
        default:
            sessions.count { $0.badRequests += 1 }
            throw ControlFailure(
                .unknownOperation,
                "ql-mcastd answers request-image, fetch, report, status, list-images and fetch-file, not '\(request.op.prefix(64))'"
            )
        }
    }

    /// Refuses a peer the registry does not know as a node (counted by reason; logged once a minute).
    /// - Returns: The registered node's name (nil: no registry, or a peer on this host).
    private func admit(_ peer: ControlPeer, token: String?) throws(ControlFailure) -> String? {
        // The other head node (qlustar-image replicate) is no registered node: it has the secret.
        if let peerSecret, let token, SecretFile.equal(token, peerSecret) { return "the other head node" }
        guard let gate else { return nil }
        return try gate.check(peer, token: token) { reason in
            sessions.count { c in
                switch reason {
                case "mac-mismatch": c.refusedMACMismatch += 1
                case "token": c.refusedToken += 1
                default: c.refusedNotRegistered += 1
                }
            }
        }
    }

    private func counted<T>(_ body: () throws(ControlFailure) -> T) throws(ControlFailure) -> T {
        do { return try body() } catch {
            sessions.count { $0.badRequests += 1 }
            throw error
        }
    }

    private func encode<T: Encodable>(_ value: T) throws(ControlFailure) -> [UInt8] {
        do { return Array(try JSONEncoder().encode(value)) } catch {
            throw ControlFailure(.internalError, "cannot encode the answer: \(error)")
        }
    }
}

extension FileSystem {
    /// Creates `path` if missing; a failure is logged (the caller reports what it cannot find).
    static func ensureDirectory(_ path: String, log: Logger) {
        do throws(QlustarError) { try makeDirectories(path) } catch { log.warning("\(error.message)") }
    }
}
