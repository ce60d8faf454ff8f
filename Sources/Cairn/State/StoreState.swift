import CairnStorage
import HashTreeCollections

/// Everything the log's txns build: the key-value space and the znode tree, on one index
/// sequence. Applying the same txns in order to the same state gives the same state.
public struct StoreState: Sendable, Equatable {
    /// Database 0, the one the embedded API and most clients use.
    public internal(set) var keyspace = Keyspace()
    /// Databases 1 to 15 (Redis's `SELECT`); only those holding keys are present.
    public internal(set) var databases = TreeDictionary<Int, Keyspace>()
    public internal(set) var tree = ZTree()

    /// Redis's default number of databases.
    public static let databaseCount = 16

    public init() {}

    /// The keyspace of database `db` (empty when it holds nothing).
    public func keyspace(_ db: Int) -> Keyspace {
        db == 0 ? keyspace : databases[db] ?? Keyspace()
    }

    /// Keys in every database.
    public var keyCount: Int { databases.values.reduce(keyspace.count) { $0 + $1.count } }

    /// What one txn changed, for the committed state to replay by assignment (as far as
    /// ``recording`` keeps it; see ``KeyspaceChanges``).
    public struct Changes: Sendable {
        public internal(set) var keyspace = KeyspaceChanges()
        /// Changes to databases 1 to 15 (those kept), and how many were made.
        public internal(set) var otherDatabases: [(db: Int, change: KeyspaceChange)] = []
        public internal(set) var otherDatabasesMade = 0
        public internal(set) var tree: [TreeChange] = []
        public init(recording: KeyspaceChanges.Recording = .all) { keyspace.recording = recording }
        /// Which key-value changes are kept (tree changes always are: watches fire from them).
        public var recording: KeyspaceChanges.Recording {
            get { keyspace.recording }
            set { keyspace.recording = newValue }
        }
        /// True when the txn changed nothing (so it is not logged).
        public var isEmpty: Bool { keyspace.isEmpty && tree.isEmpty && otherDatabasesMade == 0 }
        /// Changes the buffers have room for without growing.
        var capacity: Int { keyspace.recorded.capacity + otherDatabases.capacity + tree.capacity }

        mutating func removeAll() {
            // Each guarded: an array's removeAll goes through its generic replaceSubrange even
            // when there is nothing to remove, and the write path calls this twice a txn.
            keyspace.removeAll()
            if otherDatabasesMade != 0 { otherDatabases.removeAll(keepingCapacity: true); otherDatabasesMade = 0 }
            if !tree.isEmpty { tree.removeAll(keepingCapacity: true) }
        }
    }

    /// Applies every operation of `txn` at `index`; each gets its reply.
    public mutating func apply(_ txn: Txn, index: UInt64, changes: inout Changes) -> [Reply] {
        var replies: [Reply] = []
        replies.reserveCapacity(txn.operations.count)
        for operation in txn.operations {
            replies.append(apply(operation, time: txn.time, index: index, changes: &changes))
        }
        return replies
    }

    /// ``apply(_:index:changes:)`` of the txn of `operations` decided at `time`, each operation
    /// lent from the array rather than copied (see ``Swift/Array/lendEach(_:)``).
    public mutating func apply(lending operations: inout [Operation], time: Int64, index: UInt64, changes: inout Changes) -> [Reply] {
        var replies: [Reply] = []
        replies.reserveCapacity(operations.count)
        operations.lendEach { operation in
            replies.append(apply(operation, time: time, index: index, changes: &changes))
        }
        return replies
    }

    /// Applies one operation of a txn decided at `time`, logged at `index`.
    public mutating func apply(_ operation: Operation, time: Int64, index: UInt64, changes: inout Changes) -> Reply {
        if case .inDatabase(let db, let inner) = operation {
            guard db >= 0 && db < Self.databaseCount, !inner.isTreeOperation else { return .error(.syntax) }
            if case .inDatabase = inner { return .error(.syntax) }
            if db == 0 { return keyspace.apply(inner, time: time, index: index, changes: &changes.keyspace) }
            var scratch = KeyspaceChanges(recording: changes.recording)
            let reply = databases[db, default: Keyspace()].apply(inner, time: time, index: index, changes: &scratch)
            if databases[db]?.count == 0 { databases[db] = nil }  // an empty database is absent
            changes.otherDatabasesMade += scratch.made
            changes.recording = scratch.recording  // (a timer started here: see KeyspaceChanges.append)
            for change in scratch.recorded { changes.otherDatabases.append((db, change)) }
            return reply
        }
        return operation.isTreeOperation
            ? tree.apply(operation, index: index, time: time, changes: &changes.tree)
            : keyspace.apply(operation, time: time, index: index, changes: &changes.keyspace)
    }

    /// Replays one log record (recovery and read-only inspection share this): decodes its txn
    /// and applies it; `scratch` is reused between records and should record nothing
    /// (``KeyspaceChanges/Recording/none``), since only the state is wanted.
    mutating func replay(_ record: LogFormat.Record, scratch: inout Changes) throws(StoreError) {
        let txn: Txn
        do throws(TxnCodec.DecodeError) { txn = try TxnCodec.decode(record.payload) } catch {
            throw StoreError.undecodableTxn(index: record.index, error)
        }
        _ = apply(txn, index: record.index, changes: &scratch)
        scratch.removeAll()
    }

    mutating func apply(_ changes: Changes) {
        precondition(changes.recording == .all, "only a full record of changes can be replayed")
        for change in changes.keyspace.recorded { keyspace.apply(change) }
        for (db, change) in changes.otherDatabases {
            databases[db, default: Keyspace()].apply(change)
            if databases[db]?.count == 0 { databases[db] = nil }
        }
        changes.tree.withUnsafeBufferPointer { tree.apply($0) }  // in place: no copy per change
    }
}
