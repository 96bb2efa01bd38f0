import FoundationEssentials
import Logging
import NIOConcurrencyHelpers
import Platform
import Transport

/// The images ql-mcastd serves: `<root>/var/lib/qlustar/images/NAME.img`.
///
/// A snapshot is opened on first use and kept while the file stays the same version; its
/// manifest (size, SHA-256, layout) is computed once, cached on disk, and recomputed only when
/// the file changes (new inode, size or times). `reload()` (SIGHUP) forgets what vanished.
///
/// `Sendable`: the table is protected by its lock; hashing a changed image happens outside it,
/// so other images are served meanwhile.
public final class ImageCatalog: Sendable {
    public let root: Root
    public let symbolSize: Int
    public let sourceSymbols: Int
    private let log: Logger?
    private let table = NIOLockedValueBox<[ImageName: ImageSnapshot]>([:])
    /// The version each image had before its current one, while `keepsPrevious` (two heads: what
    /// is served while the other head does not have the new version yet).
    private let previous = NIOLockedValueBox<[ImageName: ImageSnapshot]>([:])
    public let keepsPrevious: Bool
    /// Bytes hashed to build manifests (a manifest served from the cache hashes nothing).
    public let hashedBytes = NIOLockedValueBox<UInt64>(0)

    public init(
        root: Root, symbolSize: Int = 1_440, sourceSymbols: Int = 128, log: Logger? = nil, keepsPrevious: Bool = false
    ) {
        self.root = root
        self.keepsPrevious = keepsPrevious
        self.symbolSize = symbolSize
        self.sourceSymbols = sourceSymbols
        self.log = log
    }

    private func path(_ name: ImageName) -> String { root.images + "/" + name.fileName }
    private func cachePath(_ name: ImageName) -> String { root.manifestCache + "/" + name.value + ".manifest" }

    /// The current version of image `name`, opened and with its manifest.
    /// - Throws: `.notFound` when there is no such image file; `.io` when it cannot be read.
    public func snapshot(_ name: ImageName) throws(QlustarError) -> ImageSnapshot {
        let file = path(name)
        guard let id = try FileSystem.identity(of: file), FileSystem.isRegularFile(file) else {
            throw QlustarError(.notFound, "no image '\(name)' (expected the file \(file))")
        }
        let cached = table.withLockedValue { $0[name] }
        if let cached, cached.manifest.identity == id { return cached }
        let snapshot = try open(name, file)
        table.withLockedValue { $0[name] = snapshot }
        if keepsPrevious, let cached, cached.manifest.sha256 != snapshot.manifest.sha256 {
            previous.withLockedValue { $0[name] = cached }
        }
        return snapshot
    }

    /// The version `name` had before its current one (nil unless `keepsPrevious`).
    public func previousSnapshot(_ name: ImageName) -> ImageSnapshot? { previous.withLockedValue { $0[name] } }

    /// The snapshot of `name` whose digest is `digest`, if it is still the current one or held by
    /// `others` (running sessions): what a fallback fetch must read from.
    public func snapshot(_ name: ImageName, digest: SHA256Digest, among others: [ImageSnapshot]) -> ImageSnapshot? {
        if let s = others.first(where: { $0.name == name && $0.manifest.sha256 == digest }) { return s }
        if let current = try? snapshot(name), current.manifest.sha256 == digest { return current }
        if let older = previousSnapshot(name), older.manifest.sha256 == digest { return older }
        return nil
    }

    /// The names of the images present now, sorted.
    public func names() -> [ImageName] {
        let entries = (try? FileSystem.list(root.images)) ?? []
        return entries.compactMap { entry -> ImageName? in
            guard entry.hasSuffix(".img"), FileSystem.isRegularFile(root.images + "/" + entry) else { return nil }
            return try? ImageName(String(entry.dropLast(4)))
        }.sorted { $0.value < $1.value }
    }

    /// Opens every image (computing manifests that are missing or stale) and forgets the ones
    /// gone. Returns the manifests; a broken image is logged and skipped.
    @discardableResult
    public func reload() -> [ImageManifest] {
        let present = names()
        table.withLockedValue { t in t = t.filter { present.contains($0.key) } }
        previous.withLockedValue { t in t = t.filter { present.contains($0.key) } }
        var manifests: [ImageManifest] = []
        for name in present {
            do throws(QlustarError) { manifests.append(try snapshot(name).manifest) } catch {
                log?.error("image '\(name)': \(error.message)")
            }
        }
        return manifests
    }

    private func open(_ name: ImageName, _ file: String) throws(QlustarError) -> ImageSnapshot {
        // Served from a sealed copy in memory, never from the file: an administrator's `cp` over
        // a served image (truncate, then write) must neither crash the daemon nor change a
        // session's bytes under its announced digest. See docs/SECURITY.md.
        let t0 = MonotonicClock.nanoseconds()
        var copied: FileIdentity?
        let mapped: MappedFile
        do throws(TransportError) {
            mapped = try MappedFile.copy(of: file) { fd throws(TransportError) in
                // The identity of what we copy: the name may point elsewhere by now.
                do throws(QlustarError) { copied = try FileSystem.identity(descriptor: fd, path: file) } catch {
                    throw TransportError(.io, error.message)
                }
                return copied
            }
        } catch {
            throw QlustarError(.io, "cannot open image '\(name)': \(error.message)")
        }
        guard let id = copied else { throw QlustarError(.io, "cannot open image '\(name)'") }
        let copySeconds = Double(MonotonicClock.nanoseconds() - t0) / 1e9
        log?.info("image '\(name)': \(id.size) bytes copied into memory in \(String(printf: "%.2f", copySeconds)) s")
        var manifest = cachedManifest(name, id)
        if manifest == nil {
            let t0 = MonotonicClock.nanoseconds()
            let digest = SHA256.hash(mapped.bytes)
            hashedBytes.withLockedValue { $0 += UInt64(mapped.mappedSize) }
            let fresh = ImageManifest(
                name: name.value, size: id.size, sha256: digest, symbolSize: symbolSize, sourceSymbols: sourceSymbols,
                identity: id)
            let seconds = Double(MonotonicClock.nanoseconds() - t0) / 1e9
            log?.info(
                "image '\(name)': \(id.size) bytes, sha256 \(digest) (hashed in \(String(printf: "%.2f", seconds)) s)")
            storeManifest(fresh)
            manifest = fresh
        }
        do { return try ImageSnapshot(name: name, manifest: manifest!, file: mapped) } catch {
            throw QlustarError(.io, "image '\(name)' cannot be streamed: \(error.message)")
        }
    }

    private func cachedManifest(_ name: ImageName, _ id: FileIdentity) -> ImageManifest? {
        guard let bytes = try? FileSystem.readFile(cachePath(name), limit: 64 << 10),
            let m = try? JSONDecoder().decode(ImageManifest.self, from: Data(bytes))
        else { return nil }
        guard m.format == ImageManifest.formatVersion, m.name == name.value, m.identity == id,
            m.symbolSize == symbolSize, m.sourceSymbols == sourceSymbols
        else { return nil }
        return m
    }

    private func storeManifest(_ m: ImageManifest) {
        do throws(QlustarError) {
            try FileSystem.makeDirectories(root.manifestCache)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            guard let data = try? encoder.encode(m) else { return }
            try FileSystem.writeAtomically(cachePath(try ImageName(m.name)), Array(data))
        } catch {
            log?.warning(
                "cannot cache the manifest of '\(m.name)': \(error.message) (it will be recomputed next start)")
        }
    }
}
