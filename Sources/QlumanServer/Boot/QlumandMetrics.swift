import NodeConfig

/// qlumand's Prometheus text (version 0.0.4, `qlumand --metrics ADDR:PORT`): nodes per boot
/// state and stage, how long boots stay in each stage (histograms), and the configure and boot
/// monitor counters. Every family once, each with its HELP and TYPE.
enum QlumandMetrics {
    static func render(
        status: QlumandStatus, boot: BootStatus, durations: [BootStage: BootMonitor.Histogram],
        monitor: BootMonitor.Counters
    ) -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: Double)]) {
            out += "# HELP qlumand_\(name) \(help)\n# TYPE qlumand_\(name) \(type)\n"
            for s in samples { out += "qlumand_\(name)\(s.labels.isEmpty ? "" : "{\(s.labels)}") \(format(s.value))\n" }
        }
        var nodes: [(String, Double)] = BootStage.allCases.filter { $0 != .up }.map { stage in
            ("state=\"booting\",stage=\"\(stage.rawValue)\"", Double(boot.counts[stage.rawValue] ?? 0))
        }
        for state in ["up", "failed", "silent", "never"] {
            nodes.append(("state=\"\(state)\"", Double(boot.counts[state] ?? 0)))
        }
        family("boot_nodes", "gauge", "Registered nodes by the state of their current boot (booting: by stage).", nodes)
        family(
            "boot_nodes_stuck", "gauge", "Nodes booting in one stage longer than 60 s.",
            [("", Double(boot.counts["stuck"] ?? 0))])
        out += "# HELP qlumand_boot_stage_seconds How long boots stayed in each stage before the next.\n"
        out += "# TYPE qlumand_boot_stage_seconds histogram\n"
        for stage in BootStage.allCases where stage != .up {
            let h = durations[stage] ?? BootMonitor.Histogram()
            let label = "stage=\"\(stage.rawValue)\""
            for (i, bound) in BootMonitor.Histogram.bounds.enumerated() {
                out += "qlumand_boot_stage_seconds_bucket{\(label),le=\"\(format(bound))\"} \(h.buckets[i])\n"
            }
            out += "qlumand_boot_stage_seconds_bucket{\(label),le=\"+Inf\"} \(h.count)\n"
            out += "qlumand_boot_stage_seconds_sum{\(label)} \(format(h.sum))\n"
            out += "qlumand_boot_stage_seconds_count{\(label)} \(h.count)\n"
        }
        family("configured_total", "counter", "Configurations served to nodes.", [("", Double(status.configured))])
        family(
            "configure_refused_total", "counter", "Configure requests refused, by reason.",
            status.refused.sorted { $0.key < $1.key }.map { ("reason=\"\($0.key)\"", Double($0.value)) })
        family(
            "configure_failed_total", "counter", "Configure requests that failed on the head node.",
            [("", Double(status.failed))])
        family("boot_events_total", "counter", "Boot events taken.", [("", Double(monitor.events))])
        family("boots_started_total", "counter", "Boots begun.", [("", Double(monitor.bootsStarted))])
        family(
            "boot_events_unknown_node_total", "counter", "Events about a MAC or address no registered node has.",
            [("", Double(monitor.unknownNode))])
        family(
            "boot_store_errors_total", "counter", "Failed writes of boots to the registry.",
            [("", Double(monitor.storeErrors))])
        family("dnsmasq_log_lines_total", "counter", "dnsmasq log lines read.", [("", Double(monitor.logLines))])
        family(
            "image_server_poll_errors_total", "counter", "Failed polls of ql-mcastd's status.",
            [("", Double(monitor.imageServerErrors))])
        family("connections_total", "counter", "Connections to the TLS port.", [("", Double(status.connections))])
        family("tls_errors_total", "counter", "TLS handshakes that failed.", [("", Double(status.tlsErrors))])
        family("registered_nodes", "gauge", "Nodes in the registry.", [("", Double(status.nodes))])
        return out
    }

    static func format(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
    }
}
