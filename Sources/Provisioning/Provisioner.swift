import Foundation
import Logging
import NodeRegistry
import Platform

#if canImport(Glibc)
    import Glibc
#endif

/// Turns the node registry into what boots the nodes (boot reference, steps 1–3 and "TFTP Boot
/// Server"): the dnsmasq configuration (DHCP for registered MACs only, TFTP), the TFTP tree, and
/// `pxelinux.cfg` — `default` plus, for each node with a custom boot configuration, a link named
/// by its Hostid. See docs/PROVISIONING.md.
///
/// Every file is written beside its target and renamed, every link made under a temporary name
/// and renamed over the old one, so dnsmasq never sees a half-written file; links of nodes no
/// longer configured are removed last.
public struct Provisioner: Sendable {
    public let root: Root
    let log: Logger
    /// Where the pxelinux loader is (Debian's pxelinux package).
    public var pxelinux = "/usr/lib/PXELINUX/pxelinux.0"
    /// The syslinux modules pxelinux 6 loads (`ldlinux.c32`).
    public var syslinuxModules = "/usr/lib/syslinux/modules/bios"
    /// The network loader of x86-64 UEFI firmware (Debian's syslinux-efi): it reads the same
    /// `pxelinux.cfg` files, Hostid links included.
    public var syslinuxEFI = "/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi"
    /// The module syslinux.efi loads (`ldlinux.e64`, Debian's syslinux-common).
    public var syslinuxEFIModules = "/usr/lib/syslinux/modules/efi64"

    public init(root: Root, log: Logger) {
        self.root = root
        self.log = log
    }

    public var tftpRoot: String { root.path("/var/lib/tftpboot") }
    public var pxelinuxConfig: String { root.path("/etc/qlustar/pxelinux.cfg") }
    /// The same files as UEFI nodes boot them (each configuration's UEFI kernel, initrd and
    /// parameters where it names any; the same Hostid links).
    public var pxelinuxConfigUEFI: String { root.path("/etc/qlustar/pxelinux.cfg.uefi") }
    public var dnsmasqDirectory: String { root.path("/etc/qlustar/dnsmasq") }
    public var dnsmasqConfig: String { dnsmasqDirectory + "/qlustar.conf" }
    public var dhcpHosts: String { dnsmasqDirectory + "/dhcp-hosts" }
    public var pidFile: String { root.path("/run/qlustar/dnsmasq.pid") }
    public var leaseFile: String { root.path("/var/lib/qlustar/dnsmasq.leases") }

    /// The Hostid of an IPv4 address: eight upper-case hex digits, as `gethostip -x` prints.
    public static func hostid(_ ip: String) -> String {
        ip.split(separator: ".").map { String(format: "%02X", Int($0) ?? 0) }.joined()
    }

    /// What `provision` did.
    public struct Report: Codable, Sendable {
        public var nodes: Int
        public var hostidLinks: [String: String]
        public var removedLinks: [String]
        public var networks: [String]
        /// Whether a running dnsmasq (pid file) was told to reload its hosts.
        public var reloaded: Bool
    }

