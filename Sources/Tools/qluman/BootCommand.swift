import ArgumentParser
import Foundation
import NodeConfig
import Platform
import Transport

struct BootCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "boot", abstract: "Watch the nodes boot: every node's stage, for how long, and why it is stuck.",
        subcommands: [Status.self])

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
            if admin.json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(status), as: UTF8.self))
            } else {
                print(BootStatusText.table(status), terminator: "")
            }
            let trouble = status.nodes.contains { $0.stuck || $0.state == "failed" || $0.state == "silent" }
            if trouble { throw ExitCode(2) }
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
            out += pad(forText, 9) + pad(n.image ?? "-", 17) + pad(n.session ?? "-", 12)
            out += pad(n.progress.map { String(printf: "%.0f %%", $0 * 100) } ?? "-", 10) + pad("\(n.retries)", 9)
            out += (n.lastError ?? "") + "\n"
        }
        let order =
            BootStage.allCases.map(\.rawValue).filter { $0 != "up" } + ["up", "failed", "silent", "never", "stuck"]
        let summary = order.compactMap { k in s.counts[k].map { "\(k) \($0)" } }
        out += "\(s.nodes.count) nodes: " + (summary.isEmpty ? "none" : summary.joined(separator: ", "))
        if let start = s.waveStartedAt { out += "; wave began \(duration(s.at - start)) ago" }
        return out + "\n"
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
