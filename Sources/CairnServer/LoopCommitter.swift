import Cairn
import CairnStorage
import CoreMetrics
import NIOCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Group commit for the connections of one event loop (RESP or ZooKeeper). A connection that
/// holds replies for a decided txn registers here; once the loop has read and decided everything
/// that arrived in this tick (a task runs after the tick's reads), one commit of the newest txn
/// covers them all, and every waiting batch is answered. Who syncs depends on the batch:
///
/// - **One connection waiting** (a lone client, or one pipelining): the loop thread syncs
///   inline. That blocks the loop for one `fdatasync`, but saves the two thread hand-offs of a
///   background sync (wake the log's flusher, wake the loop), which on a small machine cost
///   more than the sync itself: `cairn bench zk` create, 1 client × 1 in flight, went from
///   13.9k to 25.9k ops/s inline.
/// - **Several connections waiting** (with at least `backgroundAt` requests among them; 2 by
///   default, one each): the log's flusher syncs and the loop is told on its own thread. The
///   loop goes on reading meanwhile, so the clients answered by one sync send their
///   next requests while the next sync gathers them: a pipeline of client, loop and disk
///   instead of one step after another. `cairn bench zk`, 16 clients × 1 in flight, paired
///   rounds against the loop syncing every batch: delete 102k → 121k ops/s (faster in 6 of
///   6), setData 85k → 89k (7 of 8), create 95k → 99k (5 of 6); 1 × 1 unchanged.
///
/// The RESP server counts each connection's waiting commands and syncs in the background only
/// from 64 (`redis-benchmark -c 50`: `-P 16` gathers 800, `-P 1` at most 50). Under `-P 1` the
/// load generator is the bottleneck, on a core of its own: the flusher's wake-ups and CPU (3 µs
/// a request) came out of its share. Paired rounds (`Benchmarks/ab-serve.sh`, `always -P 1`),
/// every batch inline against background: SET faster in 3 of 3 (+7–16%), LPUSH 3 of 3
/// (+1–35%); at `-P 16` every batch inline was 2–10% slower in 6 of 6, hence the threshold.
/// With it, against background: `-P 1` SET 2 of 2 (+6–21%), INCR 2 of 2 (+5–8%); `-P 16` SET
/// and INCR faster in 4 of 8 rounds (unchanged within the noise).
final class LoopCommitter {
    typealias Waiter = (decided: Decided, requests: Int, done: (StoreError?) -> Void)
    private var waiting: LoopBatch<Waiter>!
    private let store: Store
    private let loop: EventLoop
    private let commitWait: CoreMetrics.Timer?
    /// Batches handed to the log's flusher and not yet answered (changed on the loop, read by a
    /// server that stops: it waits a little for them to be answered).
    let inBackground = Atomic<Int>(0)
    /// Closed once the server stops (one gate for all its loops, so a committer made during the
    /// stop is closed too): a sync that ends later no longer hands its answer to the loop, which
    /// may have shut down (its connections are closed; the txns are durable).
    private let stopped: StopGate
    /// The fewest requests waiting in a batch of several connections that the log's flusher
    /// syncs; a batch with fewer is synced on the loop.
    private let backgroundAt: Int

    /// Group commits synced on the loop and by the log's flusher.
    private let syncedByLoop: Counter
    private let syncedByFlusher: Counter

    /// `sendReplies` sends the replies the same loop's connections hold before this loop blocks
    /// in the sync (a GET answered this tick need not wait for another connection's
    /// `fdatasync`). `prefix` names the metrics: `<prefix>_group_commits`, with `synced_by` =
    /// `loop` or `flusher`.
    init(store: Store, loop: EventLoop, commitWait: CoreMetrics.Timer?, sendReplies: @escaping () -> Void, stopped: StopGate,
         backgroundAt: Int = 2, metrics prefix: String, factory: any MetricsFactory) {
        self.store = store
        self.backgroundAt = backgroundAt
        self.loop = loop
        self.stopped = stopped
        self.commitWait = commitWait
        syncedByLoop = Counter(label: "\(prefix)_group_commits", dimensions: [("synced_by", "loop")], factory: factory)
        syncedByFlusher = Counter(label: "\(prefix)_group_commits", dimensions: [("synced_by", "flusher")], factory: factory)
        waiting = LoopBatch(loop: loop) { [unowned self] batch in
            sendReplies()
            commit(batch)
        }
    }

