/// How an object is cut into FEC blocks: `blockCount` blocks of `sourceSymbols` symbols of
/// `symbolSize` bytes each; the last block may have fewer symbols and its last symbol fewer bytes.
public struct ObjectLayout: Sendable, Equatable, Codable {
    /// The RS code over GF(2^8) with our Cauchy construction has at most 255 symbols per block.
    public static let maxSymbolsPerBlock = 255
    public static let symbolSizeRange = 64...PacketHeader.maxPayload

    public let objectSize: UInt64
    public let symbolSize: Int
    public let sourceSymbols: Int

    public init(objectSize: UInt64, symbolSize: Int, sourceSymbols: Int) throws(TransportError) {
        guard ObjectLayout.symbolSizeRange.contains(symbolSize) else {
            throw TransportError(
                .invalidArgument, "symbol size \(symbolSize) is outside \(ObjectLayout.symbolSizeRange)")
        }
        guard sourceSymbols >= 1, sourceSymbols < ObjectLayout.maxSymbolsPerBlock else {
            throw TransportError(.invalidArgument, "source symbols per block \(sourceSymbols) must be 1...254")
        }
        let blockBytes = UInt64(symbolSize * sourceSymbols)
        guard objectSize / blockBytes < UInt64(UInt32.max) else {
            throw TransportError(.invalidArgument, "object of \(objectSize) bytes needs too many blocks")
        }
        self.objectSize = objectSize
        self.symbolSize = symbolSize
        self.sourceSymbols = sourceSymbols
    }

    public var blockBytes: Int { symbolSize * sourceSymbols }
    /// Number of blocks; an empty object still has one (empty) block so it has an end.
    public var blockCount: Int { max(1, Int((objectSize + UInt64(blockBytes) - 1) / UInt64(blockBytes))) }
    /// Object size rounded up to whole blocks (the receiver's working buffer).
    public var paddedSize: Int { blockCount * blockBytes }
    /// Most parity symbols a block can have.
    public var maxParity: Int { ObjectLayout.maxSymbolsPerBlock - sourceSymbols }

    /// Byte offset of a block in the object.
    public func offset(ofBlock b: Int) -> Int { b * blockBytes }

    /// Number of source symbols that carry object bytes in block `b` (the last block may have fewer).
    public func sourceSymbols(inBlock b: Int) -> Int {
        let start = UInt64(offset(ofBlock: b))
        guard start < objectSize else { return b == 0 ? 1 : 0 }
        let bytes = min(UInt64(blockBytes), objectSize - start)
        return Int((bytes + UInt64(symbolSize) - 1) / UInt64(symbolSize))
    }

    /// Bytes of object data carried by source symbol `s` of block `b` (0 past the end).
    public func payloadLength(block b: Int, symbol s: Int) -> Int {
        let start = UInt64(offset(ofBlock: b) + s * symbolSize)
        guard start < objectSize else { return 0 }
        return Int(min(UInt64(symbolSize), objectSize - start))
    }
}
