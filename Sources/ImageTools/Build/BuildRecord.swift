import Foundation
import Platform

/// What the last build of an image used and produced: `<root>/var/lib/qlustar/image-build/IMG.json`.
/// Also published beside the image as `IMG.manifest` (without the file identities).
public struct BuildRecord: Codable, Sendable, Equatable {
    public struct Module: Codable, Sendable, Equatable {
        public var name: String
        public var version: String
    }

    public var image: String
    /// SHA-256 over everything the build reads (definition, module versions and manifests, copy
    /// files, root password, initrd programs): equal inputs, equal outputs, no rebuild.
    public var inputs: String
    /// SHA-256 over what the initrd is made of (its programs, libraries, /init, time): the initrd
    /// is rebuilt only when this changes.
    public var initrdInputs: String?
    public var modules: [Module]
    public var sha256: String
    public var size: UInt64
    public var initrdSha256: String
    public var initrdSize: UInt64
    /// The kernel published beside the image (`IMG.vmlinuz`), when the definition names one.
    public var kernelSha256: String?
    public var kernelSize: UInt64?
    /// The published files' identities, to notice a file replaced behind the tool's back.
    public var imageIdentity: FileIdentity?
    public var initrdIdentity: FileIdentity?
    /// The published files were edited by hand since (qlustar-image-edit -i/-s).
    public var edited: Bool?

    static func path(_ root: Root, _ image: String) -> String {
        root.path("/var/lib/qlustar/image-build/\(image).json")
    }

    /// The record of the last build of `image`.
    /// - Throws: `.io` when there is none, `.configuration` when it is unreadable.
    static func load(_ root: Root, _ image: ImageName) throws(QlustarError) -> BuildRecord {
        let bytes = try FileSystem.readFile(path(root, image.value), limit: 1 << 20)
        do { return try JSONDecoder().decode(BuildRecord.self, from: Data(bytes)) } catch {
            throw QlustarError(.configuration, "build record of '\(image)' is unreadable: \(error)")
        }
    }

    func store(_ root: Root) throws(QlustarError) {
        try FileSystem.makeDirectories(root.path("/var/lib/qlustar/image-build"))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? encoder.encode(self) else {
            throw QlustarError(.io, "cannot encode the build record of \(image)")
        }
        try FileSystem.writeAtomically(BuildRecord.path(root, image), Array(data))
    }
}
