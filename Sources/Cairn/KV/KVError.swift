/// A command refused with Redis 7's error condition; ``message`` is Redis's exact reply text.
public enum KVError: Error, Sendable, Equatable, CustomStringConvertible {
    case wrongType
    case notAnInteger
    case notAFloat
    case overflow
    case nanOrInfinity
    case noSuchKey
    case syntax
    case invalidExpireTime(command: String)
    case hashValueNotInteger
    case stringTooLong
    case mustBePositive

    public var message: String {
        switch self {
        case .wrongType: return "WRONGTYPE Operation against a key holding the wrong kind of value"
        case .notAnInteger: return "ERR value is not an integer or out of range"
        case .notAFloat: return "ERR value is not a valid float"
        case .overflow: return "ERR increment or decrement would overflow"
        case .nanOrInfinity: return "ERR increment would produce NaN or Infinity"
        case .noSuchKey: return "ERR no such key"
        case .syntax: return "ERR syntax error"
        case .invalidExpireTime(let command): return "ERR invalid expire time in '\(command)' command"
        case .hashValueNotInteger: return "ERR hash value is not an integer"
        case .stringTooLong: return "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
        case .mustBePositive: return "ERR value is out of range, must be positive"
        }
    }

    public var description: String { message }
}

/// What a command answers, in RESP's terms (the server encodes it; the Swift API unwraps it).
public enum Reply: Sendable, Equatable {
    case ok
    case null
    case integer(Int64)
    case bulk(Bytes)
    case array([Reply])
    /// An array reply that is absent (RESP2 `*-1`), e.g. `LPOP key 2` on a missing key.
    case nullArray
    case error(KVError)
    /// A znode was created at `path` (the sequential name, if any).
    case created(path: String, stat: Stat)
    case stat(Stat)
    case treeError(TreeError)
    /// A `multi` that failed: one code per operation (0 before the failure, the failure's code,
    /// then RuntimeInconsistency), as ZooKeeper answers.
    case multiFailed(codes: [Int32])
}
