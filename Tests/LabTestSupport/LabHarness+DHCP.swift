import Foundation

extension LabHarness {
    /// Host `host`'s MAC on the lab (eth0).
    public func mac(_ host: Int) throws -> String {
        try lab.exec(on: host, ["cat", "/sys/class/net/eth0/address"]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs dhclient once on `host`; returns the address it was given, nil when none came within
    /// `seconds`. The host keeps its own address (`-sf /bin/true`: take the lease, configure nothing).
    public func dhcpLease(on host: Int, seconds: Int = 10) throws -> String? {
        let conf = path("dhclient.conf")
        try "timeout \(seconds);\nretry 1;\n".write(toFile: conf, atomically: true, encoding: .utf8)
        let leaseFile = path("lease\(host)")
        let p = try start(
            on: host,
            [
                "dhclient", "-1", "-d", "-v", "-cf", conf, "-sf", "/bin/true", "-lf", leaseFile, "-pf",
                path("dh\(host).pid"), "eth0",
            ],
            timeout: seconds + 10, log: "dhclient\(host).log")
        let deadline = Date().addingTimeInterval(Double(seconds + 5))
        while Date() < deadline, p.isRunning {
            if let text = try? String(contentsOfFile: leaseFile, encoding: .utf8),
                let line = text.split(separator: "\n").first(where: { $0.contains("fixed-address") })
            {
                p.terminate()
                return line.split(separator: " ").last.map { String($0.dropLast()) }
            }
            usleep(100_000)
        }
        if p.isRunning { p.terminate() }
        return nil
    }
}
