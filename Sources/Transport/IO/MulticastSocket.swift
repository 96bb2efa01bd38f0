import CQLSys
import Platform

#if canImport(Glibc)
    import Glibc
#endif

/// Options of a session's multicast socket.
public struct SocketOptions: Sendable {
    /// Local interface address: where the group is joined and multicast leaves.
    public var interface: IPv4Address
    /// Deliver our own multicast to sockets on this host, this one included (needed only when
    /// sender and receivers share a host). Off, a sender does not read back every datagram it
    /// sent; receivers keep it on so that two receivers on one host still hear each other's NAKs.
    public var loopback = true
    public var ttl: UInt8 = 1
    /// Kernel buffer sizes; set with the FORCE variants when running as root.
    public var receiveBuffer = 64 << 20
    public var sendBuffer = 8 << 20
    /// Use UDP GSO on send / GRO on receive when the kernel has them.
    public var segmentationOffload = true
    public var receiveOffload = true
    /// A datagram this host's own queue drops (a link slower than the sender's rate: a NIC's or a
    /// shaper's queue full) is reported (`IP_RECVERR`: `ENOBUFS`), and sent again after a pause —
    /// the link pushes back, as a full socket buffer does, instead of losing datagrams on the
    /// sending host that every receiver must then ask for. For senders.
    public var localDropsPushBack = false

    public init(interface: IPv4Address) { self.interface = interface }
}

/// One UDP socket bound to a group:port, joined on an interface, with batched, offloaded I/O.
///
/// Sending gathers (header, payload, tag) iovecs straight from their buffers and, with GSO,
/// hands the kernel one super-datagram per run of equal-sized datagrams; receiving uses
/// `recvmmsg` into a page-aligned pool and, with GRO, splits coalesced runs back into datagrams.
/// A class because it owns a file descriptor and buffers; used by one thread.
public final class MulticastSocket {
    public let endpoint: MulticastEndpoint
    public let options: SocketOptions
    let fd: Int32
    public private(set) var gsoEnabled: Bool
    /// Times segmentation offload was refused and turned off (0 or 1).
    public private(set) var gsoFallbacks: UInt64 = 0
    /// The interface's NUMA node (nil: unknown or a single-node machine).
    public let numaNode: Int?
    public private(set) var groEnabled: Bool

    // Send side.
    static let maxSegments = 64
    static let maxSuperDatagram = 65_000
    private var iovecs: UnsafeMutablePointer<iovec>
    private var iovCapacity: Int
    private var sendMsgs: UnsafeMutablePointer<qlsys_mmsghdr>
    private var sendMsgCapacity: Int
    /// Index in the batch of the first datagram of each laid-out message.
    private var messageStart: [Int]
    private let control: UnsafeMutableRawPointer
    private var destination: sockaddr_in

    // Receive side.
    let receiveSlots: Int
    let receiveSlotSize: Int
    let receiveRegion: AlignedRegion
    private let receiveMsgs: UnsafeMutablePointer<qlsys_mmsghdr>
    private let receiveIovecs: UnsafeMutablePointer<iovec>
    let receiveControl: UnsafeMutableRawPointer
    let receiveControlSpace: Int
    /// The placed receive's own state (`MulticastSocket+Placement.swift`).
    let placement: Placement

    public private(set) var sendCalls: UInt64 = 0
    /// Sends this host's queue refused (`localDropsPushBack`): each waited for and sent again.
    public private(set) var localDrops: UInt64 = 0
    /// Errors reported for earlier sends (`IP_RECVERR`: ICMP from the network — anyone on the LAN
    /// can forge one — or the host), taken off the socket and ignored: a multicast stream has no
    /// peer an error could be about.
    public private(set) var reportedErrors: UInt64 = 0
    /// Since when every send has met such an error (nil: the last send went out). A local error
    /// that does not go away (the route gone) fails the send after 2 s; a forged one cannot.
    private var failingSince: UInt64?
    private var lastSendError: Int32 = 0
    public internal(set) var receiveCalls: UInt64 = 0
    /// Messages returned by recvmmsg (a GRO run counts once) and datagrams delivered.
    public internal(set) var messagesReceived: UInt64 = 0
    public internal(set) var datagramsReceived: UInt64 = 0
    /// Datagrams the kernel dropped because our receive buffer was full (SO_RXQ_OVFL): the
    /// receiver cannot keep up. Cumulative.
    public internal(set) var kernelDrops: UInt32 = 0

