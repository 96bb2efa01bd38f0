import Platform

/// The Root FS Customization config class: the tree below
/// `/var/lib/qlustar/root-fs/<name>` on the head node, copied onto the node.
public struct RootFSConfig: Codable, Sendable, Equatable {
    public var description: String?

    public func validate() throws(QlustarError) {
        if let d = description { _ = try FieldCheck.line(d, "root-fs.description") }
    }
}

extension ConfigClass {
    public static let rootFS = ConfigClass(declaring: "root-fs")
}

extension RootFSConfig: NodeConfigClass {
    public static var kind: ConfigClass { .rootFS }
    /// The bodies stay on the head node: the trees travel as archives (`NodeOptions.rootFS`).
    public static var optionsKey: String? { nil }
    public static var allowsSeveral: Bool { true }
    /// The trees go over everything generated: what an administrator placed wins.
    public static var phase: RenderPhase { .customization }
    public static var example: String { #"{"description":"site scripts"} (tree: /var/lib/qlustar/root-fs/NAME)"# }

    /// `options.d/root-fs` and every entry of the trees that came with the options, in order.
    /// - Throws: `.invalidArgument` when the trees received are not the ones announced, or an
    ///   entry would leave its tree.
    public static func render(
        _ configs: [NodeOptions.Named<Self>], into plan: inout FilePlan, _ context: inout RenderContext
    )
        throws(QlustarError)
    {
        let references = context.options.rootFS
        guard !references.isEmpty else { return }
        context.optionsFile("root-fs", of: kind, into: &plan) {
            $0.set("QLUMAN_ROOT_FS", references.map(\.name).joined(separator: " "))
        }
        guard context.trees.count == references.count else {
            throw QlustarError(
                .invalidArgument,
                "\(references.count) Root FS Customizations announced, \(context.trees.count) received")
        }
        for tree in context.trees { plan.entries += try tree.entries(origin: "root-fs \(tree.name)") }
    }
}
