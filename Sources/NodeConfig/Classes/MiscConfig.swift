import Platform

/// The miscellaneous config class: mail transport and the slurm-job ssh restriction.
public struct MiscConfig: Codable, Sendable, Equatable {
    /// Relay host for outgoing mail (mail transport on when set).
    public var mailRelay: String?
    /// Only users with a running slurm job on the node may log in by ssh (pam).
    public var sshSlurmOnly: Bool?

    public func validate() throws(QlustarError) {
        if let r = mailRelay { _ = try FieldCheck.line(r, "misc.mailRelay", limit: 253, allowSpaces: false) }
    }
}

extension ConfigClass {
    public static let misc = ConfigClass(declaring: "misc")
}

extension MiscConfig: NodeConfigClass {
    public static var kind: ConfigClass { .misc }
    public static var optionsKey: String? { "misc" }
    public static var example: String { #"{"mailRelay":"head","sshSlurmOnly":true}"# }

    /// `options.d/misc`; with `sshSlurmOnly`, the pam check that lets in only users with a job.
    public static func render(
        _ configs: [NodeOptions.Named<Self>], into plan: inout FilePlan, _ context: inout RenderContext
    ) {
        guard let misc = configs.last?.config else { return }
        let source = context.source(kind)
        context.optionsFile("misc", of: kind, into: &plan) { o in
            o.set("QLUMAN_MAIL_RELAY", misc.mailRelay ?? "")
            o.set("QLUMAN_SSH_SLURM_ONLY", misc.sshSlurmOnly ?? false)
        }
        if misc.sshSlurmOnly == true {
            plan.file(
                PamRules.slurmJobCheck, "#!/bin/sh\n" + context.header(source) + PamRules.slurmJobCheckText,
                mode: 0o755, origin: source)
            plan.edit(
                "/etc/pam.d/sshd", key: PamRules.slurmAccountLine, line: PamRules.slurmAccountLine, origin: source)
        }
    }
}
