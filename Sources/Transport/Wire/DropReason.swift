/// Why a received datagram was not used. Every dropped datagram is counted under exactly one.
public enum DropReason: Int, Error, Sendable, CaseIterable, Codable, CustomStringConvertible {
    case tooShort = 0
    case badMagic
    case badVersion
    case badType
    case badFlags
    case badLength
    case malformedBody
    case foreignSession
    case foreignObject
    case blockOutOfRange
    case symbolOutOfRange
    case authenticationFailed
    case beforeAnnounce
    case duplicate
    case blockAlreadyComplete
    case injectedLoss
    case notForThisRole
    case bufferLimit
    case sessionOver
    /// A NAK asking for more symbols than the block has, or a report no honest peer could send.
    case implausible
    /// A NAK or STATUS from a receiver id the session does not know (closed membership).
    case unknownReceiver

    public var description: String {
        switch self {
        case .tooShort: "too-short"
        case .badMagic: "bad-magic"
        case .badVersion: "bad-version"
        case .badType: "bad-type"
        case .badFlags: "bad-flags"
        case .badLength: "bad-length"
        case .malformedBody: "malformed-body"
        case .foreignSession: "foreign-session"
        case .foreignObject: "foreign-object"
        case .blockOutOfRange: "block-out-of-range"
        case .symbolOutOfRange: "symbol-out-of-range"
        case .authenticationFailed: "authentication-failed"
        case .beforeAnnounce: "before-announce"
        case .duplicate: "duplicate"
        case .blockAlreadyComplete: "block-already-complete"
        case .injectedLoss: "injected-loss"
        case .notForThisRole: "not-for-this-role"
        case .bufferLimit: "buffer-limit"
        case .sessionOver: "session-over"
        case .implausible: "implausible"
        case .unknownReceiver: "unknown-receiver"
        }
    }
}
