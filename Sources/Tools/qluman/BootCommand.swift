import ArgumentParser
import Foundation
import Logging
import NodeConfig
import NodeRegistry
import Platform
import Provisioning
import Transport

struct BootCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "boot",
        abstract: "Watch the nodes boot (status, watch) and choose what they boot next (set).",
        subcommands: [Status.self, Watch.self, Set.self])

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Choose the next boot of nodes: image and/or boot configuration, registry and PXE files at once.",
            discussion: HelpText.paragraphs(
                """
                Changes the nodes' registry entries in one transaction, then regenerates the provisioning
                files as 'qluman provision' does (each replaced in one rename; dnsmasq re-reads its hosts on
                SIGHUP). A node whose image differs from its boot configuration's ql.image= boots a variant
                of that configuration (pxelinux.cfg/configs/CONFIG@IMAGE: ql.image, kernel and initrd of the
                image). When the image's kernel or initrd is not published, or provisioning fails, the
                registry is put back as it was and nothing changes.

                  qluman boot set 'beo-[001-010]' --image compute-2
                  qluman boot set beo-007 --boot-config debug
                  qluman boot set beo-007 --boot-config none    the group's (else default)
                """))
        @OptionGroup var common: Common
        @Argument(help: "The nodes (a hostlist).") var hosts: String
        @Option(help: "Image the nodes boot next.") var image: String?
        @Option(help: "Boot configuration ('none': the group's, else default).") var bootConfig: String?

        func validate() throws {
            guard image != nil || bootConfig != nil else {
                throw ValidationError("give --image, --boot-config or both")
            }
        }

        func run() throws {
            let root = Root(common.root)
            let registry = try common.registry()
            let names = try Hostlist.expand(hosts)
            let before = try registry.nodes(named: names)
            let changed = try registry.setNodes(
                names, image: image.map { .some($0) }, bootConfig: bootConfig.map { $0 == "none" ? nil : $0 })
            let provisioner = Provisioner(root: root, log: Logger(root: root, name: "qluman", echo: false))
            let report: Provisioner.Report
            do {
                try provisioner.checkPublished(changed, registry: registry)
                report = try provisioner.provision(registry)
            } catch {
                for (key, nodes) in Dictionary(grouping: before, by: { [$0.image, $0.bootConfig] }) {
                    _ = try? registry.setNodes(
                        nodes.map(\.name), image: .some(key[0]), bootConfig: .some(key[1]))
                }
                throw error
            }
            struct Reply: Encodable {
                var nodes: String
                var image: String?
                var bootConfig: String?
                var links: [String: String]
                var reloaded: Bool
            }
            let hostids = Swift.Set(changed.map { Provisioner.hostid($0.ip) })
            let reply = Reply(
                nodes: Hostlist.fold(changed.map(\.name)), image: image, bootConfig: bootConfig,
                links: report.hostidLinks.filter { hostids.contains($0.key) }, reloaded: report.reloaded)
            try common.print(reply) {
                let what = [image.map { "image \($0)" }, bootConfig.map { "boot configuration \($0)" }]
                    .compactMap { $0 }.joined(separator: ", ")
                return "next boot of \(reply.nodes): \(what); provisioned \(report.nodes) nodes"
                    + (report.reloaded ? ", dnsmasq reloaded" : " (no dnsmasq running to reload)") + "\n"
            }
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One line per node: stage, time in it, image, session, progress, retries, last error.",
            discussion: HelpText.paragraphs(
                """
                qlumand follows each node's boot from what the head node sees: dnsmasq's log
                (the firmware's DHCP, TFTP of pxelinux, kernel and initrd, the initrd's own DHCP),
                ql-mcastd (the image session, progress, verified) and the node's qluman-execd
                (configure, init.d, and up when its daemon connects). Stages in order: dhcp,
                tftp, initrd, image, verified, configure, initd, system, up.

                A node in one stage longer than --stuck seconds is flagged (STUCK). A registered
                node that has shown no sign of life since the current wave began (its first boot
                start, and every start within 30 minutes of the newest) is "silent": powered off,
                DHCP not reaching the head node, or booting from elsewhere.

                  qluman boot status                    every registered node
                  qluman boot status 'beo-[001-100]'    a hostlist (Slurm syntax)
                  qluman boot status --json             for scripts

                Exit status: 0 when no listed node is failed, stuck or silent; 2 when one is;
                1 when qlumand cannot be asked.
                """))

        @OptionGroup var admin: AdminSocket
        @Argument(help: "Nodes, as a hostlist (beo-[001-100,105]; default: every registered node).") var hostlist:
            String?
        @Option(help: "Seconds in one stage after which a node is flagged stuck.") var stuck = 60.0

        func validate() throws {
            guard stuck > 0, stuck < 1e9 else { throw ValidationError("--stuck must be a positive number of seconds") }
            if let hostlist { _ = try Hostlist.expand(hostlist) }
        }

        func run() throws {
            let nodes = try hostlist.map { h throws(QlustarError) in try Hostlist.expand(h) }
            let status = try admin.connect().call(
                QlumanOperation.bootStatus, BootStatusRequest(nodes: nodes, stuckSeconds: stuck), as: BootStatus.self)
            try JSONOutput.print(status, json: admin.json) { BootStatusText.table(status) }
            let trouble = status.nodes.contains { $0.stuck || $0.state == "failed" || $0.state == "silent" }
            if trouble { throw ExitCode(2) }
        }
    }
}

