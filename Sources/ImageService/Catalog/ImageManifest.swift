import Platform
import Transport

/// What ql-mcastd knows of one image file: size, SHA-256 and the FEC layout it is streamed with,
/// tied to the file version (`identity`) it was computed from.
///
/// Cached in `<root>/var/cache/qlustar/ql-mcastd/NAME.manifest` (JSON) and recomputed when the
/// file's identity or the layout parameters differ. See `docs/IMAGE-SERVICE.md`.
public struct ImageManifest: Sendable, Codable, Equatable {
    public static let formatVersion = 1

    public var format = ImageManifest.formatVersion
    public var name: String
    public var size: UInt64
    public var sha256: SHA256Digest
    public var symbolSize: Int
    public var sourceSymbols: Int
    public var identity: FileIdentity

    /// The FEC layout of this image.
    public func layout() throws(TransportError) -> ObjectLayout {
        try ObjectLayout(objectSize: size, symbolSize: symbolSize, sourceSymbols: sourceSymbols)
    }
}
