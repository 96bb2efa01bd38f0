/// Defaults shared by qlumand, qluman-execd and qluman.
public enum QlumanDefaults {
    /// qlumand's control port (ql-mcastd has 7799).
    public static let port = 7800
    /// The cluster CA on a node (in the initrd and the image).
    public static let ca = "/etc/qlustar/ssl/ca.crt"
    /// A node's enrollment token, when it has one.
    public static let tokenFile = "/etc/qlustar/execd.token"
    /// qlumand's administration socket on the head node (root only).
    public static let adminSocket = "/run/qlustar/qlumand.sock"
    /// dnsmasq's log as `qluman provision` configures it; qlumand's boot monitor reads it.
    public static let dnsmasqLog = "/var/log/qlustar/dnsmasq.log"
    /// The boot page's port (HTTPS) and the file holding its login token (0600, made at first start).
    public static let webPort = 7880
    public static let webToken = "/etc/qlustar/qlumand-web.token"
}