    /// Regenerates everything from the registry.
    /// - Throws: `.io` naming the file; `.configuration` when a node's boot configuration is gone.
    public func provision(_ registry: Registry) throws(QlustarError) -> Report {
        let nodes = try registry.nodes()
        let configs = Dictionary(uniqueKeysWithValues: try registry.bootConfigs().map { ($0.name, $0) })
        let chosen = try registry.effectiveBootConfigs()
        for dir in [
            tftpRoot, tftpRoot + "/efi64", pxelinuxConfig + "/configs", pxelinuxConfigUEFI + "/configs",
            dnsmasqDirectory,
        ] {
            try FileSystem.makeDirectories(dir)
        }

        // TFTP tree: the three links of the reference (and ldlinux.c32, which pxelinux 6 loads).
        try link(tftpRoot + "/pxelinux.0", to: pxelinux)
        try link(tftpRoot + "/ldlinux.c32", to: syslinuxModules + "/ldlinux.c32")
        try link(tftpRoot + "/pxelinux.cfg", to: pxelinuxConfig)
        try link(tftpRoot + "/qlustar", to: root.path("/var/lib/qlustar"))
        // UEFI nodes: syslinux.efi takes its directory as the prefix of every path it asks for,
        // so efi64/ holds its module, its own pxelinux.cfg and the same qlustar link.
        try link(tftpRoot + "/efi64/syslinux.efi", to: syslinuxEFI)
        try link(tftpRoot + "/efi64/ldlinux.e64", to: syslinuxEFIModules + "/ldlinux.e64")
        try link(tftpRoot + "/efi64/pxelinux.cfg", to: pxelinuxConfigUEFI)
        try link(tftpRoot + "/efi64/qlustar", to: root.path("/var/lib/qlustar"))

        // Which file each node boots: its configuration, or a variant of it for its image.
        var links: [String: String] = [:]
        var variants: [String: BootConfig] = [:]
        for node in nodes {
            let name = chosen[node.name] ?? "default"
            guard let config = configs[name] else {
                if name == "default" { continue }
                throw QlustarError(.configuration, "node \(node.name) boots with '\(name)', which is not defined")
            }
            // A node registered with an image other than its configuration's boots a variant
            // of that configuration for its image.
            if let image = node.image, let variant = Self.variant(config, image: image) {
                variants[variant.name] = variant
                links[Self.hostid(node.ip)] = "configs/" + variant.name
            } else if name != "default" {
                links[Self.hostid(node.ip)] = "configs/" + name
            }
        }
        // One tree per firmware, the same files and links: configurations, default, Hostid links.
        var removed: [String] = []
        for (dir, firmware) in [(pxelinuxConfig, BootConfig.Firmware.bios), (pxelinuxConfigUEFI, .uefi)] {
            let gone = try writeTree(dir, firmware, configs: Array(configs.values) + variants.values, links: links)
            if firmware == .bios { removed = gone }
        }
        // dnsmasq: the hosts file (re-read on SIGHUP), then the main configuration.
        let hosts = nodes.map { node in (node.macs + [node.ip, node.name]).joined(separator: ",") + "\n" }.joined()
        try FileSystem.writeAtomically(
            dhcpHosts, Array(("# generated by qluman provision: registered nodes only\n" + hosts).utf8))
        let networks = Set(nodes.map { Self.network($0.ip, $0.prefix) }).sorted()
        let config = dnsmasqText(networks: networks, nodes: nodes.count)
        let previous = try? FileSystem.readFile(dnsmasqConfig, limit: 1 << 20)
        try FileSystem.writeAtomically(dnsmasqConfig, Array(config.utf8))
        let reloaded = signalDnsmasq()
        if reloaded, let previous, previous != Array(config.utf8) {
            // SIGHUP re-reads the hosts file only: limits and networks take a restart.
            log.warning(
                "\(dnsmasqConfig) changed (networks or limits for \(nodes.count) nodes): restart dnsmasq to apply it")
        }
        log.info(
            "provisioned \(nodes.count) nodes: \(links.count) custom boot links, \(removed.count) removed, networks \(networks.joined(separator: " "))\(reloaded ? ", dnsmasq reloaded" : "")"
        )
        return Report(
            nodes: nodes.count, hostidLinks: links, removedLinks: removed.sorted(), networks: networks,
            reloaded: reloaded)
    }

    /// Writes one firmware's pxelinux.cfg tree: every configuration (and variant) in `configs/`,
    /// `default`, the Hostid links; then removes Hostid links and variants nothing uses any more.
    /// - Returns: The Hostid links removed.
    private func writeTree(
        _ dir: String, _ firmware: BootConfig.Firmware, configs: [BootConfig], links: [String: String]
    )
        throws(QlustarError) -> [String]
    {
        for config in configs {
            try FileSystem.writeAtomically(
                dir + "/configs/" + config.name, Array(Self.pxelinuxFile(config, firmware).utf8))
        }
        let fallback = configs.first { $0.name == "default" }.map { Self.pxelinuxFile($0, firmware) } ?? Self.noDefault
        try FileSystem.writeAtomically(dir + "/default", Array(fallback.utf8))
        let written = Set(configs.map(\.name))
        // Variants no node boots any more go after every link is in place.
        let staleVariants = ((try? FileSystem.list(dir + "/configs")) ?? []).filter {
            $0.contains("@") && !$0.contains(".tmp.") && !written.contains($0)
        }
        for (hostid, target) in links { try link(dir + "/" + hostid, to: target) }
        var removed: [String] = []
        for entry in (try? FileSystem.list(dir)) ?? [] where Self.isHostid(entry) && links[entry] == nil {
            FileSystem.remove(dir + "/" + entry)
            removed.append(entry)
        }
        for name in staleVariants { FileSystem.remove(dir + "/configs/" + name) }
        return removed
    }

