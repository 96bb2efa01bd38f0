import Platform

/// Turns a node's options into the files configure writes (`FilePlan`). The one place that
/// decides what a node gets: `qluman preview` and `qluman-execd --configure` both call it.
public enum NodeRenderer {
    public static let optionsDirectory = "/etc/qlustar/options.d"

    /// The plan for `options` on a node with `facts` (OS family, time daemon), with the Root FS
    /// Customization trees in `trees` (in the order of `options.rootFS`).
    /// - Throws: `.invalidArgument` when a value cannot be applied to this node (a host number
    ///   that does not fit a network), or a tree entry that would leave its tree.
    public static func plan(_ options: NodeOptions, facts: NodeFacts, trees: [RootFSArchive]) throws(QlustarError)
        -> FilePlan
    {
        var plan = FilePlan()
        var context = RenderContext(options: options, facts: facts, trees: trees)
        let node = options.node
        plan.file("/etc/hostname", node.name + "\n", origin: "node")
        var identity = ShellOptions(header: context.header("node identity"))
        identity.set("QLUMAN_NODE", node.name)
        identity.set("QLUMAN_IP", node.ip)
        identity.set("QLUMAN_PREFIX", String(node.prefix))
        identity.set("QLUMAN_MACS", node.macs.joined(separator: " "))
        plan.file(optionsDirectory + "/node", identity.text, origin: "node")

        for type in ConfigClass.all where type.phase == .files { try type.render(options, into: &plan, &context) }
        nameServiceSwitch(context.nameServices, into: &plan)
        for type in ConfigClass.all where type.phase == .customization {
            try type.render(options, into: &plan, &context)
        }
        return plan
    }

    /// The passwd, group and shadow lines of nsswitch.conf with the name services the classes
    /// asked for (after `files systemd`), and the netgroup line for those that answer netgroups.
    static func nameServiceSwitch(
        _ services: [(service: String, origin: String, netgroup: Bool)], into plan: inout FilePlan
    ) {
        guard !services.isEmpty else { return }
        let extra = services.map { " " + $0.service }.joined()
        let origin = services.map(\.origin).joined(separator: ", ")
        func line(_ database: String, _ sources: String) -> String {
            "\(database):".padding(toLength: 16, withPad: " ", startingAt: 0) + sources
        }
        for (database, base) in [("passwd", "files systemd"), ("group", "files systemd"), ("shadow", "files")] {
            plan.edit("/etc/nsswitch.conf", key: database + ":", line: line(database, base + extra), origin: origin)
        }
        let netgroup = services.filter(\.netgroup)
        if !netgroup.isEmpty {
            plan.edit(
                "/etc/nsswitch.conf", key: "netgroup:",
                line: line("netgroup", netgroup.map(\.service).joined(separator: " ")),
                origin: netgroup.map(\.origin).joined(separator: ", "))
        }
    }
}
