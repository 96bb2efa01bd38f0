import Foundation
import Platform

/// What an image is made of: `<root>/etc/qlustar/images/IMG/image.json` (docs/IMAGES.md).
/// Beside it, `IMG/copy/` holds the image's static copy files; `common/copy/` those of all images.
public struct ImageDefinition: Codable, Sendable, Equatable {
    /// Modules in layer order; `core` is always the first layer (added when missing).
    public var modules: [String]
    /// SHA-512 crypt hash for root; nil: the head node's (from `<root>/etc/shadow`).
    public var rootPasswordHash: String?
    /// squashfs compression: zstd (default), gzip or xz.
    public var compression: String?
    /// Programs copied into the initrd with their libraries, besides ql-mcast-client.
    public var initrdPrograms: [String]?
    /// Further files for the initrd: path in the initrd → file on the head node (kernel modules
    /// the boot NIC needs, e.g. `"lib/modules/e1000.ko": "/lib/modules/6.1.0-27-amd64/…/e1000.ko"`).
    public var initrdFiles: [String: String]?
    /// The kernel the image boots with: published beside it as `IMG.vmlinuz` for pxelinux.
    public var kernel: String?
    /// How the initrd is compressed: gzip (default) or zstd.
    public var initrdCompression: String?

    public init(
        modules: [String], rootPasswordHash: String? = nil, compression: String? = nil, initrdPrograms: [String]? = nil
    ) {
        self.modules = modules
        self.rootPasswordHash = rootPasswordHash
        self.compression = compression
        self.initrdPrograms = initrdPrograms
    }

    /// The layers in order, `core` first and once.
    public var layers: [String] { ["core"] + modules.filter { $0 != "core" } }

    static func directory(_ root: Root, _ image: ImageName) -> String {
        root.path("/etc/qlustar/images/" + image.value)
    }
    static func commonCopy(_ root: Root) -> String { root.path("/etc/qlustar/images/common/copy") }

    /// Reads the definition of `image`.
    /// - Throws: `.notFound` when the image is not defined; `.configuration` naming the file.
    public static func load(_ root: Root, _ image: ImageName) throws(QlustarError) -> ImageDefinition {
        let path = directory(root, image) + "/image.json"
        guard FileSystem.isRegularFile(path) else {
            throw QlustarError(.notFound, "image '\(image)' is not defined (expected \(path))")
        }
        let bytes = try FileSystem.readFile(path, limit: 1 << 20)
        let definition: ImageDefinition
        do { definition = try JSONDecoder().decode(ImageDefinition.self, from: Data(bytes)) } catch {
            throw QlustarError(.configuration, "\(path): \(error)")
        }
        if let c = definition.compression, SquashfsBuilder.Compression(rawValue: c) == nil {
            throw QlustarError(.configuration, "\(path): compression '\(c)' is not zstd, gzip or xz")
        }
        if let c = definition.initrdCompression, InitrdCompression(rawValue: c) == nil {
            throw QlustarError(.configuration, "\(path): initrdCompression '\(c)' is not gzip or zstd")
        }
        for (inside, _) in definition.initrdFiles ?? [:] {
            let parts = inside.split(separator: "/")
            guard !inside.hasPrefix("/"), !parts.isEmpty, !parts.contains(".."), !parts.contains(".") else {
                throw QlustarError(
                    .configuration, "\(path): initrd file '\(inside)' must be a relative path without '..'")
            }
        }
        if let hash = definition.rootPasswordHash, !PasswordHash.isSHA512(hash) {
            throw QlustarError(.configuration, "\(path): rootPasswordHash must be a SHA-512 crypt hash ($6$…)")
        }
        return definition
    }

    /// Writes the definition atomically.
    public func store(_ root: Root, _ image: ImageName) throws(QlustarError) {
        let dir = ImageDefinition.directory(root, image)
        try FileSystem.makeDirectories(dir)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? encoder.encode(self) else {
            throw QlustarError(.io, "cannot encode the definition of \(image)")
        }
        try FileSystem.writeAtomically(dir + "/image.json", Array(data))
    }

    /// Images with a definition, sorted.
    public static func defined(_ root: Root) -> [ImageName] {
        let dir = root.path("/etc/qlustar/images")
        return ((try? FileSystem.list(dir)) ?? []).filter {
            $0 != "common" && FileSystem.isRegularFile(dir + "/" + $0 + "/image.json")
        }.compactMap { try? ImageName($0) }.sorted { $0.value < $1.value }
    }
}