    /// Checks that the kernel and initrd `nodes` will boot (their configuration, or its variant
    /// for their image) are below the TFTP root.
    /// - Throws: `.notFound` naming the first missing file and the nodes that need it.
    public func checkPublished(_ nodes: [Node], registry: Registry) throws(QlustarError) {
        let configs = Dictionary(uniqueKeysWithValues: try registry.bootConfigs().map { ($0.name, $0) })
        let chosen = try registry.effectiveBootConfigs()
        var needed: [String: [String]] = [:]
        for node in nodes {
            let name = chosen[node.name] ?? "default"
            guard let config = configs[name] else {
                throw QlustarError(
                    .notFound, "node \(node.name) boots with '\(name)', which is not defined (qluman boot-config add)")
            }
            let booted = node.image.flatMap { Self.variant(config, image: $0) } ?? config
            for firmware in BootConfig.Firmware.allCases {
                let b = booted.boot(firmware)
                for path in Set([b.kernel, b.initrd]) { needed[path, default: []].append(node.name) }
            }
        }
        for (path, users) in needed.sorted(by: { $0.key < $1.key }) {
            let users = Array(Set(users))
            // qlustar/… is the link to /var/lib/qlustar that `provision` makes.
            let file =
                path.hasPrefix("qlustar/")
                ? root.path("/var/lib/qlustar/" + path.dropFirst("qlustar/".count)) : tftpRoot + "/" + path
            guard FileSystem.exists(file) else {
                throw QlustarError(
                    .notFound,
                    "\(path) is not published below the TFTP root (\(Hostlist.fold(users)) would boot it): build or "
                        + "publish the image first (qlustar-image build IMAGE)")
            }
        }
    }

    /// `config` as a node registered with `image` boots it (`qluman node add --image`, `qluman
    /// boot set --image`): named `CONFIG@IMAGE`, its `ql.image=` set to `image`, and its kernel and
    /// initrd, when they are its own image's as the image tooling publishes them
    /// (`…/X.vmlinuz`, `…/X.initrd` for `ql.image=X`), the new image's. nil when `config`
    /// boots `image` already.
    public static func variant(_ config: BootConfig, image: String) -> BootConfig? {
        let current = config.append.split(separator: " ").first { $0.hasPrefix("ql.image=") }
            .map { String($0.dropFirst("ql.image=".count)) }
        guard current != image else { return nil }
        // ql.image= set to `image` (added when absent), the other parameters as they are.
        func appended(_ append: String) -> String {
            var words = append.split(separator: " ").map(String.init)
            if let i = words.firstIndex(where: { $0.hasPrefix("ql.image=") }) {
                words[i] = "ql.image=" + image
            } else {
                words.append("ql.image=" + image)
            }
            return words.joined(separator: " ")
        }
        func swapped(_ path: String, _ suffix: String) -> String {
            guard let current, path == current + suffix || path.hasSuffix("/" + current + suffix) else { return path }
            return String(path.dropLast(current.count + suffix.count)) + image + suffix
        }
        return BootConfig(
            name: config.name + "@" + image, kernel: swapped(config.kernel, ".vmlinuz"),
            initrd: swapped(config.initrd, ".initrd"), append: appended(config.append),
            uefiKernel: config.uefiKernel.map { swapped($0, ".vmlinuz") },
            uefiInitrd: config.uefiInitrd.map { swapped($0, ".initrd") }, uefiAppend: config.uefiAppend.map(appended))
    }

    /// A pxelinux configuration: serial console, no prompt, one label; `IPAPPEND 2` adds
    /// `BOOTIF=01-MAC` so `/init` brings up the NIC the node booted from.
    public static func pxelinuxFile(_ c: BootConfig, _ firmware: BootConfig.Firmware = .bios) -> String {
        let b = c.boot(firmware)
        return """
            # generated by qluman provision: boot configuration '\(c.name)'\(firmware == .uefi ? " (UEFI)" : "")
            SERIAL 0 115200
            DEFAULT qlustar
            PROMPT 0
            TIMEOUT 0
            LABEL qlustar
              KERNEL \(b.kernel)
              INITRD \(b.initrd)
              APPEND console=ttyS0,115200 \(b.append)
              IPAPPEND 2

            """
    }

