import Cairn
import CairnStorage
import CoreMetrics
import NIOCore

/// Group commit for the connections of one event loop (RESP or ZooKeeper), with the loop
/// thread as the sync leader. A connection that holds replies for a decided txn registers here; once the loop has
/// read and decided everything that arrived in this tick (a task runs after the tick's reads),
/// one `commitNow` of the newest txn syncs them all, on the loop thread, and every waiting
/// batch is answered. The sync blocks this loop for one `fdatasync`, but saves the two thread
/// hand-offs of a background sync (wake the flusher, wake the loop), which on a small machine
/// cost more than the sync itself: `cairn bench zk`, create 1 client × 1 in flight, went from
/// 13.9k to 25.9k ops/s, 16 × 1 from 58k to 82k.
final class LoopCommitter {
    typealias Waiter = (decided: Decided, done: (StoreError?) -> Void)
    private let waiting: LoopBatch<Waiter>

    /// `flusher`, the same loop's: the replies it holds go out before this loop blocks in the
    /// sync (a GET answered this tick need not wait for another connection's `fdatasync`).
    init(store: Store, loop: EventLoop, commitWait: CoreMetrics.Timer?, flusher: LoopFlusher) {
        waiting = LoopBatch(loop: loop) { batch in
            flusher.runNow()
            Self.commit(batch, store, commitWait)
        }
    }

    /// Calls `done` on the loop once `decided` is committed and visible (or the store failed).
    func add(_ decided: Decided, _ done: @escaping (StoreError?) -> Void) {
        waiting.add((decided, done))
    }

    private static func commit(_ batch: [Waiter], _ store: Store, _ commitWait: CoreMetrics.Timer?) {
        // The newest txn still waiting for its sync covers every other: the log commits in
        // order and publishing goes through everything durable. (Settled ones, decided under
        // `no`/`everysec`, need nothing.)
        let unsettled = batch.lazy.filter { !$0.decided.isCommitted }.max(by: { $0.decided.index < $1.decided.index })
        guard let leader = unsettled ?? batch.first else { return }
        var failure: StoreError?
        let started = monotonicNanoseconds()
        do { try store.commitNow(leader.decided) } catch { failure = error }
        commitWait?.recordNanoseconds(monotonicNanoseconds() - started)
        for entry in batch { entry.done(failure) }
    }
}
