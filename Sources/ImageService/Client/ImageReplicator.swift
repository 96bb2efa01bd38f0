import FoundationEssentials
import Logging
import Platform
import Transport

#if canImport(Glibc)
    import Glibc
#endif

/// How `qlustar-image replicate` copies the other head's images.
public struct ReplicationOptions: Sendable {
    /// ql-mcastd on the head that published the images.
    public var source: HeadNode
    /// This head's root: the copies go to `<root>/var/lib/qlustar/images`.
    public var root: Root
    /// The heads' shared secret (the source's `peer-token`).
    public var token: String
    /// The cluster CA, to talk TLS to the source and accept only its certificate (nil: plain TCP).
    public var ca: String?
    /// The images to copy; empty: every image the source serves.
    public var images: [ImageName] = []
    /// Bytes per request.
    public var chunk = 4 << 20

    public init(source: HeadNode, root: Root, token: String) {
        self.source = source
        self.root = root
        self.token = token
    }
}

/// What a replication did, image by image.
public struct ReplicationReport: Sendable, Codable {
    public struct Entry: Sendable, Codable {
        public var image: String
        public var sha256: String
        /// `replicated`, or `up-to-date` (this head has the version already).
        public var action: String
        public var bytes: UInt64
        public var seconds: Double
    }
    public var source: String
    public var entries: [Entry]
}

/// The part of a published image's manifest (`IMG.manifest`, written by `qlustar-image build`)
/// that says what the files beside it must hash to.
struct PublishedManifest: Decodable {
    var sha256: String
    var size: UInt64
    var initrdSha256: String
    var initrdSize: UInt64
    var kernelSha256: String?
    var kernelSize: UInt64?
}

/// `qlustar-image replicate --from HEAD`: copies the images another head node published — the
/// image, its initrd, its kernel and its manifest — over that head's ql-mcastd (`list-images`,
/// `fetch`, `fetch-file`, with the heads' shared `peer-token`), and publishes each file here only
/// after it matched the digest the source's manifest gives for it. The image goes last but one,
/// the manifest last: a head never has a manifest that promises files it does not have.
public final class ImageReplicator {
    public let options: ReplicationOptions
    let log: Logger
    /// The largest initrd or kernel accepted (boot files, not images), and the largest manifest.
    static let maxFileBytes: UInt64 = 1 << 30
    static let maxManifestBytes: UInt64 = 1 << 20

    public init(options: ReplicationOptions, log: Logger) {
        self.options = options
        self.log = log
    }

    /// Copies what differs.
    /// - Throws: `.unreachable` (the source cannot be reached or its certificate is wrong),
    ///   `.refused` (the source refused the token), `.notFound` (it serves no such image),
    ///   `.integrity` (a file did not match its manifest: nothing of that image was published),
    ///   `.transfer` or `.io`.
    public func run() throws(QlustarError) -> ReplicationReport {
        let client = try connect()
        defer { client.close() }
        let listed: [ImageManifest]
        do {
            listed = try client.call(
                ImageOperation.listImages, Credentials(token: options.token), as: [ImageManifest].self, timeout: 60)
        } catch {
            throw failure(error, "cannot list the images of \(options.source)")
        }
        var wanted = listed
        if !options.images.isEmpty {
            wanted = []
            for name in options.images {
                guard let m = listed.first(where: { $0.name == name.value }) else {
                    throw QlustarError(.notFound, "\(options.source) serves no image '\(name)'")
                }
                wanted.append(m)
            }
        }
        try FileSystem.makeDirectories(options.root.images)
        var entries: [ReplicationReport.Entry] = []
        for m in wanted { entries.append(try replicate(m, client)) }
        return ReplicationReport(source: options.source.description, entries: entries)
    }

    private func connect() throws(QlustarError) -> ControlClient {
        do {
            let tls = try options.ca.map { ca throws(ControlFailure) in
                try ControlTLS.client(ca: ca, host: options.source.host)
            }
            return try ControlClient(
                host: options.source.host, port: options.source.port, timeout: 5, maxData: options.chunk + 4_096,
                tls: tls)
        } catch {
            throw QlustarError(.unreachable, "ql-mcastd at \(options.source): \(error.message)")
        }
    }

