/// What the directory-service and login config classes add to a node: sssd.conf, and the pam
/// lines (as `FilePlan.LineEdit`s, so configure run twice adds each once).
enum PamRules {
    /// Allows root, and users with a running slurm job on this node (`squeue`); anyone else is refused.
    static let slurmJobCheck = "/usr/lib/qlustar/pam-slurm-job"
    static let slurmJobCheckText = #"""
        # ssh only for root and users with a running slurm job on this node (pam_exec, account).
        [ "$PAM_USER" = root ] && exit 0
        command -v squeue >/dev/null 2>&1 || exit 1
        [ -n "$(squeue -h -t R -w "$(hostname -s)" -u "$PAM_USER" -o %i 2>/dev/null)" ]

        """#
    static let slurmAccountLine = "account required pam_exec.so quiet \(slurmJobCheck)"

    static let mkhomedirKey = "session optional pam_mkhomedir.so"
    static let mkhomedirLine = "session optional pam_mkhomedir.so skel=/etc/skel umask=0077"

    static func sssdConf(_ c: SSSDConfig) -> String {
        var out =
            "[sssd]\nconfig_file_version = 2\nservices = nss, pam\ndomains = \(c.domains.map(\.name).joined(separator: ", "))\n"
        for d in c.domains {
            out += "\n[domain/\(d.name)]\n"
            switch d.provider {
            case .ldap:
                out += "id_provider = ldap\nauth_provider = ldap\nchpass_provider = ldap\n"
                out +=
                    "ldap_uri = \((d.uris ?? []).joined(separator: ", "))\nldap_search_base = \(d.searchBase ?? "")\n"
                if let ca = d.caCertificate { out += "ldap_tls_cacert = \(ca)\n" }
                if let f = d.accessFilter { out += "access_provider = ldap\nldap_access_filter = \(f)\n" }
            case .ad:
                out += "id_provider = ad\nauth_provider = ad\nad_domain = \(d.adDomain ?? "")\n"
                if let f = d.accessFilter { out += "access_provider = ad\nad_access_filter = \(f)\n" }
            }
            out += "cache_credentials = true\nenumerate = false\n"
        }
        return out
    }
}
