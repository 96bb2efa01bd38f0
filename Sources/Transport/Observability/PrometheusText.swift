/// Renders counters in the Prometheus text exposition format (version 0.0.4).
public enum PrometheusText {
    /// Every numeric counter of a sender snapshot as `qlmcast_sender_<name>`, labelled with the
    /// session, plus drops by reason and per-receiver progress.
    public static func render(_ p: SenderProgress) -> String { render([p]) }

    /// Several sessions in one exposition: each metric family once (one `# HELP`/`# TYPE`), with
    /// a sample per session — what a scraper requires.
    public static func render(_ snapshots: [SenderProgress]) -> String {
        var order: [String] = []
        var families: [String: (type: String, help: String, samples: [(String, Double)])] = [:]
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, Double)]) {
            if families[name] == nil {
                order.append(name)
                families[name] = (type, help, [])
            }
            families[name]!.samples += samples
        }
        for p in snapshots {
            let session = "session=\"\(p.sessionID)\",object=\"\(escape(p.name))\""
            for child in Mirror(reflecting: p.counters).children {
                guard let label = child.label else { continue }
                let value: Double
                switch child.value {
                case let v as UInt64: value = Double(v)
                case let v as Int: value = Double(v)
                default: continue
                }
                metric(
                    "sender_" + snakeCase(label) + "_total", "counter", "ql-mcast sender counter \(label).",
                    [(session, value)])
            }
            metric(
                "sender_drops_total", "counter", "Datagrams the sender dropped, by reason.",
                DropReason.allCases.map { ("\(session),reason=\"\($0)\"", Double(p.counters.drops[$0])) })
            metric(
                "sender_rate_bytes_per_second", "gauge", "Pacing rate now (0: unpaced).",
                [(session, Double(p.rate.bytesPerSecond))])
            metric("sender_pass_blocks", "gauge", "Blocks sent by the first pass.", [(session, Double(p.passBlocks))])
            metric("sender_blocks", "gauge", "Blocks in the object.", [(session, Double(p.blocks))])
            metric(
                "sender_pending_repair_blocks", "gauge", "Blocks waiting for repair.",
                [(session, Double(p.pendingRepairBlocks))])
            metric(
                "receiver_blocks_complete", "gauge", "Blocks each receiver reported complete.",
                p.receivers.map {
                    ("\(session),receiver=\"\($0.id)\",state=\"\($0.state)\"", Double($0.blocksComplete))
                })
            metric(
                "receiver_loss_ratio", "gauge", "Loss each receiver reported between its last two reports.",
                p.receivers.map { ("\(session),receiver=\"\($0.id)\"", $0.recentLoss) })
        }
        var out = ""
        for name in order {
            let f = families[name]!
            out += "# HELP qlmcast_\(name) \(f.help)\n# TYPE qlmcast_\(name) \(f.type)\n"
            for (labels, v) in f.samples { out += "qlmcast_\(name){\(labels)} \(format(v))\n" }
        }
        return out
    }

    /// `camelCase` → `camel_case`, for metric names.
    public static func snakeCase(_ s: String) -> String {
        var out = ""
        for ch in s {
            if ch.isUppercase {
                out += "_" + ch.lowercased()
            } else {
                out.append(ch)
            }
        }
        return out
    }

    static func escape(_ s: String) -> String {
        s.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"").replacing("\n", with: "\\n")
    }

    static func format(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
    }
}
