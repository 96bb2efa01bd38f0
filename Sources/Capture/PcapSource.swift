import CPcap
import Foundation
import Platform

#if canImport(Glibc)
    import Glibc
#endif

/// Packets from a live interface or a pcap/pcapng file (libpcap), optionally filtered (BPF),
/// optionally saved to a standard pcap file as they are read.
///
/// `@unchecked Sendable` is not claimed: one thread reads a source.
public final class PcapSource {
    /// A packet as captured: time, length on the wire, and the captured bytes.
    public struct Packet {
        public var seconds: Double
        public var wireLength: Int
        public var bytes: UnsafeRawBufferPointer
    }

    private let handle: OpaquePointer
    private var dumper: OpaquePointer?
    /// Live: the descriptor to wait on (reads are non-blocking, so a quiet link cannot hang us).
    private var selectable: Int32 = -1
    public let linkType: Int32
    public let description: String

    private init(handle: OpaquePointer, description: String) {
        self.handle = handle
        self.description = description
        linkType = pcap_datalink(handle)
    }

    deinit {
        if let dumper { pcap_dump_close(dumper) }
        pcap_close(handle)
    }

    /// Reads the capture file `path` (pcap or pcapng).
    /// - Throws: `.io` with libpcap's reason (missing, truncated header, not a capture).
    public static func file(_ path: String) throws(QlustarError) -> PcapSource {
        var error = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard let h = pcap_open_offline(path, &error) else {
            throw QlustarError(.io, "cannot read the capture \(path): \(Self.text(error))")
        }
        return PcapSource(handle: h, description: path)
    }

    /// Captures on `interface` (promiscuous, so multicast of groups this host did not join is seen too).
    /// - Throws: `.io` with libpcap's reason (no such device, permission).
    public static func live(_ interface: String, snapshot: Int32 = 65_535) throws(QlustarError) -> PcapSource {
        var error = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard let h = pcap_create(interface, &error) else {
            throw QlustarError(.io, "cannot capture on \(interface): \(Self.text(error))")
        }
        pcap_set_snaplen(h, snapshot)
        pcap_set_promisc(h, 1)
        // Not immediate mode: with it the read timeout is ignored and a quiet link blocks the
        // reader forever; packets come in blocks at most 100 ms old instead.
        pcap_set_timeout(h, 100)
        pcap_set_buffer_size(h, 32 << 20)
        let status = pcap_activate(h)
        guard status >= 0 else {
            let reason = String(cString: pcap_geterr(h))
            pcap_close(h)
            throw QlustarError(.io, "cannot capture on \(interface): \(reason.isEmpty ? "error \(status)" : reason)")
        }
        var error2 = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        pcap_setnonblock(h, 1, &error2)
        let source = PcapSource(handle: h, description: interface)
        source.selectable = pcap_get_selectable_fd(h)
        return source
    }

    /// Keeps only what the BPF expression matches.
    /// - Throws: `.invalidArgument` with libpcap's reason.
    public func filter(_ expression: String) throws(QlustarError) {
        var program = bpf_program()
        guard pcap_compile(handle, &program, expression, 1, PCAP_NETMASK_UNKNOWN) == 0 else {
            throw QlustarError(.invalidArgument, "filter '\(expression)': \(String(cString: pcap_geterr(handle)))")
        }
        defer { pcap_freecode(&program) }
        guard pcap_setfilter(handle, &program) == 0 else {
            throw QlustarError(.invalidArgument, "filter '\(expression)': \(String(cString: pcap_geterr(handle)))")
        }
    }

    /// Also writes every packet read to `path` as a standard pcap file.
    public func save(to path: String) throws(QlustarError) {
        guard let d = pcap_dump_open(handle, path) else {
            throw QlustarError(.io, "cannot write \(path): \(String(cString: pcap_geterr(handle)))")
        }
        dumper = d
    }

    /// The next packet: nil at the end of a file; `.none` after a live read timeout with nothing.
    /// - Throws: `.integrity` for a corrupt or truncated file (libpcap's reason).
    public func next(_ body: (Packet) -> Void) throws(QlustarError) -> Bool {
        if selectable >= 0 {
            // Nothing within 100 ms: report the timeout (a failed poll falls through to libpcap's read).
            if (try? Posix.poll(selectable, Int16(POLLIN), timeoutMillis: 100)) == false { return true }
        }
        var header: UnsafeMutablePointer<pcap_pkthdr>?
        var data: UnsafePointer<UInt8>?
        switch pcap_next_ex(handle, &header, &data) {
        case 1:
            guard let header, let data else { return true }
            if let dumper { pcap_dump(UnsafeMutablePointer<UInt8>(dumper), header, data) }
            let h = header.pointee
            body(
                Packet(
                    seconds: Double(h.ts.tv_sec) + Double(h.ts.tv_usec) / 1e6, wireLength: Int(h.len),
                    bytes: UnsafeRawBufferPointer(start: data, count: Int(h.caplen))))
            return true
        case 0:
            return true
        case PCAP_ERROR_BREAK:
            if let dumper { pcap_dump_flush(dumper) }
            return false
        default:
            throw QlustarError(
                .integrity, "\(description): \(String(cString: pcap_geterr(handle))) (truncated or corrupt capture?)")
        }
    }

    /// libpcap's error buffer as text.
    private static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public func flush() { if let dumper { pcap_dump_flush(dumper) } }
}
