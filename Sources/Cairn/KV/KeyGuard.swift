/// What `WATCH` records of one key: its database, and the version it had then (nil: absent).
/// A txn run with guards (``Store/execute(_:guards:)``) runs only if every guarded key still
/// has that version; each guard is checked in its own database, so keys watched before and
/// after a `SELECT` are each judged where they were watched, as Redis does.
///
/// ```swift
/// let seen = store.versions(["balance"])                 // WATCH balance (database 0)
/// let replies = try store.execute([.incrementBy("balance", -5)], guards: seen)  // nil if it changed
/// ```
public struct KeyGuard: Sendable, Equatable {
    public var db: Int
    public var key: Bytes
    /// The key's version (the index of the txn that last wrote it) when watched; nil if absent.
    public var version: UInt64?

    public init(db: Int = 0, key: Bytes, version: UInt64?) {
        precondition(db >= 0 && db < StoreState.databaseCount, "database \(db) is outside 0..<\(StoreState.databaseCount)")
        self.db = db
        self.key = key
        self.version = version
    }
}
