import Platform
import Transport

/// One version of an image, open and mapped: what a session streams and the unicast fallback
/// serves. A session keeps its snapshot for its whole life, so an image replaced on disk while
/// it streams (the image tooling publishes by rename) changes nothing for that session: the old
/// inode stays open until the last user is gone.
///
/// `@unchecked Sendable`: every stored property is immutable after init, and the mapping is
/// read-only.
public final class ImageSnapshot: @unchecked Sendable {
    public let name: ImageName
    public let manifest: ImageManifest
    public let layout: ObjectLayout
    let file: MappedFile

    init(name: ImageName, manifest: ImageManifest, file: MappedFile) throws(TransportError) {
        self.name = name
        self.manifest = manifest
        self.file = file
        layout = try manifest.layout()
    }

    /// The image's bytes (read-only mapping; empty for an empty image).
    public var bytes: UnsafeRawBufferPointer { file.bytes }
    /// The open descriptor (for `sendfile`); owned by the snapshot.
    public var descriptor: Int32 { file.fd }
}
