import Foundation
import Logging
import Platform
import Transport

/// Tells qlumand's boot monitor how this node's boot goes (`boot-report`): configure begun,
/// configured, init.d done, or a failure with its reason. Best effort and quick: a report that
/// cannot be delivered within a few seconds is logged and dropped — it must never hold up or fail
/// the boot it describes.
public struct BootReporter: Sendable {
    let settings: ConfigureRun.Settings
    let log: Logger

    public init(settings: ConfigureRun.Settings, log: Logger) {
        self.settings = settings
        self.log = log
    }

    /// Sends one report (two tries, each to the first head that answers).
    public func report(_ stage: BootStage, _ what: String, failed: Bool = false) {
        let request = BootReportRequest(
            credentials: NodeCredentials(macs: settings.macs, token: settings.token), stage: stage, what: what,
            failed: failed)
        var last = ""
        for attempt in 0..<2 {
            do throws(ControlFailure) {
                let client = try settings.connect(timeout: 2).client
                defer { client.close() }
                _ = try client.call(QlumanOperation.bootReport, request, as: [String: String].self, timeout: 2)
                return
            } catch {
                last = error.message
                // Refused (not this node, a wrong token): trying again cannot help.
                if error.code == .refused { break }
                if attempt == 0 { usleep(UInt32.random(in: 200_000...600_000)) }
            }
        }
        log.notice("boot report (\(stage.rawValue): \(what)) not delivered: \(last)")
    }
}