    /// Opens, binds and joins.
    /// - Throws: `TransportError(.systemCall)` naming the failed step.
    public init(endpoint: MulticastEndpoint, options: SocketOptions, batch: Int = 64) throws(TransportError) {
        self.endpoint = endpoint
        self.options = options
        fd = try SystemCalls.udpSocket()
        do throws(TransportError) {
            try SystemCalls.setOption(fd, SOL_SOCKET, SO_REUSEADDR, Int32(1), "setsockopt(SO_REUSEADDR)")
            // Root may exceed rmem_max/wmem_max; otherwise take what the kernel allows.
            if (try? SystemCalls.setOption(
                fd, SOL_SOCKET, SO_RCVBUFFORCE, Int32(options.receiveBuffer), "SO_RCVBUFFORCE")) == nil
            {
                try? SystemCalls.setOption(fd, SOL_SOCKET, SO_RCVBUF, Int32(options.receiveBuffer), "SO_RCVBUF")
            }
            if (try? SystemCalls.setOption(fd, SOL_SOCKET, SO_SNDBUFFORCE, Int32(options.sendBuffer), "SO_SNDBUFFORCE"))
                == nil
            {
                try? SystemCalls.setOption(fd, SOL_SOCKET, SO_SNDBUF, Int32(options.sendBuffer), "SO_SNDBUF")
            }
            // Only this socket's group, not every group any socket on the host joined.
            try SystemCalls.setOption(fd, Int32(IPPROTO_IP), IP_MULTICAST_ALL, Int32(0), "setsockopt(IP_MULTICAST_ALL)")
            var bindAddress = endpoint.sockaddr
            bindAddress.sin_addr = endpoint.group.inAddr
            try SystemCalls.bind(fd, bindAddress)
            do throws(TransportError) {
                try SystemCalls.setOption(
                    fd, Int32(IPPROTO_IP), IP_MULTICAST_IF, options.interface.inAddr, "setsockopt(IP_MULTICAST_IF)")
            } catch {
                throw TransportError(
                    .invalidArgument,
                    "cannot send multicast from \(options.interface): \(error.message); "
                        + "--interface must be an address of this host", errno: error.errno)
            }
            try SystemCalls.setOption(fd, Int32(IPPROTO_IP), IP_MULTICAST_TTL, Int32(options.ttl), "IP_MULTICAST_TTL")
            try SystemCalls.setOption(
                fd, Int32(IPPROTO_IP), IP_MULTICAST_LOOP, Int32(options.loopback ? 1 : 0), "IP_MULTICAST_LOOP")
            let mreq = ip_mreq(imr_multiaddr: endpoint.group.inAddr, imr_interface: options.interface.inAddr)
            do throws(TransportError) {
                try SystemCalls.setOption(fd, Int32(IPPROTO_IP), IP_ADD_MEMBERSHIP, mreq, "IP_ADD_MEMBERSHIP")
            } catch {
                throw TransportError(
                    .systemCall,
                    "cannot join \(endpoint.group) on interface \(options.interface): \(error.message); "
                        + "is \(options.interface) an address of this host?", errno: error.errno)
            }
        } catch {
            SystemCalls.close(fd)
            throw error
        }
        _ = try? SystemCalls.setOption(fd, SOL_SOCKET, QLSYS_SO_RXQ_OVFL, Int32(1), "setsockopt(SO_RXQ_OVFL)")
        if options.localDropsPushBack {
            _ = try? SystemCalls.setOption(fd, Int32(IPPROTO_IP), IP_RECVERR, Int32(1), "setsockopt(IP_RECVERR)")
        }
        groEnabled = false
        if options.receiveOffload {
            groEnabled =
                (try? SystemCalls.setOption(fd, QLSYS_SOL_UDP, QLSYS_UDP_GRO, Int32(1), "setsockopt(UDP_GRO)")) != nil
        }
        gsoEnabled = options.segmentationOffload
        destination = endpoint.sockaddr

        iovCapacity = batch * 3
        iovecs = .allocate(capacity: iovCapacity)
        sendMsgCapacity = batch
        sendMsgs = .allocate(capacity: batch)
        messageStart = .init(repeating: 0, count: batch)
        control = .allocate(byteCount: batch * Int(QLSYS_CMSG_INT_SPACE), alignment: 16)

        receiveSlots = groEnabled ? 32 : 64
        receiveSlotSize = groEnabled ? 65_536 : 9_216
        // Receive buffers on the NIC's NUMA node (libnuma, where the machine has several).
        numaNode = NetworkInterface.numaNode(owning: options.interface)
        receiveRegion = try AlignedRegion(size: receiveSlots * receiveSlotSize, numaNode: numaNode)
        receiveMsgs = .allocate(capacity: receiveSlots)
        receiveIovecs = .allocate(capacity: receiveSlots)
        receiveControlSpace = qlsys_gro_control_space()
        receiveControl = .allocate(byteCount: receiveSlots * receiveControlSpace, alignment: 16)
        placement = Placement()
    }

