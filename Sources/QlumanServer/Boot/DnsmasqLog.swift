import Foundation
import NodeConfig
import Platform

#if canImport(Glibc)
    import Glibc
#endif

/// What the boot monitor reads in dnsmasq's log (`log-dhcp`, written by `qluman provision`):
/// DHCP by MAC and transaction, the vendor class that tells the firmware's PXE request from
/// `/init`'s, and TFTP transfers by client address.
///
/// Why the log and not `--dhcp-script`: the script hears of leases only (no DISCOVER or OFFER, so a
/// node whose offers never reach it looks like one that never asked) and of finished transfers
/// only (no "not found", no failed transfer); and dnsmasq would start a process per event — a
/// thousand nodes make about ten each. The log has all of it, one line per step.
enum DnsmasqLogLine: Equatable {
    case dhcp(xid: String, kind: String, mac: String, ip: String?)
    case vendorClass(xid: String, String)
    case tftpSent(file: String, ip: String)
    case tftpNotFound(file: String, ip: String)
    case tftpFailed(file: String, ip: String)

    /// Parses one line of dnsmasq's log (its own file or syslog's: `… dnsmasq-dhcp[PID]: …`);
    /// nil for lines the monitor does not use.
    static func parse(_ line: Substring) -> DnsmasqLogLine? {
        if let rest = after(line, "dnsmasq-dhcp[") {
            var words = rest.split(separator: " ", omittingEmptySubsequences: true)
            // With log-dhcp, each line starts with the transaction id.
            var xid = ""
            if let first = words.first, first.allSatisfy(\.isNumber) {
                xid = String(first)
                words.removeFirst()
            }
            guard let head = words.first else { return nil }
            if head == "vendor", words.count >= 3, words[1] == "class:" {
                return .vendorClass(xid: xid, words[2...].joined(separator: " "))
            }
            guard head.hasPrefix("DHCP"), let paren = head.firstIndex(of: "(") else { return nil }
            let kind = String(head[head.index(head.startIndex, offsetBy: 4)..<paren])
            guard ["DISCOVER", "OFFER", "REQUEST", "ACK", "NAK", "DECLINE", "RELEASE", "INFORM"].contains(kind) else {
                return nil
            }
            let args = words.dropFirst().map(String.init)
            // DISCOVER names the MAC alone; the others "IP MAC [name]" (a DISCOVER may carry a
            // requested address first too).
            guard let mac = args.first(where: isMAC) else { return nil }
            let ip = args.first(where: isIPv4)
            return .dhcp(xid: xid, kind: kind, mac: mac.lowercased(), ip: ip)
        }
        if let rest = after(line, "dnsmasq-tftp[") {
            let words = rest.split(separator: " ").map(String.init)
            if words.count == 4, words[0] == "sent", words[2] == "to", isIPv4(words[3]) {
                return .tftpSent(file: words[1], ip: words[3])
            }
            if words.count == 6, words[0] == "file", words[2] == "not", words[3] == "found", words[4] == "for",
                isIPv4(words[5])
            {
                return .tftpNotFound(file: words[1], ip: words[5])
            }
            if words.count == 5, words[0] == "failed", words[1] == "sending", words[3] == "to", isIPv4(words[4]) {
                return .tftpFailed(file: words[2], ip: words[4])
            }
        }
        return nil
    }

    /// The text after `tag…]: ` in `line`.
    private static func after(_ line: Substring, _ tag: String) -> Substring? {
        guard let start = line.range(of: tag), let end = line[start.upperBound...].range(of: "]: ") else { return nil }
        return line[end.upperBound...]
    }

    static func isMAC(_ s: String) -> Bool {
        s.count == 17 && s.enumerated().allSatisfy { i, c in i % 3 == 2 ? c == ":" : c.isHexDigit }
    }

    static func isIPv4(_ s: String) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { p in p.count <= 3 && !p.isEmpty && p.allSatisfy(\.isNumber) }
    }

    /// The name a TFTP path is known by: its last component, with `pxelinux.cfg/` kept.
    static func shortName(_ path: String) -> String {
        let parts = path.split(separator: "/")
        guard let last = parts.last else { return path }
        if parts.count >= 2, parts[parts.count - 2] == "pxelinux.cfg" { return "pxelinux.cfg/" + last }
        return String(last)
    }
}

/// Turns dnsmasq's log lines into boot events: remembers each DHCP transaction's vendor class
/// (its line comes first) to tell the firmware's request (`PXEClient…`) from the initrd's.
struct DnsmasqBootEvents {
    /// Transactions remembered (oldest forgotten first): more than a wave has in flight.
    static let maxTransactions = 8_192
    private var vendor: [String: String] = [:]
    private var order: [String] = []