    /// Calls `done` on the loop once `decided` is committed and visible (or the store failed).
    /// `requests`: how many requests' replies wait for it (see ``init``'s `backgroundAt`).
    func add(_ decided: Decided, requests: Int = 1, _ done: @escaping (StoreError?) -> Void) {
        waiting.add((decided, requests, done))
    }

    private func commit(_ batch: [Waiter]) {
        // The newest txn still waiting for its sync covers every other: the log commits in
        // order and publishing goes through everything durable. (Settled ones, decided under
        // `no`/`everysec`, need nothing.)
        let unsettled = batch.lazy.filter { !$0.decided.isCommitted }.max(by: { $0.decided.index < $1.decided.index })
        guard let leader = unsettled ?? batch.first else { return }
        let started = monotonicNanoseconds()
        if batch.count == 1 || unsettled == nil || batch.reduce(0, { $0 + $1.requests }) < backgroundAt {
            if unsettled != nil { syncedByLoop.increment() }
            finish(batch, leader.decided, nil, started)  // syncs here, on the loop
            return
        }
        // In the background. A connection's replies go out in order either way: each waiter
        // releases everything its connection holds up to the index synced, so a later batch's
        // inline commit may answer this one's first, and this one then finds nothing left.
        inBackground.add(1, ordering: .relaxed)
        syncedByFlusher.increment()
        let decided = leader.decided
        let answer = NIOLoopBound((self, batch), eventLoop: loop)
        let loop = self.loop
        let stopped = self.stopped
        store.whenCommitted(decided) { error in
            // From the syncing thread, maybe with the log's lock held: only hand the news on.
            stopped.flag.withLock { stopped in
                if !stopped { loop.execute { answer.value.0.answer(answer.value.1, decided, error, started) } }
            }
        }
    }

    /// A background batch is durable (or the store failed): makes it visible, answers it.
    private func answer(_ batch: [Waiter], _ decided: Decided, _ error: StoreError?, _ started: UInt64) {
        inBackground.subtract(1, ordering: .relaxed)
        finish(batch, decided, error, started)
    }

    /// Commits `decided` unless the store already failed (waiting for its sync if it is not
    /// durable yet; once it is, only publishing), then answers every waiter of the batch.
    private func finish(_ batch: [Waiter], _ decided: Decided, _ error: StoreError?, _ started: UInt64) {
        var failure = error
        if failure == nil {
            do throws(StoreError) { try store.commitNow(decided) } catch { failure = error }
        }
        commitWait?.recordNanoseconds(monotonicNanoseconds() - started)
        for entry in batch { entry.done(failure) }
    }
}

extension PerLoop where Value == LoopCommitter {
    /// What a server's stop does before it shuts its loops down (never from a loop): waits up
    /// to `seconds` for the batches syncing in the background to be answered, then closes
    /// `gate` (the one every committer of the server was made with), so no answer still to
    /// come reaches a loop. Returns how many batches were left unanswered (their clients see
    /// the connection close, as for any request in flight at a stop).
    func stopBackgroundCommits(closing gate: StopGate, seconds: Double = 1) -> Int {
        let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
        func unanswered() -> Int { all.reduce(0) { $0 + $1.value.inBackground.load(ordering: .relaxed) } }
        while unanswered() > 0 && monotonicNanoseconds() < deadline { usleep(1000) }
        gate.flag.withLock { $0 = true }
        return unanswered()
    }
}

/// Whether a server has stopped, shared by its loops' committers and the threads that sync
/// (see ``LoopCommitter``): checked and set under one lock, so no answer is handed to a loop
/// after its server said it stops.
final class StopGate: Sendable {
    let flag = Mutex(false)
}