    deinit {
        SystemCalls.close(fd)
        iovecs.deallocate()
        sendMsgs.deallocate()
        control.deallocate()
        receiveMsgs.deallocate()
        receiveIovecs.deallocate()
        receiveControl.deallocate()
    }

    /// Sends every datagram of the batch (waiting for socket space if the kernel pushes back).
    ///
    /// If the kernel or device refuses segmentation offload, GSO is turned off for good and the
    /// datagrams not yet sent go out again laid out as plain datagrams (none is sent twice).
    public func send(_ batch: OutgoingBatch) throws(TransportError) {
        var i = 0
        layout: while i < batch.count {
            let built = buildMessages(batch, from: i)
            var done = 0
            while done < built.messages {
                do throws(TransportError) {
                    done += try sendMessages(from: done, count: built.messages - done)
                } catch  where gsoEnabled && [EIO, EINVAL, ENOPROTOOPT].contains(error.errno) {
                    gsoEnabled = false
                    gsoFallbacks += 1
                    i = messageStart[done]
                    continue layout
                }
            }
            i = built.next
        }
    }

    /// Lays out mmsghdrs for datagrams starting at `from`; returns how many messages and the
    /// index after the last datagram covered.
    private func buildMessages(_ batch: OutgoingBatch, from: Int) -> (messages: Int, next: Int) {
        var i = from
        var m = 0
        var iov = 0
        while i < batch.count, m < sendMsgCapacity {
            let segment = batch.datagramLength(i)
            var count = 0
            var total = 0
            let firstIov = iov
            // A GSO run: equal-sized datagrams, the last of the run may be shorter.
            repeat {
                let len = batch.datagramLength(i + count)
                guard iov + 3 <= iovCapacity else { break }
                let slot = batch.slots + (i + count) * OutgoingBatch.slotSize
                iovecs[iov] = iovec(iov_base: slot, iov_len: PacketHeader.size)
                iov += 1
                if batch.payloadLengths[i + count] > 0 {
                    iovecs[iov] = iovec(
                        iov_base: UnsafeMutableRawPointer(mutating: batch.payloads[i + count]),
                        iov_len: batch.payloadLengths[i + count])
                    iov += 1
                }
                if batch.tagged[i + count] {
                    iovecs[iov] = iovec(iov_base: slot + PacketHeader.size, iov_len: PacketHeader.tagSize)
                    iov += 1
                }
                total += len
                count += 1
                if len < segment { break }
            } while gsoEnabled && i + count < batch.count && count < MulticastSocket.maxSegments
                && batch.datagramLength(i + count) <= segment
                && total + batch.datagramLength(i + count) <= MulticastSocket.maxSuperDatagram
            var msg = msghdr()
            withUnsafeMutablePointer(to: &destination) { msg.msg_name = UnsafeMutableRawPointer($0) }
            msg.msg_namelen = socklen_t(MemoryLayout<sockaddr_in>.size)
            msg.msg_iov = iovecs + firstIov
            msg.msg_iovlen = iov - firstIov
            if gsoEnabled && count > 1 {
                qlsys_set_gso_segment(&msg, control + m * Int(QLSYS_CMSG_INT_SPACE), UInt16(segment))
            }
            sendMsgs[m] = qlsys_mmsghdr(msg_hdr: msg, msg_len: 0)
            messageStart[m] = i
            m += 1
            i += count
            if iov + 3 > iovCapacity { break }
        }
        return (m, i)
    }

    private func sendMessages(from: Int, count: Int) throws(TransportError) -> Int {
        while true {
            sendCalls += 1
            do throws(TransportError) {
                if let n = try SystemCalls.sendmmsg(fd, sendMsgs + from, count), n > 0 {
                    failingSince = nil
                    lastSendError = 0
                    return n
                }
            } catch  where error.errno == ENOBUFS && options.localDropsPushBack {
                // This host's queue dropped the first message (the others were not tried): the
                // link is full. Send it again once it has drained a little.
                localDrops += 1
                usleep(200)
                continue
            } catch  where options.localDropsPushBack {
                // An earlier send's error, reported now (this one was not tried): taken, and the
                // send tried again — unless it is this host's own and lasts.
                guard try takeReportedError(error) else { throw error }
                continue
            }
            // Socket buffer full: wait for room (bounded), then retry.
            try SystemCalls.waitWritable(fd, timeoutMillis: 10)
        }
    }

