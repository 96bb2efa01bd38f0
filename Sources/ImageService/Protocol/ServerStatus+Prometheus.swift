import FoundationEssentials
import Platform
import Transport

extension ServerStatus {
    /// The daemon's counters, sessions by state, and every running session's sender snapshot, in
    /// the Prometheus text exposition format (0.0.4): what `ql-mcastd status --prometheus` prints
    /// and the `--metrics` HTTP endpoint serves.
    public func prometheusText() -> String {
        var out = ""
        for child in Mirror(reflecting: counters).children {
            guard let label = child.label, let v = child.value as? UInt64 else { continue }
            let name = "qlmcastd_" + PrometheusText.snakeCase(label) + "_total"
            out += "# TYPE \(name) counter\n\(name) \(v)\n"
        }
        out += "# TYPE qlmcastd_sessions gauge\n"
        for state in [SessionStatus.State.gathering, .running, .finished] {
            out += "qlmcastd_sessions{state=\"\(state.rawValue)\"} \(sessions.filter { $0.state == state }.count)\n"
        }
        out += "# TYPE qlmcastd_session_members gauge\n"
        for s in sessions where s.state != .finished {
            out += "qlmcastd_session_members{session=\"\(s.sessionID)\",image=\"\(s.image)\"} \(s.members.count)\n"
        }
        out += PrometheusText.render(sessions.filter { $0.state == .running }.compactMap(\.progress))
        return out
    }
}
