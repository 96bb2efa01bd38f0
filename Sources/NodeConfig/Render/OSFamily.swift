import Foundation
import Platform

/// Which network configuration style a node's OS uses, from its `/etc/os-release`.
public enum OSFamily: String, Codable, Sendable, CaseIterable {
    /// Debian, Ubuntu: ifupdown, `/etc/network/interfaces.d`.
    case debian
    /// RHEL, CentOS, Rocky, Alma, Fedora: `/etc/sysconfig/network-scripts/ifcfg-*`.
    case redhat

    /// The family named by `ID` or `ID_LIKE` in os-release text; nil when neither is known.
    public init?(osRelease text: String) {
        var ids: [String] = []
        for line in text.split(whereSeparator: \.isNewline) {
            for key in ["ID=", "ID_LIKE="] where line.hasPrefix(key) {
                let value = line.dropFirst(key.count).trimmingCharacters(in: CharacterSet(charactersIn: "\"' "))
                ids += value.split(separator: " ").map { $0.lowercased() }
            }
        }
        if ids.contains(where: { ["debian", "ubuntu"].contains($0) }) {
            self = .debian
        } else if ids.contains(where: { ["rhel", "centos", "fedora", "rocky", "almalinux"].contains($0) }) {
            self = .redhat
        } else {
            return nil
        }
    }

    /// The family of the OS installed below `root` (its `/etc/os-release`, else `/usr/lib/os-release`).
    /// - Throws: `.configuration` when neither file names a known family.
    public static func detect(root: Root) throws(QlustarError) -> OSFamily {
        for path in ["/etc/os-release", "/usr/lib/os-release"] {
            if let bytes = try? FileSystem.readFile(root.path(path), limit: 65_536),
                let family = OSFamily(osRelease: String(decoding: bytes, as: UTF8.self))
            {
                return family
            }
        }
        throw QlustarError(
            .configuration,
            "cannot tell the OS family from \(root.path("/etc/os-release")) (need ID or ID_LIKE debian/ubuntu or rhel/centos/fedora)"
        )
    }
}

/// What the renderer needs to know of a node's image: its OS family (network files) and its
/// time daemon. execd detects them in the node's root and reports them; `qluman preview` uses
/// what the node last reported.
public struct NodeFacts: Codable, Sendable, Equatable {
    public var osFamily: OSFamily
    public var timeDaemon: TimeDaemon

    public init(osFamily: OSFamily, timeDaemon: TimeDaemon) {
        self.osFamily = osFamily
        self.timeDaemon = timeDaemon
    }

    /// A Debian node with systemd-timesyncd: what a node that never reported is assumed to be.
    public static let assumed = NodeFacts(osFamily: .debian, timeDaemon: .timesyncd)
}
