import Foundation

/// A program the tests check output with (ifquery, sssctl, tshark…): installed by scripts/setup,
/// so missing is a failure under CI and a skip, saying which package, elsewhere.
public enum InstalledTool {
    public static func path(_ name: String, _ package: String) throws -> String {
        for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") {
            return "\(dir)/\(name)"
        }
        try Requirements.require(false, "needs \(name) (Debian package \(package); scripts/setup installs it)")
        return name
    }
}