    mutating func take(_ line: DnsmasqLogLine, at: Double, into monitor: BootMonitor) {
        switch line {
        case .vendorClass(let xid, let v):
            guard !xid.isEmpty, vendor[xid] != v else { return }
            if vendor[xid] == nil {
                order.append(xid)
                if order.count > Self.maxTransactions { vendor[order.removeFirst()] = nil }
            }
            vendor[xid] = v
        case .dhcp(let xid, let kind, let mac, let ip):
            guard let node = monitor.node(mac: mac) else { return }
            let pxe = vendor[xid]?.hasPrefix("PXEClient") ?? false
            let what = "DHCP\(kind)\(ip.map { " " + $0 } ?? "")"
            if pxe {
                monitor.record(
                    node, BootEvent(at: at, stage: .dhcp, what: what + " (PXE)"), startsBoot: kind == "DISCOVER",
                    repeatIsRetry: kind == "DISCOVER")
            } else {
                monitor.record(
                    node, BootEvent(at: at, stage: .initrd, what: what + " (initrd)"), repeatIsRetry: kind == "DISCOVER"
                )
            }
        case .tftpSent(let file, let ip):
            guard let node = monitor.node(ip: ip) else { return }
            monitor.record(
                node, BootEvent(at: at, stage: .tftp, what: "sent " + DnsmasqLogLine.shortName(file)),
                repeatIsRetry: true)
        case .tftpNotFound(let file, let ip):
            // pxelinux looks for its config under many names (MAC, Hostid prefixes): only a
            // missing loader, kernel or initrd is a failure.
            let name = DnsmasqLogLine.shortName(file)
            guard !name.hasPrefix("pxelinux.cfg/"), let node = monitor.node(ip: ip) else { return }
            monitor.record(node, BootEvent(at: at, stage: .tftp, what: "TFTP: \(name) not found", failed: true))
        case .tftpFailed(let file, let ip):
            guard let node = monitor.node(ip: ip) else { return }
            monitor.record(
                node,
                BootEvent(
                    at: at, stage: .tftp, what: "TFTP: failed sending \(DnsmasqLogLine.shortName(file))", retry: true))
        }
    }
}

/// Follows a log file as it grows, across rotation (a new file in its place) and truncation.
/// Starts at the end of what is there: the monitor wants what happens from now on.
struct LogFollower {
    let path: String
    /// The longest line taken; longer ones are skipped (counted by the caller).
    static let maxLine = 4_096
    private var fd: Int32 = -1
    private var inode: UInt64 = 0
    private var offset: Int = 0
    private var pending: [UInt8] = []
    private var skipping = false
    private var started = false
    /// What one poll reads at most, allocated once.
    private var chunk = [UInt8](repeating: 0, count: 1 << 20)

    init(path: String) { self.path = path }

    mutating func close() {
        if fd >= 0 { Posix.close(fd) }
        fd = -1
    }

    /// The complete lines written since the last call (at most 1 MiB of them), and how many
    /// over-long lines were skipped.
    mutating func poll() -> (lines: [Substring], tooLong: Int) {
        guard let st = try? Posix.stat(path) else { return ([], 0) }
        if fd < 0 || UInt64(st.st_ino) != inode || st.st_size < offset {
            if fd >= 0 { Posix.close(fd) }
            guard let f = try? Posix.open(path, O_RDONLY | O_CLOEXEC) else { return ([], 0) }
            fd = f
            inode = UInt64(st.st_ino)
            // The first file: from its end. A rotated or truncated one: from its start.
            offset = started ? 0 : Int(st.st_size)
            started = true
            pending.removeAll()
            skipping = false
        }
        let n = chunk.withUnsafeMutableBytes { b in (try? Posix.pread(fd, into: b, at: offset)) ?? 0 }
        guard n > 0 else { return ([], 0) }
        offset += n
        var lines: [Substring] = []
        var tooLong = 0
        var start = 0
        for i in 0..<n where chunk[i] == UInt8(ascii: "\n") {
            if skipping {
                skipping = false
            } else if pending.count + (i - start) <= Self.maxLine {
                pending += chunk[start..<i]
                lines.append(Substring(decoding: pending, as: UTF8.self))
            } else {
                tooLong += 1
            }
            pending.removeAll(keepingCapacity: true)
            start = i + 1
        }
        if !skipping {
            pending += chunk[start..<n]
            if pending.count > Self.maxLine {
                tooLong += 1
                skipping = true
                pending.removeAll()
            }
        }
        return (lines, tooLong)
    }
}