extension BootCommand {
    struct Watch: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The same as status, live: redrawn in place every second until every node is up or failed.",
            discussion: HelpText.paragraphs(
                """
                On a terminal the table is redrawn in place (like top); otherwise one line is
                printed per change of a node's state or stage ("12:01:03 beo-007 tftp -> initrd
                after 4 s"), for logs and scripts. Ends when every listed node is up or failed,
                after --timeout seconds (exit status 2 if some are not), or on Ctrl-C.

                  qluman boot watch 'beo-[001-100]'
                """))

        @OptionGroup var admin: AdminSocket
        @Argument(help: "Nodes, as a hostlist (default: every registered node).") var hostlist: String?
        @Option(help: "Seconds in one stage after which a node is flagged stuck.") var stuck = 60.0
        @Option(help: "Give up after this many seconds (0: never).") var timeout = 0.0
        @Option(help: "Seconds between updates.") var interval = 1.0

        func validate() throws {
            guard stuck > 0, stuck < 1e9 else { throw ValidationError("--stuck must be a positive number of seconds") }
            guard timeout >= 0, timeout < 1e9 else { throw ValidationError("--timeout must be 0 or more seconds") }
            guard interval >= 0.1, interval <= 3_600 else { throw ValidationError("--interval must be 0.1…3600 s") }
            if let hostlist { _ = try Hostlist.expand(hostlist) }
        }

        func run() throws {
            let nodes = try hostlist.map { h throws(QlustarError) in try Hostlist.expand(h) }
            let terminal = isatty(STDOUT_FILENO) == 1
            let started = Date()
            var last: [String: String] = [:]
            while true {
                let status = try admin.connect().call(
                    QlumanOperation.bootStatus, BootStatusRequest(nodes: nodes, stuckSeconds: stuck),
                    as: BootStatus.self)
                let done = status.nodes.allSatisfy { $0.state == "up" || $0.state == "failed" }
                if terminal {
                    // Home, clear, the table: one screen, redrawn.
                    print("\u{1B}[H\u{1B}[2J" + BootStatusText.table(status), terminator: "")
                } else {
                    for line in BootStatusText.changes(status, since: &last) { print(line) }
                }
                fflush(nil)  // every stream: the update shows now, also through a pipe
                if done {
                    if !terminal { print(BootStatusText.summary(status)) }
                    if status.nodes.contains(where: { $0.state == "failed" }) { throw ExitCode(2) }
                    return
                }
                if timeout > 0, Date().timeIntervalSince(started) >= timeout {
                    print(BootStatusText.summary(status) + " (gave up after \(Int(timeout)) s)")
                    throw ExitCode(2)
                }
                usleep(UInt32(interval * 1e6))
            }
        }
    }
}

/// How `qluman boot status` prints: a line per node, then the counts.
enum BootStatusText {
    static func table(_ s: BootStatus) -> String {
        var out =
            "NODE              STATE    STAGE      FOR      IMAGE            SESSION     PROGRESS  RETRIES  LAST ERROR\n"
        for n in s.nodes {
            let forText = n.seconds.map { duration($0) } ?? "-"
            let stage = n.stage?.rawValue ?? "-"
            out += pad(n.node, 18) + pad(n.stuck ? "STUCK" : n.state, 9) + pad(n.state == "silent" ? "-" : stage, 11)
            let image = n.image.map { i in n.imageVersion.map { i + "@" + $0.prefix(8) } ?? i } ?? "-"
            out += pad(forText, 9) + pad(image, 17) + pad(n.session ?? "-", 12)
            out += pad(n.progress.map { String(printf: "%.0f %%", $0 * 100) } ?? "-", 10) + pad("\(n.retries)", 9)
            // The first line: a client's failure carries its last log lines below it (--json has all).
            out += (n.lastError.map { String($0.prefix { $0 != "\n" }) } ?? "") + "\n"
        }
        return out + summary(s) + "\n"
    }

    /// "100 nodes: image 3, up 96, failed 1; wave began 75 s ago"
    static func summary(_ s: BootStatus) -> String {
        let order =
            BootStage.allCases.map(\.rawValue).filter { $0 != "up" } + ["up", "failed", "silent", "never", "stuck"]
        let counts = order.compactMap { k in s.counts[k].map { "\(k) \($0)" } }
        var out = "\(s.nodes.count) nodes: " + (counts.isEmpty ? "none" : counts.joined(separator: ", "))
        if let start = s.waveStartedAt { out += "; wave began \(duration(s.at - start)) ago" }
        return out
    }

    /// One line per node whose state or stage changed since `last` (updated), stamped with the
    /// time: what `qluman boot watch` prints when its output is not a terminal.
    static func changes(_ s: BootStatus, since last: inout [String: String]) -> [String] {
        var t = time_t(s.at)
        var parts = tm()
        localtime_r(&t, &parts)
        let clock = String(printf: "%02d:%02d:%02d", parts.tm_hour, parts.tm_min, parts.tm_sec)
        var lines: [String] = []
        for n in s.nodes {
            let now = n.state == "booting" ? (n.stage?.rawValue ?? "?") : n.state
            let flag = n.stuck ? " STUCK" : ""
            let key = now + flag
            guard last[n.node] != key else { continue }
            let before = last[n.node].map { $0 + " -> " } ?? ""
            var line = "\(clock) \(n.node) \(before)\(now)\(flag)"
            if let e = n.lastError, n.state == "failed" || n.stuck { line += ": " + String(e.prefix { $0 != "\n" }) }
            lines.append(line)
            last[n.node] = key
        }
        return lines
    }

    static func duration(_ seconds: Double) -> String {
        seconds < 120
            ? String(printf: "%.0f s", seconds)
            : seconds < 7_200 ? "\(Int(seconds / 60)) min" : "\(Int(seconds / 3_600)) h"
    }

    static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
    }
}