    private func failure(_ error: ControlFailure, _ what: String) -> QlustarError {
        switch error.code {
        case .notRegistered:
            QlustarError(.refused, "\(what): \(error.message) (is --token-file the heads' peer-token?)")
        case .notFound: QlustarError(.notFound, "\(what): \(error.message)")
        case .connection, .timedOut, .tls: QlustarError(.unreachable, "\(what): \(error.message)")
        default: QlustarError(.transfer, "\(what): \(error.message)")
        }
    }

    private func replicate(_ m: ImageManifest, _ client: ControlClient) throws(QlustarError)
        -> ReplicationReport.Entry
    {
        let t0 = MonotonicClock.nanoseconds()
        let name = try ImageName(m.name)
        let base = options.root.images + "/" + name.value
        var entry = ReplicationReport.Entry(
            image: name.value, sha256: m.sha256.description, action: "up-to-date", bytes: 0, seconds: 0)
        if let local = try? Self.decode(FileSystem.readFile(base + ".manifest", limit: 1 << 20)),
            local.sha256 == m.sha256.description, (try? FileSystem.identity(of: base + ".img"))?.size == m.size
        {
            log.info("'\(name)' sha256 \(m.sha256): up to date")
            return entry
        }
        // The source's manifest first: it names the digests of the files beside the image.
        let manifestBytes = try fetchFile(name, .manifest, client, limit: Self.maxManifestBytes)
        let published: PublishedManifest
        do { published = try Self.decode(manifestBytes) } catch {
            throw QlustarError(.integrity, "the manifest of '\(name)' on \(options.source) does not decode: \(error)")
        }
        guard published.sha256 == m.sha256.description, published.size == m.size else {
            throw QlustarError(
                .transfer,
                "\(options.source) is publishing a new version of '\(name)' (its manifest and its image differ); run again"
            )
        }
        var bytes = UInt64(manifestBytes.count)
        let initrd = try fetchFile(name, .initrd, client)
        try verify(initrd, sha256: published.initrdSha256, size: published.initrdSize, "the initrd of '\(name)'")
        bytes += UInt64(initrd.count)
        var kernel: [UInt8]?
        if let sha = published.kernelSha256 {
            let k = try fetchFile(name, .vmlinuz, client)
            try verify(k, sha256: sha, size: published.kernelSize, "the kernel of '\(name)'")
            kernel = k
            bytes += UInt64(k.count)
        } else {
            log.warning(
                "the manifest of '\(name)' on \(options.source) names no kernel digest (built before there were any): its kernel is not copied; rebuild it there to have it replicated"
            )
        }
        let staged = options.root.images + "/." + name.value + ".img.replica"
        defer { FileSystem.remove(staged) }
        bytes += try fetchImage(m, into: staged, client)
        // Verified, all of it: kernel and initrd, the image, the manifest last.
        if let kernel { try FileSystem.writeAtomically(base + ".vmlinuz", kernel) }
        try FileSystem.writeAtomically(base + ".initrd", initrd)
        try FileSystem.publish(staged, to: base + ".img", mode: 0o644)
        try FileSystem.writeAtomically(base + ".manifest", manifestBytes)
        entry.action = "replicated"
        entry.bytes = bytes
        entry.seconds = Double(MonotonicClock.nanoseconds() - t0) / 1e9
        log.info(
            "'\(name)' sha256 \(m.sha256): replicated from \(options.source), \(bytes) bytes in \(String(printf: "%.1f", entry.seconds)) s"
        )
        return entry
    }

    static func body<T: Encodable>(_ op: String, _ arguments: T) throws(ControlFailure) -> ControlRequest {
        do { return try ControlRequest(op: op, arguments: arguments) } catch {
            throw ControlFailure(.malformedRequest, "cannot encode '\(op)': \(error)")
        }
    }

