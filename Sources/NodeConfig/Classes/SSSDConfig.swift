import Platform

/// The sssd config class: LDAP or Active Directory domains the node resolves users and groups
/// from and authenticates against, with access filters; written as `/etc/sssd/sssd.conf`
/// (mode 0600) and `sss` added to the nsswitch entries.
public struct SSSDConfig: Codable, Sendable, Equatable {
    public enum Provider: String, Codable, Sendable { case ldap, ad }

    public struct Domain: Codable, Sendable, Equatable {
        public var name: String
        public var provider: Provider
        /// LDAP: the servers (`ldap://` or `ldaps://`).
        public var uris: [String]?
        /// LDAP: the search base (`dc=example,dc=com`).
        public var searchBase: String?
        /// AD: the domain (`example.com`).
        public var adDomain: String?
        /// Who may log in: an LDAP filter (`(memberOf=cn=hpc,ou=groups,dc=example,dc=com)`).
        public var accessFilter: String?
        /// LDAP over TLS: the CA certificate on the node.
        public var caCertificate: String?
    }

    public var domains: [Domain]
    /// Create home directories at first login (pam_mkhomedir).
    public var createHomes: Bool?

    public func validate() throws(QlustarError) {
        guard !domains.isEmpty else { throw FieldCheck.fail("sssd", "needs at least one domain") }
        for (i, d) in domains.enumerated() {
            let what = "domains[\(i)]"
            guard
                d.name.utf8.allSatisfy({
                    ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2E
                        || $0 == 0x2D || $0 == 0x5F
                }),
                (1...64).contains(d.name.utf8.count)
            else {
                throw FieldCheck.fail(
                    what + ".name", "\(ImageName.quoted(d.name)) must be 1–64 letters, digits, '.', '-', '_'")
            }
            switch d.provider {
            case .ldap:
                guard let uris = d.uris, !uris.isEmpty else { throw FieldCheck.fail(what, "an ldap domain needs uris") }
                for u in uris {
                    _ = try FieldCheck.line(u, what + ".uris", limit: 512, allowSpaces: false)
                    guard u.hasPrefix("ldap://") || u.hasPrefix("ldaps://"), !u.contains(",") else {
                        throw FieldCheck.fail(
                            what + ".uris", "\(ImageName.quoted(u)) is not an ldap:// or ldaps:// URI")
                    }
                }
                guard let base = d.searchBase else { throw FieldCheck.fail(what, "an ldap domain needs a searchBase") }
                _ = try FieldCheck.line(base, what + ".searchBase", limit: 512)
            case .ad:
                guard let ad = d.adDomain else { throw FieldCheck.fail(what, "an ad domain needs adDomain") }
                _ = try FieldCheck.line(ad, what + ".adDomain", limit: 253, allowSpaces: false)
            }
            if let f = d.accessFilter {
                _ = try FieldCheck.line(f, what + ".accessFilter", limit: 2_048)
                var depth = 0
                for c in f {
                    if c == "(" { depth += 1 }
                    if c == ")" { depth -= 1 }
                    if depth < 0 { break }
                }
                guard f.hasPrefix("("), depth == 0 else {
                    throw FieldCheck.fail(what + ".accessFilter", "an LDAP filter in balanced parentheses")
                }
            }
            if let c = d.caCertificate { _ = try FieldCheck.absolutePath(c, what + ".caCertificate") }
        }
        guard Set(domains.map(\.name)).count == domains.count else {
            throw FieldCheck.fail("sssd", "a domain is listed twice")
        }
    }
}

extension ConfigClass {
    public static let sssd = ConfigClass(declaring: "sssd")
}

extension SSSDConfig: NodeConfigClass {
    public static var kind: ConfigClass { .sssd }
    public static var optionsKey: String? { "sssd" }
    public static var example: String {
        #"{"domains":[{"name":"example","provider":"ldap","uris":["ldaps://ldap.example.com"],"searchBase":"dc=example,dc=com","accessFilter":"(memberOf=cn=hpc,ou=groups,dc=example,dc=com)"}],"createHomes":true}"#
    }

    /// `/etc/sssd/sssd.conf` (0600), pam_mkhomedir when asked, and `sss` for nsswitch.conf.
    public static func render(
        _ configs: [NodeOptions.Named<Self>], into plan: inout FilePlan, _ context: inout RenderContext
    ) {
        guard let sssd = configs.last?.config else { return }
        let source = context.source(kind)
        plan.file("/etc/sssd/sssd.conf", context.header(source) + PamRules.sssdConf(sssd), mode: 0o600, origin: source)
        if sssd.createHomes == true {
            plan.edit(
                "/etc/pam.d/common-session", key: PamRules.mkhomedirKey, line: PamRules.mkhomedirLine, origin: source)
        }
        context.nameServices.append((service: "sss", origin: source, netgroup: false))
    }
}
