import Foundation
import Platform

#if canImport(Glibc)
    import Glibc
#endif

/// One SNTP exchange (RFC 4330) with a head node before anything that needs a correct clock
/// (TLS certificates have validity dates): the offset of this node's clock, and, when it is off
/// by more than `stepThreshold` and we may, the clock stepped once. Bounded by `timeout`.
public struct TimeSync {
    public struct Result: Sendable, Equatable {
        /// Seconds to add to this clock to match the server's.
        public var offset: Double
        /// Round-trip delay, seconds.
        public var delay: Double
        public var stratum: Int
        public var stepped: Bool
    }

    public var server: String
    public var port: UInt16 = 123
    public var timeout = 3.0
    public var stepThreshold = 0.5
    /// Step the clock (needs root); off in tests.
    public var mayStep = true

    public init(server: String) { self.server = server }

    /// NTP time (seconds since 1900) of the realtime clock.
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + 2_208_988_800 + Double(ts.tv_nsec) / 1e9
    }

    static func timestamp(_ bytes: [UInt8], at offset: Int) -> Double {
        let seconds = bytes[offset..<(offset + 4)].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let fraction = bytes[(offset + 4)..<(offset + 8)].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return Double(seconds) + Double(fraction) / 4_294_967_296
    }

    static func encode(_ t: Double) -> [UInt8] {
        let seconds = UInt64(t)
        let fraction = UInt64((t - Double(seconds)) * 4_294_967_296)
        return (0..<4).reversed().map { UInt8(truncatingIfNeeded: seconds >> (8 * UInt64($0))) }
            + (0..<4).reversed().map { UInt8(truncatingIfNeeded: fraction >> (8 * UInt64($0))) }
    }

    /// Queries the server (and steps the clock when it is far off).
    /// - Throws: `.unreachable` when no valid answer comes within the timeout.
    public func run() throws(QlustarError) -> Result {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, server, &address.sin_addr) == 1 else {
            throw QlustarError(.invalidArgument, "time: \(server) is not an IPv4 address")
        }
        let fd = try FileSystem.at("time: cannot open a socket for", server) { () throws(SystemCallError) in
            try Posix.udpSocket()
        }
        defer { Posix.close(fd) }
        let wait = min(max(timeout, 0.001), 3_600)
        let tv = timeval(tv_sec: Int(wait), tv_usec: Int((wait - Double(Int(wait))) * 1e6))
        try FileSystem.at("time: cannot set the receive timeout for", server) { () throws(SystemCallError) in
            try Posix.setOption(fd, SOL_SOCKET, SO_RCVTIMEO, tv, "setsockopt(SO_RCVTIMEO)")
        }
        try FileSystem.at("time: cannot reach", "\(server):\(port)") { () throws(SystemCallError) in
            try Posix.connect(fd, address)
        }
        var request = [UInt8](repeating: 0, count: 48)
        request[0] = 0x23  // LI 0, version 4, mode 3 (client)
        let t1 = Self.now()
        let transmit = Self.encode(t1)
        request.replaceSubrange(40..<48, with: transmit)
        let sent = try FileSystem.at("time: cannot send to", server) { () throws(SystemCallError) in
            try request.withUnsafeBytes { b in Swift.Result { () throws(SystemCallError) in try Posix.send(fd, b) } }
                .get()
        }
        guard sent == request.count else { throw QlustarError(.io, "time: cannot send to \(server): short send") }
        var reply = [UInt8](repeating: 0, count: 68)
        let deadline = Date().addingTimeInterval(wait)
        while true {
            let received: Int?
            do {
                received = try reply.withUnsafeMutableBytes { b in
                    Swift.Result { () throws(SystemCallError) in try Posix.receive(fd, into: b) }
                }.get()
            } catch {
                throw QlustarError(.unreachable, "time: no answer from \(server):\(port) (\(error.text))")
            }
            let t4 = Self.now()
            guard let n = received else {
                if Date() < deadline { continue }
                throw QlustarError(.unreachable, "time: no answer from \(server):\(port) within \(wait) s")
            }
            // A valid server answer to this request: mode 4, not a kiss-o'-death, our timestamp echoed.
            guard n >= 48, reply[0] & 0x07 == 4, reply[1] != 0, Array(reply[24..<32]) == transmit else {
                if Date() < deadline { continue }
                throw QlustarError(.unreachable, "time: no valid answer from \(server)")
            }
            let t2 = Self.timestamp(reply, at: 32)
            let t3 = Self.timestamp(reply, at: 40)
            let offset = ((t2 - t1) + (t3 - t4)) / 2
            let delay = (t4 - t1) - (t3 - t2)
            var stepped = false
            if mayStep, abs(offset) > stepThreshold, geteuid() == 0 {
                var ts = timespec()
                clock_gettime(CLOCK_REALTIME, &ts)
                let target = Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9 + offset
                let set = timespec(tv_sec: Int(target), tv_nsec: Int((target - Double(Int(target))) * 1e9))
                stepped = (try? Posix.setWallClock(set)) != nil
            }
            return Result(offset: offset, delay: delay, stratum: Int(reply[1]), stepped: stepped)
        }
    }
}
