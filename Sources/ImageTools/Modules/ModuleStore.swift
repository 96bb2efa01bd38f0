import Foundation
import Platform
import Transport

/// The installed image modules: `<root>/var/lib/qlustar/image-modules/NAME/VERSION/`.
public struct ModuleStore: Sendable {
    public let root: Root
    public init(root: Root) { self.root = root }

    public var directory: String { root.path("/var/lib/qlustar/image-modules") }

    /// Installed versions of module `name`, oldest first.
    public func versions(of name: String) -> [ModuleVersion] {
        let entries = (try? FileSystem.list(directory + "/" + name)) ?? []
        return entries.filter { FileSystem.isRegularFile(directory + "/" + name + "/" + $0 + "/module.json") }
            .map(ModuleVersion.init).sorted()
    }

    /// Every installed module name.
    public func names() -> [String] {
        ((try? FileSystem.list(directory)) ?? []).filter { !versions(of: $0).isEmpty }.sorted()
    }

    /// Module `name` at `version`, or its newest installed version.
    /// - Throws: `.notFound` naming what is installed; `.configuration` for a broken manifest.
    public func module(_ name: String, version: ModuleVersion? = nil) throws(QlustarError) -> ImageModule {
        guard ModuleStore.isValidName(name) else {
            throw QlustarError(
                .invalidArgument, "module name '\(name)' may only contain letters, digits, '.', '_', '+' and '-'")
        }
        let installed = versions(of: name)
        guard let chosen = version ?? installed.last, installed.contains(chosen) else {
            let what = version.map { "version \($0) of module '\(name)'" } ?? "module '\(name)'"
            throw QlustarError(
                .notFound,
                "\(what) is not installed in \(directory) (installed: \(installed.isEmpty ? "none" : installed.map(\.text).joined(separator: ", ")))"
            )
        }
        let dir = directory + "/" + name + "/" + chosen.text
        let bytes = try FileSystem.readFile(dir + "/module.json", limit: 16 << 20)
        let manifest: ModuleManifest
        do { manifest = try JSONDecoder().decode(ModuleManifest.self, from: Data(bytes)) } catch {
            throw QlustarError(.configuration, "\(dir)/module.json is not a module manifest: \(error)")
        }
        guard manifest.name == name, manifest.version == chosen.text else {
            throw QlustarError(
                .configuration, "\(dir)/module.json names \(manifest.name) \(manifest.version), not \(name) \(chosen)")
        }
        let content: ImageModule.Content
        if FileSystem.isDirectory(dir + "/tree") {
            content = .tree(dir + "/tree")
        } else if FileSystem.isRegularFile(dir + "/tree.tar") {
            content = .tarArchive(dir + "/tree.tar")
        } else {
            throw QlustarError(
                .configuration, "module \(name) \(chosen) has no content (\(dir)/tree or \(dir)/tree.tar)")
        }
        let digest = bytes.withUnsafeBytes { SHA256.hash($0) }.hex
        return ImageModule(manifest: manifest, directory: dir, content: content, manifestDigest: digest)
    }

    static func isValidName(_ name: String) -> Bool { (try? ImageName(name)) != nil }
}
