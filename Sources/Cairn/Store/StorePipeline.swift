/// The write path split in two, for servers that pipeline: decide many requests (each becomes
/// a txn at once, in order), then wait once for the last of them to commit and answer them all,
/// so a pipeline's writes share one group commit.
///
/// ```swift
/// let (reply, decided) = try store.decide(.incrementBy("hits", 1))
/// // ... decide more ...
/// try await store.commit(decided)     // the reply may be sent now
/// ```
public struct Decided: Sendable {
    /// What must be committed before the reply may be sent: the txn's own index, or for a
    /// request that changed nothing, the last index its answer may depend on.
    public let index: UInt64
    /// True when it is already committed and visible (under `no` and `everysec`).
    public let isCommitted: Bool
}

extension Store {
    /// Decides one operation as a txn (logged if it changes anything) without waiting for it to
    /// commit. Readers see it only after ``commit(_:)``.
    public func decide(_ operation: Operation) throws(StoreError) -> (Reply, Decided) {
        let (reply, index, settled) = try decideOne(operation)
        return (reply, Decided(index: index, isCommitted: settled))
    }

    /// Decides one operation unless `refusal`, called under the writer lock with the head
    /// state's tree (every decided txn applied, committed or not), answers instead: how a server
    /// checks a client's rights (ZooKeeper's ACLs) against the state the operation will meet.
    public func decide(_ operation: Operation, unless refusal: (ZTree) -> Reply?) throws(StoreError) -> (Reply, Decided) {
        let (reply, index, settled) = try decideOne(operation, refusal: { (state: inout StoreState) in refusal(state.tree) })
        return (reply, Decided(index: index, isCommitted: settled))
    }

    /// Decides operations as one txn; nil replies when a guarded key changed (nothing ran).
    public func decide(_ operations: [Operation], guards: [KeyGuard]) throws(StoreError) -> ([Reply]?, Decided) {
        let (replies, index, settled) = try decide({ _ in operations }, guards: guards, apply: Self.applyAll)
        return (replies, Decided(index: index, isCommitted: settled))
    }

    /// ``decide(_:guards:)`` without guards, for a caller that owns its array of operations (a
    /// server's batch of pipelined writes): each is lent from it to the codec and to the state
    /// instead of copied, which retained and released every key and value twice.
    ///
    /// ```swift
    /// var operations: [Operation] = [.set("a", "1", condition: .always, expiry: .clear, returnOld: false)]
    /// let (replies, decided) = try store.decide(lending: &operations)
    /// ```
    public func decide(lending operations: inout [Operation]) throws(StoreError) -> ([Reply], Decided) {
        let (replies, index, settled) = try decide(guards: [], refusal: { _ in nil }, encode: { now, out in
            TxnCodec.encode(time: now, lending: &operations, into: &out)
        }, apply: { state, time, index, changes in
            state.apply(lending: &operations, time: time, index: index, changes: &changes)
        })
        guard let replies else { preconditionFailure("a txn without guards always runs") }
        return (replies, Decided(index: index, isCommitted: settled))
    }

    /// Waits until a decided txn (and every one before it) is committed, makes it visible, and
    /// delivers the watch events it fired.
    public func commit(_ decided: Decided) async throws(StoreError) {
        try await complete(decided.index, settled: decided.isCommitted)
    }

    /// Calls `ready` once a decided txn is durable (nil) or the store has failed, without a
    /// Swift task: at once if it is committed already, else from the thread that syncs the log,
    /// possibly with the log's lock held, so `ready` must only hand the news on (to an event
    /// loop, say), which then calls ``commitNow(_:)`` (no waiting left) to make it visible.
    public func whenCommitted(_ decided: Decided, _ ready: @escaping @Sendable (StoreError?) -> Void) {
        if decided.isCommitted {
            ready(nil)
            return
        }
        markHead(covering: decided.index)
        log.onCommit(decided.index) { error in ready(error.map { StoreError.log($0) }) }
    }

    /// Blocking ``commit(_:)``.
    public func commitNow(_ decided: Decided) throws(StoreError) {
        try complete(decided.index, settled: decided.isCommitted)
    }

    /// The store's clock now (milliseconds since the Unix epoch).
    public func now() -> Int64 { clock.nowMilliseconds() }
}
