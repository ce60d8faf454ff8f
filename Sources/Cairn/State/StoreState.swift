/// Everything the log's txns build: the key-value space and the znode tree, on one index
/// sequence. Applying the same txns in order to the same state gives the same state.
public struct StoreState: Sendable, Equatable {
    public internal(set) var keyspace = Keyspace()
    public internal(set) var tree = ZTree()

    public init() {}

    /// What one txn changed, for the committed state to replay by assignment.
    public struct Changes: Sendable {
        public internal(set) var keyspace: [KeyspaceChange] = []
        public internal(set) var tree: [TreeChange] = []
        public init() {}
        public var isEmpty: Bool { keyspace.isEmpty && tree.isEmpty }
        mutating func removeAll() {
            keyspace.removeAll(keepingCapacity: true)
            tree.removeAll(keepingCapacity: true)
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

    /// Applies one operation of a txn decided at `time`, logged at `index`.
    public mutating func apply(_ operation: Operation, time: Int64, index: UInt64, changes: inout Changes) -> Reply {
        operation.isTreeOperation
            ? tree.apply(operation, index: index, time: time, changes: &changes.tree)
            : keyspace.apply(operation, time: time, index: index, changes: &changes.keyspace)
    }

    mutating func apply(_ changes: Changes) {
        for change in changes.keyspace { keyspace.apply(change) }
        for change in changes.tree { tree.apply(change) }
    }
}
