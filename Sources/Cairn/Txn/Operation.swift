/// When `SET` writes: always, only if the key is absent (`NX`), only if present (`XX`).
public enum SetCondition: UInt8, Sendable, Equatable {
    case always = 0
    case ifAbsent = 1
    case ifPresent = 2
}

/// What a write does to the key's deadline.
public enum ExpiryChange: Sendable, Equatable {
    /// Remove any deadline (a plain `SET`, `GETEX PERSIST`).
    case clear
    /// Leave the deadline as it is (`KEEPTTL`, `GETEX` without options).
    case keep
    /// Expire at this absolute time, in milliseconds since the Unix epoch.
    case at(Int64)
}

/// Redis 7's `EXPIRE` options.
public enum ExpireCondition: UInt8, Sendable, Equatable {
    case always = 0
    /// Only when the key has no deadline.
    case ifNoExpiry = 1
    /// Only when the key has a deadline.
    case ifHasExpiry = 2
    /// Only when the new deadline is later (no deadline counts as infinite).
    case ifGreater = 3
    /// Only when the new deadline is earlier.
    case ifLess = 4
}

/// One change a txn makes. Every deadline is absolute: a txn never depends on "now" beyond
/// the time it carries, so replaying it gives the same state on any machine at any time.
public enum Operation: Sendable, Equatable {
    case set(Bytes, Bytes, condition: SetCondition, expiry: ExpiryChange, returnOld: Bool)
    case setMany(keys: [Bytes], values: [Bytes], onlyIfNoneExist: Bool)
    case delete([Bytes])
    case incrementBy(Bytes, Int64)
    case incrementByFloat(Bytes, Double)
    case append(Bytes, Bytes)
    case getDelete(Bytes)
    case getExpire(Bytes, ExpiryChange)
    case expire(Bytes, at: Int64, condition: ExpireCondition)
    case persist(Bytes)
    case rename(Bytes, to: Bytes, onlyIfAbsent: Bool)
    case flushAll
    case push(Bytes, [Bytes], left: Bool, onlyIfExists: Bool)
    /// `count` nil: pop one and answer a bulk reply; else up to `count`, answered as an array.
    case pop(Bytes, count: Int64?, left: Bool)
    case listRemove(Bytes, count: Int64, value: Bytes)
    case listTrim(Bytes, start: Int64, stop: Int64)
    case hashSet(Bytes, fields: [Bytes], values: [Bytes])
    case hashDelete(Bytes, fields: [Bytes])
    case hashIncrementBy(Bytes, field: Bytes, Int64)
    /// Deletes the key only if it holds exactly `token`: the safe release of a lock.
    case compareAndDelete(Bytes, token: Bytes)

    // The znode tree (ZooKeeper semantics). Versions of -1 match any version.
    /// `owner` is the session of an ephemeral node (0 otherwise); `ttl` in ms for TTL nodes;
    /// `acl` empty for ``ACLEntry/openUnsafe``; `nullData` for ZooKeeper's null data (no bytes,
    /// and a client reads null, not an empty array).
    case createNode(path: String, data: Bytes, kind: NodeKind, sequential: Bool, ttl: Int64, owner: Int64, acl: [ACLEntry] = [], nullData: Bool = false)
    case deleteNode(path: String, version: Int32)
    case setNodeData(path: String, data: Bytes, version: Int32, nullData: Bool = false)
    case checkNode(path: String, version: Int32)
    /// `setACL`: replaces a node's ACL if its `aversion` matches `version` (-1: any).
    case setNodeACL(path: String, acl: [ACLEntry], version: Int32)
    /// ZooKeeper's `multi`: tree operations applied all or none.
    case multi([Operation])

    // What the expiry wheel and sessions propose. Each re-checks its condition against the
    // txn's own time, so replay decides as the original did and a stale timer changes nothing.
    /// Removes each key whose deadline is at or before the txn's time.
    case expireKeys([Bytes])
    /// Deletes each childless TTL znode unmodified for longer than its TTL, and each childless
    /// container znode that has had a child.
    case expireNodes([String])
    /// Opens a session with a timeout in milliseconds; its id is the txn's index.
    case createSession(timeout: Int64)
    /// Closes a session and deletes its ephemeral znodes, all in this txn.
    case closeSession(Int64)

    /// A key-value operation on database `db` (Redis's `SELECT`; 0 is the default database).
    indirect case inDatabase(Int, Operation)

    /// True for the operations of the znode tree.
    public var isTreeOperation: Bool {
        switch self {
        case .createNode, .deleteNode, .setNodeData, .checkNode, .setNodeACL, .multi, .expireNodes, .createSession, .closeSession: return true
        default: return false
        }
    }
}

/// A transaction: every change of state is one, with the next log index (assigned when it is
/// logged) and the wall-clock time it was decided at (what lazy expiry is judged against).
public struct Txn: Sendable, Equatable {
    public var time: Int64
    public var operations: [Operation]

    public init(time: Int64, operations: [Operation]) {
        self.time = time
        self.operations = operations
    }
}