    static let noDefault = """
        # generated by qluman provision: no boot configuration named 'default' is defined
        # (qluman boot-config add default --kernel … --initrd … --append …); boot from disk.
        SERIAL 0 115200
        DEFAULT local
        PROMPT 0
        TIMEOUT 0
        LABEL local
          LOCALBOOT 0

        """

    /// dnsmasq's limits for `nodes` registered nodes that may all boot at once: dnsmasq serves
    /// 50 TFTP transfers at a time by default and holds 1,000 leases. A node fetches its files
    /// in turn, but a client that times out (pxelinux's first timeout is ~110 ms) sends its
    /// request again, and dnsmasq starts a second transfer for it that lives until its own
    /// retries give up (~30 s); at the limit dnsmasq stops answering requests at all. A 100-node
    /// wave on the test hosts made 654 transfers for 500 files (`ql-bench boot`, docs/SCALE.md)
    /// and stalled at 2 per node — so ten per node, never under the defaults.
    static func limits(nodes: Int) -> (tftpMax: Int, leaseMax: Int) {
        (max(50, 10 * nodes), max(1000, 2 * nodes))
    }

    func dnsmasqText(networks: [String], nodes: Int) -> String {
        let limits = Self.limits(nodes: nodes)
        var text = """
            # generated by qluman provision from the node registry; do not edit.
            # DHCP and TFTP only (no DNS); DHCP answers registered MACs only.
            # Sized for \(nodes) registered nodes booting at once (TFTP 10 per node: retried requests
            # become transfers of their own; leases 2 per node; at least dnsmasq's defaults).
            # dnsmasq reads this at start: restart it when these change.
            tftp-max=\(limits.tftpMax)
            dhcp-lease-max=\(limits.leaseMax)
            port=0
            bind-dynamic
            dhcp-hostsfile=\(dhcpHosts)
            dhcp-leasefile=\(leaseFile)
            dhcp-ignore=tag:!known
            # The network loader by the firmware's architecture (DHCP option 93, RFC 4578):
            # x86-64 UEFI (7, 9) loads efi64/syslinux.efi, legacy BIOS (0) pxelinux.0; both read
            # pxelinux.cfg files made from the same boot configurations, with the same Hostid links.
            dhcp-match=set:efi-x86_64,option:client-arch,7
            dhcp-match=set:efi-x86_64,option:client-arch,9
            dhcp-boot=tag:efi-x86_64,efi64/syslinux.efi
            dhcp-boot=tag:!efi-x86_64,pxelinux.0
            enable-tftp
            tftp-root=\(tftpRoot)
            # One port for every transfer: a client's repeated request (its timeout is ~110 ms, a
            # mass boot exceeds it) then restarts its transfer instead of starting a second one.
            tftp-single-port
            dhcp-authoritative
            log-dhcp

            """
        for net in networks {
            let parts = net.split(separator: "/")
            text += "dhcp-range=\(parts[0]),static,\(Self.netmask(Int(parts[1])!)),12h\n"
        }
        return text
    }

    static func network(_ ip: String, _ prefix: Int) -> String {
        let value = ip.split(separator: ".").reduce(UInt32(0)) { $0 << 8 | UInt32($1)! }
        let net = value & ~(UInt32.max >> UInt32(prefix))
        return "\(net >> 24).\(net >> 16 & 255).\(net >> 8 & 255).\(net & 255)/\(prefix)"
    }

    static func netmask(_ prefix: Int) -> String {
        let m = ~(UInt32.max >> UInt32(prefix))
        return "\(m >> 24).\(m >> 16 & 255).\(m >> 8 & 255).\(m & 255)"
    }

    static func isHostid(_ name: String) -> Bool {
        name.count == 8 && name.allSatisfy { $0.isHexDigit && !$0.isLowercase }
    }

    /// Makes `path` a symbolic link to `target`, replacing what is there in one rename.
    func link(_ path: String, to target: String) throws(QlustarError) {
        if let current = try? FileSystem.linkTarget(path), current == target { return }
        let temporary = path + ".tmp.\(getpid())"
        FileSystem.remove(temporary)
        try FileSystem.makeSymlink(temporary, to: target)
        do { try FileSystem.rename(temporary, to: path) } catch {
            FileSystem.remove(temporary)
            throw error
        }
    }

    /// SIGHUP to the dnsmasq of the pid file: it re-reads the hosts file.
    func signalDnsmasq() -> Bool {
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
            let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 1
        else { return false }
        return (try? Posix.kill(pid, SIGHUP)) != nil
    }
}
