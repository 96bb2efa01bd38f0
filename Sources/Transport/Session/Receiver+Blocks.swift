/// The receiver's blocks: symbols into their final place, blocks decoded once they have `k`,
/// and the SHA-256 over the completed in-order prefix.
extension Receiver {
    func handleSymbol(_ h: PacketHeader, _ payload: UnsafeRawBufferPointer, now: UInt64) {
        let l = layout!
        let b = Int(h.block)
        guard b < l.blockCount else { return counters.drops.count(.blockOutOfRange) }
        let kb = l.sourceSymbols(inBlock: b)
        let j = Int(h.symbol)
        // Validate everything before the datagram may change any state.
        if h.type == .data {
            guard j < kb else { return counters.drops.count(.symbolOutOfRange) }
            guard Int(h.payloadLength) == l.payloadLength(block: b, symbol: j) else {
                return counters.drops.count(.badLength)
            }
        } else {
            guard j >= l.sourceSymbols, j < ReedSolomon.maxSymbols else {
                return counters.drops.count(.symbolOutOfRange)
            }
            guard Int(h.payloadLength) == l.symbolSize else { return counters.drops.count(.badLength) }
        }
        if h.flags.contains(.repair) {
            repairRun = b
            noteRepair(block: b, now: now)
        } else {
            notePass(block: b, symbol: j, sources: kb, data: h.type == .data)
            let heard = table.passHeard(block: b, blockStart: h.type == .data && j == 0)
            if heard > table.ended { endBlocks(upTo: heard, now: now) }
        }
        if table.blocks[b].complete { return counters.drops.count(.blockAlreadyComplete) }
        if h.type == .data {
            if table.blocks[b].sourceSet.contains(j) { return counters.drops.count(.duplicate) }
            table.blocks[b].sourceSet.insert(j)
            let place = destination.baseAddress! + l.offset(ofBlock: b) + j * l.symbolSize
            if UnsafeRawPointer(place) == payload.baseAddress {
                counters.payloadBytesInPlace += UInt64(payload.count)
            } else {
                // The one copy: receive buffer → the symbol's final place in the destination.
                if payload.count > 0 { place.copyMemory(from: payload.baseAddress!, byteCount: payload.count) }
                counters.payloadBytesCopied += UInt64(payload.count)
            }
            if payload.count < l.symbolSize {
                // The object's short last symbol: its padding takes part in decoding and must be
                // zero, whatever a placed receive wrote there while the place was still free.
                (place + payload.count).initializeMemory(
                    as: UInt8.self, repeating: 0, count: l.symbolSize - payload.count)
            }
            counters.dataSymbols += 1
            table.blocks[b].sources += 1
        } else {
            if table.blocks[b].paritySet.contains(j) { return counters.drops.count(.duplicate) }
            guard let slot = parity.take(symbol: j, linkedTo: table.blocks[b].parityHead) else {
                return counters.drops.count(.bufferLimit)
            }
            table.blocks[b].paritySet.insert(j)
            table.blocks[b].parityHead = slot
            parity.pointer(slot).update(
                from: payload.baseAddress!.assumingMemoryBound(to: UInt8.self), count: l.symbolSize)
            counters.paritySymbols += 1
            counters.parityBufferHighWater = UInt64(parity.highWater)
        }
        counters.accepted += 1
        lastProgressAt = now
        table.blocks[b].have += 1
        if Int(table.blocks[b].have) >= kb { completeBlock(b) }
    }

    /// Decodes block `b` in place if source symbols are missing, and frees its parity.
    private func completeBlock(_ b: Int) {
        let l = layout!
        let kb = l.sourceSymbols(inBlock: b)
        let block = table.blocks[b]
        if Int(block.sources) < kb {
            parityList.removeAll(keepingCapacity: true)
            var s = block.parityHead
            while s >= 0 {
                parityList.append((index: parity.index(s), bytes: UnsafePointer(parity.pointer(s))))
                s = parity.successor(s)
            }
            let base = (destination.baseAddress! + l.offset(ofBlock: b)).assumingMemoryBound(to: UInt8.self)
            let present = block.sourceSet
            do throws(TransportError) {
                let rebuilt = try decoder!.decode(
                    k: kb, sources: { base + $0 * l.symbolSize }, present: { present.contains($0) },
                    parity: parityList)
                counters.blocksDecoded += 1
                counters.symbolsRebuilt += UInt64(rebuilt)
                for j in 0..<kb where !present.contains(j) {
                    counters.payloadBytesRebuilt += UInt64(l.payloadLength(block: b, symbol: j))
                }
            } catch {
                state = .failed(TransportError(.decodeFailed, "block \(b): \(error.message)"))
                return
            }
        }
        parity.release(list: block.parityHead)
        table.blocks[b].parityHead = -1
        table.blocks[b].complete = true
        table.completed += 1
    }

    /// SHA-256 over the completed in-order prefix, a block at a time.
    func advanceHash() {
        let l = layout!
        while table.hashed < l.blockCount, table.blocks[table.hashed].complete {
            let start = l.offset(ofBlock: table.hashed)
            let end = min(UInt64(start + l.blockBytes), l.objectSize)
            if UInt64(start) < end {
                hasher.update(UnsafeRawBufferPointer(start: destination.baseAddress! + start, count: Int(end) - start))
                counters.hashedBytes += end - UInt64(start)
            }
            table.hashed += 1
        }
    }
}
