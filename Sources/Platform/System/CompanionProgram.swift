import FoundationEssentials

/// Where a program that comes with this one is installed (`qlustar-image` puts `ql-mcast-client`
/// into initrds). Looked for beside the path this program was started by, when that names a
/// directory (a build directory, a test's copy); beside the executable itself
/// (`/proc/self/exe`, which a link such as `/usr/sbin/qlustar-image` → `qlustar-tools` resolves
/// to); then on `$PATH`, where a package installs both.
public enum CompanionProgram {
    /// The path of the executable `name`, or nil when none of the places has it.
    public static func path(_ name: String) -> String? {
        var directories: [String] = []
        if let started = CommandLine.arguments.first, let slash = started.lastIndex(of: "/") {
            directories.append(String(started[..<slash]))
        }
        if let executable = try? Posix.readlink("/proc/self/exe"), let slash = executable.lastIndex(of: "/") {
            directories.append(String(executable[..<slash]))
        }
        if let path = ProcessInfo.processInfo.environment["PATH"] {
            directories += path.split(separator: ":").map(String.init)
        }
        for directory in directories {
            // An empty $PATH entry is the current directory.
            let candidate = (directory.isEmpty ? "." : directory) + "/" + name
            if FileSystem.isExecutableFile(candidate) { return candidate }
        }
        return nil
    }
}