    /// Sends one datagram (control traffic: ANNOUNCE, NAK, FIN, STATUS).
    public func sendOne(_ bytes: UnsafeRawBufferPointer) throws(TransportError) {
        for _ in 0..<100 {
            do throws(TransportError) {
                if try SystemCalls.sendto(fd, bytes, destination) {
                    failingSince = nil
                    lastSendError = 0
                    return
                }
            } catch  where error.errno == ENOBUFS && options.localDropsPushBack {
                localDrops += 1
            } catch  where options.localDropsPushBack {
                guard try takeReportedError(error) else { throw error }
                continue
            }
            try SystemCalls.waitWritable(fd, timeoutMillis: 10)
        }
        throw TransportError(.systemCall, "sendto \(endpoint): socket buffer stayed full for 1 s")
    }

    /// Receives what is waiting (non-blocking) and calls `handler` for each datagram, with GRO
    /// runs split. Returns the number of datagrams delivered.
    @discardableResult
    public func receive(_ handler: (UnsafeRawBufferPointer) -> Void) throws(TransportError) -> Int {
        for s in 0..<receiveSlots {
            receiveIovecs[s] = iovec(iov_base: receiveRegion.base + s * receiveSlotSize, iov_len: receiveSlotSize)
            var msg = msghdr()
            msg.msg_iov = receiveIovecs + s
            msg.msg_iovlen = 1
            msg.msg_control = receiveControl + s * receiveControlSpace
            msg.msg_controllen = receiveControlSpace
            receiveMsgs[s] = qlsys_mmsghdr(msg_hdr: msg, msg_len: 0)
        }
        receiveCalls += 1
        guard let n = try receiveMessages(receiveMsgs, receiveSlots) else { return 0 }
        var delivered = 0
        messagesReceived += UInt64(n)
        defer { datagramsReceived += UInt64(delivered) }
        for s in 0..<n {
            let len = Int(receiveMsgs[s].msg_len)
            let base = UnsafeRawPointer(receiveRegion.base + s * receiveSlotSize)
            let seg = Int(withUnsafePointer(to: &receiveMsgs[s].msg_hdr) { qlsys_gro_segment($0, &kernelDrops) })
            if seg > 0 && seg < len {
                var off = 0
                while off < len {
                    let l = min(seg, len - off)
                    handler(UnsafeRawBufferPointer(start: base + off, count: l))
                    off += l
                    delivered += 1
                }
            } else {
                handler(UnsafeRawBufferPointer(start: base, count: len))
                delivered += 1
            }
        }
        return delivered
    }

    /// recvmmsg, where a send's `ENOBUFS` left pending for the socket (`localDropsPushBack`)
    /// means nothing was received, not a failed socket.
    func receiveMessages(_ msgs: UnsafeMutablePointer<qlsys_mmsghdr>, _ n: Int) throws(TransportError) -> Int? {
        do { return try SystemCalls.recvmmsg(fd, msgs, n) } catch
            where error.errno == ENOBUFS
            && options.localDropsPushBack
        {
            return nil
        } catch  where options.localDropsPushBack {
            // An error about an earlier send, reported here: taken off the socket, nothing received.
            guard isReported(error) else { throw error }
            return nil
        }
    }

    /// With `IP_RECVERR`, an error about an earlier send — ICMP unreachable, refused, … that any
    /// host can forge — is returned by the next call on the socket and queued. True when `error`
    /// is such a one: counted, and the queue emptied (else `poll` would keep waking for it).
    /// A send's `ENOPROTOOPT` twice in a row is the kernel's "no GSO here", not ICMP's.
    private func isReported(_ error: TransportError, sending: Bool = false) -> Bool {
        guard let e = error.errno else { return false }
        defer { if sending { lastSendError = e } }
        let icmp = [
            ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, EHOSTDOWN, ENONET, EPROTO, EMSGSIZE, EOPNOTSUPP, EACCES,
            ENOPROTOOPT,
        ]
        guard icmp.contains(e), !(sending && e == ENOPROTOOPT && lastSendError == ENOPROTOOPT) else { return false }
        _ = SystemCalls.drainErrorQueue(fd)
        reportedErrors += 1
        return true
    }

    /// `isReported`, for sends: false when `error` is this call's own; true when the send should
    /// be tried again.
    /// - Throws: `error`, when sends have met nothing but such errors for 2 s (a local error that
    ///   stays, e.g. the route gone; a forger would have to beat every retry for 2 s).
    private func takeReportedError(_ error: TransportError) throws(TransportError) -> Bool {
        guard isReported(error, sending: true) else { return false }
        let now = MonotonicClock.nanoseconds()
        if let since = failingSince, now - since > 2_000_000_000 { throw error }
        if failingSince == nil { failingSince = now }
        return true
    }

    /// Blocks until a datagram is waiting or `timeoutNanos` passes.
    public func waitReadable(timeoutNanos: UInt64) throws(TransportError) -> Bool {
        try SystemCalls.waitReadable(fd, timeoutNanos: timeoutNanos)
    }
}