    static func decode(_ bytes: [UInt8]) throws -> PublishedManifest {
        try JSONDecoder().decode(PublishedManifest.self, from: Data(bytes))
    }

    private func verify(_ bytes: [UInt8], sha256: String, size: UInt64?, _ what: String) throws(QlustarError) {
        let digest = bytes.withUnsafeBytes { SHA256.hash($0) }
        guard digest.description == sha256, size.map({ $0 == UInt64(bytes.count) }) ?? true else {
            throw QlustarError(
                .integrity,
                "\(what) from \(options.source) does not match its manifest (sha256 \(digest), expected \(sha256)); nothing of it was published"
            )
        }
    }

    /// A whole initrd, kernel or manifest, range by range.
    private func fetchFile(
        _ name: ImageName, _ file: PublishedFile, _ client: ControlClient, limit: UInt64 = ImageReplicator.maxFileBytes
    ) throws(QlustarError) -> [UInt8] {
        var bytes: [UInt8] = []
        var size: UInt64 = 1
        while UInt64(bytes.count) < size {
            let request = FileFetchRequest(
                image: name.value, file: file, offset: UInt64(bytes.count), length: options.chunk, token: options.token)
            let answer: (json: ArraySlice<UInt8>, payload: ArraySlice<UInt8>)
            do throws(ControlFailure) {
                answer = try client.fetch(try Self.body(ImageOperation.fetchFile, request))
            } catch {
                throw failure(error, "cannot fetch the \(file.rawValue) of '\(name)'")
            }
            guard let header = try? JSONDecoder().decode(FileFetchHeader.self, from: Data(answer.json)),
                header.offset == UInt64(bytes.count), header.length == answer.payload.count,
                header.size <= limit, UInt64(bytes.count) + UInt64(header.length) <= header.size,
                header.length > 0 || header.size == UInt64(bytes.count)
            else {
                throw QlustarError(
                    .transfer,
                    "\(options.source) answered the \(file.rawValue) of '\(name)' with a malformed range (or one of a file over \(limit) bytes)"
                )
            }
            size = header.size
            bytes += answer.payload
        }
        return bytes
    }

    /// The image, by `fetch` of its version's ranges, into `path`; verified. Returns its size.
    private func fetchImage(_ m: ImageManifest, into path: String, _ client: ControlClient) throws(QlustarError)
        -> UInt64
    {
        let file: MappedFile
        do { file = try MappedFile.create(writingTo: path, size: Int(m.size), mode: 0o644) } catch {
            throw QlustarError(.io, "cannot create \(path): \(error.message)")
        }
        var offset: UInt64 = 0
        while offset < m.size {
            let length = Int(min(UInt64(options.chunk), m.size - offset))
            let request = FetchRequest(
                image: m.name, sha256: m.sha256, offset: offset, length: length, token: options.token)
            let payload: ArraySlice<UInt8>
            do throws(ControlFailure) {
                payload = try client.fetch(try Self.body(ImageOperation.fetch, request)).payload
            } catch {
                throw failure(error, "cannot fetch '\(m.name)' at \(offset)")
            }
            guard payload.count == length else {
                throw QlustarError(
                    .transfer, "\(options.source) sent \(payload.count) bytes for \(length) of '\(m.name)'")
            }
            payload.withUnsafeBytes { src in
                // In bounds: offset + length <= m.size, the mapping's size.
                (file.mutableBytes.baseAddress! + Int(offset)).copyMemory(from: src.baseAddress!, byteCount: length)
            }
            offset += UInt64(length)
        }
        let digest = SHA256.hash(UnsafeRawBufferPointer(rebasing: file.bytes.prefix(Int(m.size))))
        do { try file.finish(size: Int(m.size)) } catch {
            throw QlustarError(.io, "cannot finish \(path): \(error.message)")
        }
        guard digest == m.sha256 else {
            throw QlustarError(
                .integrity,
                "'\(m.name)' from \(options.source) does not match its sha256 (\(digest), expected \(m.sha256)); nothing of it was published"
            )
        }
        return m.size
    }
}
