import Platform

/// The Network FS mounts config class: systemd `.mount` (and optionally `.automount`) units,
/// named by systemd's path escaping and enabled for `remote-fs.target`.
public struct NetworkFSConfig: Codable, Sendable, Equatable {
    public struct Mount: Codable, Sendable, Equatable {
        /// What to mount (`head:/srv/home`, `//server/share`, `mgs@o2ib:/lustre`).
        public var source: String
        /// Where (absolute, on the node).
        public var path: String
        /// The file system type (`nfs`, `nfs4`, `cifs`, `lustre`, `beegfs`, …).
        public var type: String
        public var options: String?
        /// Mount on first access instead of at boot.
        public var automount: Bool?
    }

    public var mounts: [Mount]

    public func validate() throws(QlustarError) {
        guard !mounts.isEmpty else { throw FieldCheck.fail("network-fs", "needs at least one mount") }
        var paths = Set<String>()
        for (i, m) in mounts.enumerated() {
            let what = "mounts[\(i)]"
            _ = try FieldCheck.line(m.source, what + ".source", limit: 1024, allowSpaces: false)
            let path = try FieldCheck.absolutePath(m.path, what + ".path")
            guard path != "/" else { throw FieldCheck.fail(what + ".path", "cannot mount over /") }
            guard paths.insert(path).inserted else { throw FieldCheck.fail(what, "\(path) is mounted twice") }
            guard
                m.type.utf8.allSatisfy({
                    ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E || $0 == 0x5F
                }),
                (1...32).contains(m.type.utf8.count)
            else {
                throw FieldCheck.fail(what + ".type", "\(ImageName.quoted(m.type)) is not a file system type like nfs")
            }
            if let o = m.options { _ = try FieldCheck.line(o, what + ".options", limit: 1024, allowSpaces: false) }
        }
    }
}

extension ConfigClass {
    public static let networkFS = ConfigClass(declaring: "network-fs")
}

extension NetworkFSConfig: NodeConfigClass {
    public static var kind: ConfigClass { .networkFS }
    public static var optionsKey: String? { "networkFS" }
    public static var allowsSeveral: Bool { true }
    public static var example: String {
        #"{"mounts":[{"source":"head:/srv/home","path":"/home","type":"nfs","options":"rw,hard","automount":true}]}"#
    }

    /// A `.mount` unit per mount (and an `.automount` where asked), enabled for remote-fs.target.
    public static func render(
        _ configs: [NodeOptions.Named<Self>], into plan: inout FilePlan, _ context: inout RenderContext
    ) {
        for named in configs {
            for mount in named.config.mounts {
                let origin = "network-fs \(named.name)"
                let unit = SystemdUnitName.escape(path: mount.path)
                let description = "Description=QluMan network file system \(mount.path) (\(named.name))\n"
                var text = context.header(origin) + "[Unit]\n" + description
                text += "After=network-online.target\nWants=network-online.target\n\n"
                text += "[Mount]\nWhat=\(mount.source)\nWhere=\(mount.path)\nType=\(mount.type)\n"
                if let o = mount.options { text += "Options=\(o)\n" }
                let automount = mount.automount ?? false
                if !automount { text += "\n[Install]\nWantedBy=remote-fs.target\n" }
                plan.file("/etc/systemd/system/\(unit).mount", text, origin: origin)
                let enabled = automount ? "\(unit).automount" : "\(unit).mount"
                if automount {
                    plan.file(
                        "/etc/systemd/system/\(unit).automount",
                        context.header(origin) + "[Unit]\n" + description
                            + "\n[Automount]\nWhere=\(mount.path)\nTimeoutIdleSec=600\n\n"
                            + "[Install]\nWantedBy=remote-fs.target\n", origin: origin)
                }
                plan.symlink(
                    "/etc/systemd/system/remote-fs.target.wants/\(enabled)", to: "/etc/systemd/system/\(enabled)",
                    origin: origin)
            }
        }
    }
}
