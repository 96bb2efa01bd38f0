/// The receiver's side of the placed receive: which place in the destination each datagram of
/// the next GRO run will fill, predicted from the pass the sender is making.
///
/// The sender's pass is regular: each block's source symbols in order, then the block's
/// proactive parity (`Sender.emitPass`). So after the pass datagram (b, j), the next run most
/// likely holds (b, j+1), (b, j+2), …, then that many parity symbols, then (b+1, 0), … The
/// socket scatters each payload to its predicted place; a right guess costs no copy in user
/// space. Only places nothing has filled are ever predicted (no complete block, no symbol
/// already taken), so a wrong guess — a loss, repair, a forged datagram — writes only where a
/// symbol is still to come, and is moved once (`MulticastSocket+Placement.swift`).
extension Receiver {
    /// Fills `places` for the next receive; nil when this receive should not scatter (not
    /// receiving yet, a session with tags or seals, a channel without GRO, nothing to predict).
    /// - Returns: How many places were predicted (the plan's length).
    func predictPlaces(_ channel: DatagramChannel) -> Int? {
        guard configuration.placePayloads, !configuration.encrypted, gate.authenticator == nil,
            channel.placesPayloads, case .receiving = state, let l = layout
        else { return nil }
        let positions = MulticastSocket.placementPositions(datagramSize: PacketHeader.size + l.symbolSize)
        var (b, o) = passCursor
        var kb = b < l.blockCount ? l.sourceSymbols(inBlock: b) : 0
        var any = false
        for i in 0..<positions {
            var place: UnsafeMutableRawPointer?
            if b < l.blockCount {
                if o < kb, !table.blocks[b].complete, !table.blocks[b].sourceSet.contains(o) {
                    place = destination.baseAddress! + l.offset(ofBlock: b) + o * l.symbolSize
                    any = true
                }
                o += 1
                if o >= kb + passParity {
                    b += 1
                    o = 0
                    kb = b < l.blockCount ? l.sourceSymbols(inBlock: b) : 0
                }
            }
            places[i] = place
        }
        return any ? positions : nil
    }

    /// Where the payload of the datagram with this header belongs, if that place may be written
    /// now: a DATA symbol of our session, in range, not yet taken, in a block not complete.
    /// Read from the raw header; anything else (or anything odd) is nil.
    func placeOf(_ header: UnsafeRawBufferPointer) -> UnsafeMutableRawPointer? {
        guard let l = layout, header.count >= PacketHeader.size, let base = header.baseAddress,
            base.load(fromByteOffset: 5, as: UInt8.self) == PacketType.data.rawValue
        else { return nil }
        let flags = PacketFlags(rawValue: UInt16(bigEndian: base.loadUnaligned(fromByteOffset: 6, as: UInt16.self)))
        guard !flags.hasTag, UInt32(bigEndian: base.loadUnaligned(fromByteOffset: 8, as: UInt32.self)) == sessionID
        else { return nil }
        let b = Int(UInt32(bigEndian: base.loadUnaligned(fromByteOffset: 16, as: UInt32.self)))
        let j = Int(UInt16(bigEndian: base.loadUnaligned(fromByteOffset: 20, as: UInt16.self)))
        guard b < l.blockCount, j < l.sourceSymbols(inBlock: b), !table.blocks[b].complete,
            !table.blocks[b].sourceSet.contains(j)
        else { return nil }
        return destination.baseAddress! + l.offset(ofBlock: b) + j * l.symbolSize
    }

    /// Follows the pass: a (non-repair) symbol (b, j) arrived. Learns how much parity the pass
    /// sends after each block's sources from where block b + 1 begins.
    func notePass(block b: Int, symbol j: Int, sources kb: Int, data: Bool) {
        if data {
            if j == 0, b == passCursor.block + 1, let l = layout {
                let previous = l.sourceSymbols(inBlock: passCursor.block)
                if passCursor.offset >= previous { passParity = passCursor.offset - previous }
            }
            passCursor = (b, j + 1)
        } else if passCursor.block == b, passCursor.offset >= kb {
            passCursor.offset += 1
        } else {
            passCursor = (b, kb + 1)
        }
    }
}
