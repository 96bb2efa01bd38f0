import Logging
import NodeConfig
import NodeRegistry
import Platform

/// What a node gets, from the registry and the Root FS Customization trees: used by qlumand to
/// answer a node and by `qluman preview` — one code path, so a preview is what the node gets.
public final class NodeConfigSource: Sendable {
    public let registry: Registry
    let rootFS: RootFSCache

    public init(root: Root, registry: Registry, log: Logger) {
        self.registry = registry
        rootFS = RootFSCache(root: root, log: log)
    }

    /// The node's options with the Root FS Customization archives they reference.
    /// - Throws: `.notFound` for a customization without a tree, `.invalidArgument` for a tree
    ///   that cannot go to a node, registry errors.
    public func resolve(_ node: Node) throws(QlustarError) -> (options: NodeOptions, trees: [RootFSArchive]) {
        var options = try registry.options(for: node)
        var trees: [RootFSArchive] = []
        for name in options.sources[ConfigClass.rootFS.rawValue] ?? [] {
            let archive = try rootFS.archive(name)
            options.rootFS.append(archive.reference)
            trees.append(archive)
        }
        return (options, trees)
    }

    /// The plan `node` gets on an image with `facts`: exactly what its execd writes.
    public func plan(_ node: Node, facts: NodeFacts) throws(QlustarError) -> FilePlan {
        let (options, trees) = try resolve(node)
        return try NodeRenderer.plan(options, facts: facts, trees: trees)
    }

    var archivesBuilt: UInt64 { rootFS.archivesBuilt }
}
