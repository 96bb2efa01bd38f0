import Foundation
import ImageService
import Platform
import Transport

/// How `ql-mcastd status` prints a server's state.
enum StatusText {
    static func table(_ s: ServerStatus) -> String {
        let c = s.counters
        var out =
            "ql-mcastd up \(f(s.uptimeSeconds, 0)) s, \(s.images.count) images (\(s.images.joined(separator: ", ")))\n"
        out +=
            "  requests \(c.requests), sessions started \(c.sessionsStarted) finished \(c.sessionsFinished) aborted \(c.sessionsAborted), "
        out +=
            "late joins \(c.lateJoins), started early \(c.sessionsStartedEarly), unicast tickets \(c.unicastTickets), fetches \(c.fetches) (\(c.fetchedBytes) bytes)\n"
        out +=
            "  refused at limit \(c.refusedAtLimit), bad requests \(c.badRequests), unknown images \(c.unknownImages), "
        out +=
            "control connections \(c.controlConnections) (framing errors \(c.controlFramingErrors), TLS errors \(c.controlTLSErrors), idle closed \(c.controlIdleTimeouts), refused \(c.controlRefused), of them per host \(c.controlRefusedPerHost), incomplete frames \(c.controlIncompleteFrames), unread answers \(c.controlUnreadAnswers))\n"
        out +=
            "  not served (registry): not registered \(c.refusedNotRegistered), MAC mismatch \(c.refusedMACMismatch), token \(c.refusedToken)\n"
        out +=
            "  the other head: file ranges \(c.peerFileFetches) (\(c.peerFileBytes) bytes), refused without its token \(c.peerRefusals), versions held back \(c.heldBack)\n"
        out += "  limits: \(s.limits.maxSessions) sessions, \(s.limits.maxClients) clients, rate \(s.limits.rate)\n"
        if let p = s.peer {
            let heard = p.heardSecondsAgo.map { "heard \(f($0, 1)) s ago" } ?? "not heard yet"
            let images = p.images.keys.sorted().map { "\($0) \(p.images[$0, default: ""].prefix(12))…" }
            out +=
                "  the other head \(p.address): \(heard), images \(images.isEmpty ? "none" : images.joined(separator: ", "))\(p.holdBack ? "; versions it lacks held back" : "")\n"
        }
        if s.sessions.isEmpty { out += "no sessions\n" }
        for session in s.sessions {
            out += "session \(session.sessionID)  \(session.image)  \(session.group)  \(session.state.rawValue)  "
            out += "\(session.members.count)\(session.expected.map { " of \($0) expected" } ?? "") members  "
            out += "age \(f(session.ageSeconds, 1)) s\(session.startReason.map { "  started: \($0)" } ?? "")\n"
            if let p = session.progress {
                let pc = p.counters
                out +=
                    "  pass \(p.passBlocks)/\(p.blocks) blocks\(pc.passExtensions > 0 ? " (turn \(pc.passes) for \(pc.passExtensions) late joins, \(pc.carouselBlocks) blocks again)" : ""), rate \(p.rate), parity \(f(p.proactiveParity * 100, 1)) %, "
                out += "sent \(pc.datagramsSent) (repair \(pc.repairSymbols)), NAKs \(pc.naksReceived), "
                out += "\(f(Double(pc.wireBytes) / 1e6 / max(p.elapsedSeconds, 1e-3), 1)) MB/s"
                // The head's own link slower than the pace (sends waited for), forged or real ICMP.
                if pc.localDrops > 0 { out += ", \(pc.localDrops) sends waited for the link" }
                if pc.reportedErrors > 0 { out += ", \(pc.reportedErrors) ICMP errors ignored" }
                out += "\n"
            }
            if let outcome = session.outcome { out += "  \(outcome)\n" }
            let records = Dictionary(uniqueKeysWithValues: (session.progress?.receivers ?? []).map { ($0.id, $0) })
            for m in session.members {
                out += "    \(m.host) (\(m.address)) id \(m.receiverID)\(m.lateJoin ? " late" : "")"
                if let r = records[m.receiverID] {
                    out +=
                        "  \(r.state)  blocks \(r.blocksComplete)/\(session.progress?.blocks ?? 0)  loss \(f(r.recentLoss * 100, 1)) %"
                }
                out += "\n"
            }
        }
        return out
    }

    static func f(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }
}
