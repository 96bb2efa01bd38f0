import NIOCore
import NIOSSL

/// TLS for the control channel, with a cluster CA: the server presents a certificate the CA
/// signed (with the head node's address or name as subject alternative name); clients trust only
/// that CA and check the name. Used where the channel carries secrets (session keys, node
/// configuration). TLS 1.2 at least.
public struct ControlTLS: Sendable {
    let context: NIOSSLContext
    let isServer: Bool
    /// The name to verify and send as SNI; nil verifies the server's IP address instead.
    let serverName: String?

    /// The server side: a certificate chain and its private key, both PEM files.
    /// - Throws: `ControlFailure(.connection)` naming the file that does not load.
    public static func server(certificate: String, key: String) throws(ControlFailure) -> ControlTLS {
        do {
            var config = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
            config.minimumTLSVersion = .tlsv12
            return ControlTLS(context: try NIOSSLContext(configuration: config), isServer: true, serverName: nil)
        } catch {
            throw ControlFailure(.connection, "TLS: cannot load the certificate \(certificate) or key \(key): \(error)")
        }
    }

    /// The client side: trust only the CA in `ca` (PEM) and verify the server's name — `host`
    /// when it is a name, the connected IP address when it is an address.
    /// - Throws: `ControlFailure(.connection)` when the CA file does not load.
    public static func client(ca: String, host: String) throws(ControlFailure) -> ControlTLS {
        do {
            var config = TLSConfiguration.makeClientConfiguration()
            config.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca))
            config.certificateVerification = .fullVerification
            config.minimumTLSVersion = .tlsv12
            let isAddress = (try? SocketAddress(ipAddress: host, port: 0)) != nil
            return ControlTLS(
                context: try NIOSSLContext(configuration: config), isServer: false, serverName: isAddress ? nil : host)
        } catch {
            throw ControlFailure(.connection, "TLS: cannot load the cluster CA \(ca): \(error)")
        }
    }

    /// The handler that goes first in a connection's pipeline.
    package func handler() throws -> ChannelHandler {
        isServer
            ? NIOSSLServerHandler(context: context)
            : try NIOSSLClientHandler(context: context, serverHostname: serverName)
    }
}
