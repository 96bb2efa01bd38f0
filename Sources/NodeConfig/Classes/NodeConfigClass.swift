import Foundation
import Platform

/// One config class of QluMan: the type of its body, which knows everything about the class —
/// its kind (the name in the registry and on the command line), an example, its checks, how
/// it travels to the node inside `NodeOptions`, and the files it gives a node (`render`).
///
/// Adding a class: one file with its body type conforming to this protocol, plus its line in
/// `ConfigClass.all` (the order administrators read, and the order of the plan) and its test.
public protocol NodeConfigClass: Codable, Sendable, Equatable {
    /// The class this body belongs to.
    static var kind: ConfigClass { get }
    /// An example body, for `--help` and error messages.
    static var example: String { get }
    /// Whether a node may have several configs of the class (all of them apply, by name);
    /// otherwise a node's own assignment replaces its group's.
    static var allowsSeveral: Bool { get }
    /// The key that carries the class's bodies inside `NodeOptions` to execd — part of the wire
    /// format between qlumand and the execd of older images: never change it. Nil for a class
    /// whose bodies stay on the head node (Root FS Customizations travel as archives).
    static var optionsKey: String? { get }
    /// When the class is rendered: with the generated files, or after them.
    static var phase: RenderPhase { get }

    /// Checks a decoded body; the error names the field that is wrong.
    func validate() throws(QlustarError)

    /// Adds what `configs` (the configs of this class assigned to the node: one, or several
    /// where the class allows) give the node to `plan`.
    /// - Throws: `.invalidArgument` when a value cannot be applied to this node.
    static func render(_ configs: [NodeOptions.Named<Self>], into plan: inout FilePlan, _ context: inout RenderContext)
        throws(QlustarError)
}

/// When a class is rendered into a node's plan.
public enum RenderPhase: Sendable {
    /// With the other generated files, in the order of `ConfigClass.all`.
    case files
    /// After every generated file: what an administrator placed by hand (Root FS
    /// Customization trees) replaces what the classes generated at the same path.
    case customization
}

extension NodeConfigClass {
    public static var allowsSeveral: Bool { false }
    public static var phase: RenderPhase { .files }

    /// Checks a stored or submitted body of this class and returns it in canonical form
    /// (sorted keys), so the same config always has the same bytes.
    static func canonical(_ json: [UInt8], what: String) throws(QlustarError) -> [UInt8] {
        guard json.count <= 256 * 1024 else { throw QlustarError(.invalidArgument, "\(what): larger than 256 KiB") }
        let value = try decode(json, what: what)
        do { try value.validate() } catch { throw QlustarError(.invalidArgument, "\(what): \(error.message)") }
        return canonicalJSON(value)
    }

    static func decode(_ json: [UInt8], what: String) throws(QlustarError) -> Self {
        do { return try JSONDecoder().decode(Self.self, from: Data(json)) } catch {
            throw QlustarError(.invalidArgument, "\(what): \(ConfigClass.describe(error))")
        }
    }

    /// The bodies of this class in `options`, by config name.
    static func named(in options: NodeOptions) -> [NodeOptions.Named<Self>] {
        (options.bodies[kind] ?? []).compactMap { n in
            (n.body as? Self).map { NodeOptions.Named(name: n.name, config: $0) }
        }
    }

    /// Renders the class when the node has a config of it.
    static func render(_ options: NodeOptions, into plan: inout FilePlan, _ context: inout RenderContext)
        throws(QlustarError)
    {
        guard options.sources[kind.rawValue]?.isEmpty == false else { return }
        try render(named(in: options), into: &plan, &context)
    }

    // MARK: The wire format of NodeOptions

    static func encode(_ options: NodeOptions, into container: inout KeyedEncodingContainer<NodeOptions.Key>) throws {
        guard let key = optionsKey.map(NodeOptions.Key.init) else { return }
        let configs = named(in: options)
        if allowsSeveral {
            try container.encode(configs, forKey: key)
        } else if let one = configs.last {
            try container.encode(one.config, forKey: key)
        }
    }

    static func decode(_ container: KeyedDecodingContainer<NodeOptions.Key>, sources: [String: [String]]) throws
        -> [NodeOptions.NamedBody]
    {
        guard let key = optionsKey.map(NodeOptions.Key.init) else { return [] }
        if allowsSeveral {
            let list = try container.decodeIfPresent([NodeOptions.Named<Self>].self, forKey: key) ?? []
            return list.map { .init(name: $0.name, body: $0.config) }
        }
        guard let one = try container.decodeIfPresent(Self.self, forKey: key) else { return [] }
        return [.init(name: sources[kind.rawValue]?.last ?? "", body: one)]
    }
}

/// What every class renders with: the node, its facts, the Root FS trees that came with its
/// options, the comment every generated file starts with, and what classes hand to the
/// renderer's common steps (the name services for nsswitch.conf).
public struct RenderContext {
    public let options: NodeOptions
    public let facts: NodeFacts
    public let trees: [RootFSArchive]
    /// Name services (`sss`, `nis`) for the passwd, group and shadow lines of nsswitch.conf,
    /// with the config they come from; `netgroup` when the service also answers netgroups.
    var nameServices: [(service: String, origin: String, netgroup: Bool)] = []

    public var node: NodeOptions.Identity { options.node }

    /// The two comment lines every generated file starts with.
    public func header(_ what: String) -> String {
        "# Written by qluman-execd for node \(node.name) from qlumand (\(what)).\n"
            + "# Generated at every boot: changes made here are lost.\n"
    }

    /// Adds `options.d/NAME`, the file of `KEY='value'` lines a class gives a node, filled by `fill`.
    func optionsFile(
        _ name: String, of cls: ConfigClass, into plan: inout FilePlan, _ fill: (inout ShellOptions) -> Void
    ) {
        let source = source(cls)
        var o = ShellOptions(header: header(source))
        fill(&o)
        plan.file(NodeRenderer.optionsDirectory + "/" + name, o.text, origin: source)
    }

    /// `class config-a,config-b`: where a generated file comes from.
    public func source(_ cls: ConfigClass) -> String {
        "\(cls.rawValue) " + (options.sources[cls.rawValue] ?? []).joined(separator: ",")
    }
}
