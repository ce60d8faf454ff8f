import HashTreeCollections

/// What a key holds: Redis's string, list and hash types.
public enum Value: Sendable, Equatable {
    case string(Bytes)
    case list(PersistentList)
    case hash(TreeDictionary<Bytes, Bytes>)

    /// The name `TYPE` answers.
    public var typeName: String {
        switch self {
        case .string: return "string"
        case .list: return "list"
        case .hash: return "hash"
        }
    }
}

/// A key's value with its deadline and the index of the txn that last changed it.
public struct Entry: Sendable, Equatable {
    public var value: Value
    /// Absolute deadline in milliseconds since the Unix epoch; 0 means no expiry.
    public var expiresAt: Int64
    /// Index of the txn that last wrote this key (what `WATCH` compares).
    public var version: UInt64

    public init(value: Value, expiresAt: Int64 = 0, version: UInt64) {
        self.value = value
        self.expiresAt = expiresAt
        self.version = version
    }

    /// True when the key has a deadline at or before `now`.
    @inlinable public func isExpired(at now: Int64) -> Bool { expiresAt != 0 && expiresAt <= now }
}
