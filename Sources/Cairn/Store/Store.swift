import CairnStorage
import CoreMetrics
import Logging
import DequeModule
import Synchronization
import SystemPackage

/// Settings of a ``Store``.
public struct StoreOptions: Sendable {
    public var fsyncPolicy: FsyncPolicy
    public var segmentSize: Int
    public var clock: any Clock
    public var fileSystem: any FileSystem
    /// Expire keys, TTL and container znodes and sessions on a background thread as their
    /// timers fall due. Off, nothing expires until ``Store/expireDue()`` is called (tests with a
    /// manual clock); reads still never return an expired key.
    public var activeExpiry: Bool
    /// At most this many timers are expired by one txn: a million keys due at once go in
    /// slices, and writers get the lock between them.
    public var expirySlice: Int
    /// Take a snapshot (on a background thread) after this many txns since the last one; 0: never.
    public var snapshotEveryTxns: UInt64
    /// ... or after this many bytes of log since the last one; 0: never.
    public var snapshotEveryBytes: Int
    /// Snapshots kept (the newest and older ones); at least 1.
    public var snapshotsRetained: Int
    /// LZ4 level: 1 is fast (the default), 3–12 use LZ4 HC (smaller, slower to write).
    public var snapshotCompressionLevel: Int32
    /// One line per open (what recovery did) and per snapshot; nothing per request. Silent by
    /// default (a library does not print): `cairn serve` passes its own.
    public var logger = Logger(label: "cairn.store", factory: { _ in SwiftLogNoOpLogHandler() })
    /// Where the log reports fsync times and batch sizes; the process's metrics system when nil.
    public var metrics: (any MetricsFactory)?

    public init(
        fsyncPolicy: FsyncPolicy = .everysec, segmentSize: Int = 64 << 20,
        clock: any Clock = SystemClock(), fileSystem: any FileSystem = PosixFileSystem(),
        activeExpiry: Bool = true, expirySlice: Int = 250,
        snapshotEveryTxns: UInt64 = 1_000_000, snapshotEveryBytes: Int = 256 << 20,
        snapshotsRetained: Int = 2, snapshotCompressionLevel: Int32 = 1
    ) {
        precondition(expirySlice > 0, "an expiry slice must take at least one timer")
        precondition(snapshotsRetained >= 1, "at least one snapshot is kept")
        precondition((1...12).contains(snapshotCompressionLevel), "LZ4 levels run from 1 to 12")
        self.snapshotEveryTxns = snapshotEveryTxns
        self.snapshotEveryBytes = snapshotEveryBytes
        self.snapshotsRetained = snapshotsRetained
        self.snapshotCompressionLevel = snapshotCompressionLevel
        self.fsyncPolicy = fsyncPolicy
        self.segmentSize = segmentSize
        self.clock = clock
        self.fileSystem = fileSystem
        self.activeExpiry = activeExpiry
        self.expirySlice = expirySlice
    }
}

/// Why the store could not open or write.
public enum StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    case log(LogError)
    /// A record passed its checksum but is not a txn this build can read.
    case undecodableTxn(index: UInt64, TxnCodec.DecodeError)
    case snapshot(SnapshotError)
    /// Neither a snapshot nor the log can rebuild the state (says what is missing).
    case unrecoverable(String)
    case closed

    public var description: String {
        switch self {
        case .log(let error): return error.description
        case .snapshot(let error): return error.description
        case .unrecoverable(let reason): return reason
        case .undecodableTxn(let index, let error): return "log record \(index) is not a valid txn: \(error)"
        case .closed: return "store is closed"
        }
    }
}

/// The embedded store: one log, one state machine, two APIs (keys and, later, znodes).
///
/// ```swift
/// let store = try Store.open(directory: "/var/lib/cairn", options: StoreOptions(fsyncPolicy: .always))
/// try store.set("greeting", "hello")
/// let value = try store.get("greeting")      // "hello"
/// try await store.incr("visits")             // async form: suspends while the sync runs
/// try store.close()
/// ```
///
/// Write path: a request is validated against the **head** state (committed plus accepted but
/// not yet durable) and becomes one txn, or an error with nothing logged. The txn is logged;
/// once the log commits it (after the `fdatasync` under `always`), its changes are applied to
/// the **committed** state, which is all that readers ever see. Both states are persistent
/// maps sharing keys and values, so a read view is an O(1) copy taken without the writer's lock.
public final class Store: @unchecked Sendable {
    public let directory: FilePath
    public let log: Log
    let clock: any Clock

    /// Guards `head`, `pending`, the buffers, `failure`. Both of the store's locks are
    /// `FastLock`s, not pthread mutexes: every write takes each once, and the pthread calls
    /// were a tenth of a pipelined SET's CPU (`-P 16` SET: 1.16 → 1.10 µs of server CPU).
    private let writer = FastLock()
    /// The head state while txns are pending (under `always`); when nothing is pending under
    /// `no` or `everysec`, head *is* the committed state (`headIsCommitted`) and a txn is
    /// applied once, to the committed trie, instead of to two.
    private var head: StoreState
    private var headIsCommitted = true
    /// Txns logged but not yet applied to `committed`, in index order, with their changes.
    private var pending = Deque<(index: UInt64, changes: StoreState.Changes)>()
    private var encodeBuffer: [UInt8] = []
    private var changeBuffer = StoreState.Changes()
    /// Change records of published txns, emptied with their capacity kept, for the next
    /// pending txns: a pending txn takes the buffer it was recorded in, and emptying a buffer
    /// it still shared allocated new arrays for every write under `always`.
    private var spareChanges: [StoreState.Changes] = []
    private static let maxSpareChanges = 1024
    private static let maxSpareCapacity = 64
    /// Copies of the head state (O(1): the tries are shared) at the newest pending txn, taken
    /// where a commit is about to be waited for, oldest first (see ``markHeadLocked(covering:)``).
    private var marks = Deque<(index: UInt64, state: StoreState)>()
    /// Group commits published through a mark (writer lock), for tests.
    private(set) var publishedByMark = 0
    private var failure: StoreError?
    /// Timers of key deadlines, TTL and container znodes and sessions (writer lock).
    var expiry: ExpiryTracker
    let expirySlice: Int
    /// The background expirer's wake-ups (see StoreExpiry.swift).
    let expirer = ExpirerControl()
    /// SCAN's passes in progress (see ScanPasses.swift).
    let scanPasses = ScanPasses()

    let options: StoreOptions
    /// What recovery had to say beyond the log's own report (a damaged snapshot it skipped).
    public let recoveryNotes: [String]
    /// Snapshots (StoreSnapshots.swift): one at a time, under `snapshotLock`.
    let snapshotLock = Lock()
    var snapshotState: SnapshotState
    /// Txns and log bytes since the last snapshot (writer lock), for the automatic trigger.
    var txnsSinceSnapshot: UInt64 = 0
    var bytesSinceSnapshot = 0
    let snapshotInFlight = Atomic<Bool>(false)
    /// ``wantsKeyPathHints``.
    private let keyPathHinting = Atomic<Bool>(false)

    /// Guards `committed`, `committedIndex` and `watches` (held briefly, never while calling out).
    private let readLock = FastLock()
    private var committed: StoreState
    /// The index of the last txn in `committed`.
    private var committedIndex: UInt64
    private var watches = WatchRegistry()

    /// Fired watch events waiting to be delivered, in index order; one thread delivers at a time.
    private let deliveryLock = Lock()
    private var deliveries = Deque<(WatchHandler, WatchEvent)>()
    private var delivering = false
    /// Events queued and not yet taken for delivery: lets a write skip the delivery lock.
    private let queuedEvents = Atomic<Int>(0)

    private init(directory: FilePath, log: Log, state: StoreState, options: StoreOptions, recovered: RecoveredSnapshots) {
        self.directory = directory
        self.log = log
        self.head = StoreState()
        self.committed = state
        self.committedIndex = log.lastIndex
        self.clock = options.clock
        self.options = options
        self.recoveryNotes = recovered.notes
        self.snapshotState = SnapshotState(manifest: recovered.manifest)
        self.txnsSinceSnapshot = log.lastIndex - (recovered.manifest?.snapshots.first ?? 0)
        self.expirySlice = options.expirySlice
        let now = options.clock.nowMilliseconds()
        expiry = ExpiryTracker(now: now)
        expiry.rebuild(from: state, now: now)
    }

    /// Opens (creating if needed) the store in `directory`: recovers the log and replays every
    /// txn into the state. A torn log tail is cut (see `log.recovery`); any other damage throws.
    public static func open(directory: FilePath, options: StoreOptions = StoreOptions()) throws(StoreError) -> Store {
        do { try options.fileSystem.createDirectory(directory) } catch { throw .log(.disk(error)) }
        var recovered = try loadSnapshot(directory: directory, fileSystem: options.fileSystem)
        var state = recovered.state ?? StoreState()
        let base = recovered.index
        var scratch = StoreState.Changes(recording: .none)
        let logOptions = LogOptions(fsyncPolicy: options.fsyncPolicy, segmentSize: options.segmentSize, firstIndex: base + 1, metrics: options.metrics)
        let log: Log
        do {
            log = try Log.open(directory: directory, options: logOptions, fileSystem: options.fileSystem) { record in
                if record.index <= base { return }  // in the snapshot already
                try state.replay(record, scratch: &scratch)
            }
        } catch let error as StoreError {
            throw error
        } catch let error as LogError {
            throw .log(error)
        } catch {
            preconditionFailure("unexpected error \(error)")
        }
        do {
            try checkContinuity(log: log, recovered: &recovered)
            try cleanUp(directory: directory, log: log, recovered: &recovered, fileSystem: options.fileSystem)
        } catch {
            try? log.close()
            throw error
        }
        recovered.state = nil  // the state lives on in the store
        var message: Logger.Message = "opened \(directory.string): \(state.keyCount) keys, \(state.tree.count) znodes, index \(log.lastIndex)"
        if base > 0 { message = "\(message) (snapshot \(base) + \(log.lastIndex - base) txns of log)" }
        options.logger.info(message)
        if let problem = log.recovery.problem { options.logger.warning("recovery: \(problem)") }
        for note in recovered.notes { options.logger.warning("recovery: \(note)") }
        let store = Store(directory: directory, log: log, state: state, options: options, recovered: recovered)
        store.withWriterLock { store.refreshKeyPathHinting() }
        if options.activeExpiry { store.startExpirer() }
        return store
    }

    /// Waits for a snapshot in progress, stops the expirer, makes everything written durable
    /// and closes the log.
    public func close() throws(StoreError) {
        snapshotLock.withLock { snapshotState.closed = true }
        stopExpirer()
        do { try log.close() } catch { throw .log(error) }
    }

    // MARK: Writing

    /// Decides the operations as one txn against the head state and logs it if it changes
    /// anything. Returns what `apply` answered and the index to wait for before answering (the
    /// txn's own, or, for a txn that changed nothing, the last one its answer may depend on);
    /// `settled` when the txn is already committed and visible. `operations` runs under the
    /// writer lock.
    func decide<R>(
        _ operations: (_ now: Int64) -> [Operation], guards: [KeyGuard],
        refusal: (inout StoreState) -> R? = { _ in nil },
        apply: (inout StoreState, Txn, UInt64, inout StoreState.Changes) -> R
    ) throws(StoreError) -> (result: R?, wait: UInt64, settled: Bool) {
        var txn = Txn(time: 0, operations: [])
        return try decide(guards: guards, refusal: refusal, encode: { now, out in
            txn = Txn(time: now, operations: operations(now))
            TxnCodec.encode(txn, into: &out)
        }, apply: { state, _, index, changes in apply(&state, txn, index, &changes) })
    }

    /// Decides one operation as a txn (see above). The operation is encoded and applied where it
    /// lies: copying it into an array and destroying that array cost a set about a sixth of its
    /// time (retains and releases of its key and value through the enum's value witnesses).
    func decideOne(_ operation: Operation, refusal: (inout StoreState) -> Reply? = { _ in nil }) throws(StoreError) -> (Reply, UInt64, Bool) {
        let (reply, index, settled) = try decide(guards: [], refusal: refusal, encode: { now, out in
            TxnCodec.encode(time: now, operation, into: &out)
        }, apply: { state, time, index, changes in
            state.apply(operation, time: time, index: index, changes: &changes)
        })
        return (reply!, index, settled)
    }

    /// The write path under all its forms: `encode` writes the txn decided at `now` into the buffer
    /// it is given; `apply` applies that same txn to a state (called after `encode`, at most once).
    func decide<R>(
        guards: [KeyGuard], refusal: (inout StoreState) -> R?,
        encode: (_ now: Int64, _ out: inout [UInt8]) -> Void,
        apply: (inout StoreState, _ time: Int64, _ index: UInt64, inout StoreState.Changes) -> R
    ) throws(StoreError) -> (result: R?, wait: UInt64, settled: Bool) {
        try writer.withLock { () throws(StoreError) -> (result: R?, wait: UInt64, settled: Bool) in
            try decideLocked(guards: guards, refusal: refusal, encode: encode, apply: apply)
        }
    }

    private func decideLocked<R>(
        guards: [KeyGuard], refusal: (inout StoreState) -> R?,
        encode: (_ now: Int64, _ out: inout [UInt8]) -> Void,
        apply: (inout StoreState, _ time: Int64, _ index: UInt64, inout StoreState.Changes) -> R
    ) throws(StoreError) -> (result: R?, wait: UInt64, settled: Bool) {
        if let failure { throw failure }
        let lastLogged = log.lastIndex
        let now = clock.nowMilliseconds()
        // Only writers (holding `writer`) change `committed`, so reading it here is safe. The
        // state is lent, not copied (a copy retained and released every part of it per guard).
        for watched in guards {
            let version = headIsCommitted ? Self.liveVersion(of: watched, in: committed, at: now) : Self.liveVersion(of: watched, in: head, at: now)
            if version != watched.version { return (nil, lastLogged, false) }  // a watched key changed: not run
        }
        // A caller's own precondition (a server's ACL check) against the head state, lent in
        // place: a copy (`headIsCommitted ? committed : head`) retained and released every
        // part of the state for each ZooKeeper write. (`refusal` must not change it; it is
        // not optional, so it is not escaping: an optional closure's context was allocated
        // on the heap for every ZooKeeper write.)
        if let refused = headIsCommitted ? refusal(&committed) : refusal(&head) { return (refused, lastLogged, false) }
        let index = lastLogged + 1
        // Encoded, and room made for it in the log, before anything changes: a full disk or a
        // failed log refuses the write with nothing applied (under `no`/`everysec` the change
        // is visible as soon as it is applied).
        encode(now, &encodeBuffer)
        try reserve()
        changeBuffer.removeAll()
        let immediate = log.fsyncPolicy != .always
        if headIsCommitted && immediate {
            // Committed once written to the OS, and nothing pending: apply once, in place,
            // keeping of the key-value changes only what moves timers.
            changeBuffer.recording = .timers(anyKeyTimer: expiry.anyKeyTimer)
            var fired: [(WatchHandler, WatchEvent)] = []
            let replies = readLock.withLock { () -> R in
                let replies = apply(&committed, now, index, &changeBuffer)
                if !changeBuffer.isEmpty { committedIndex = index }
                if !watches.isEmpty { for case .event(let event) in changeBuffer.tree { watches.fire(event, into: &fired) } }
                return replies
            }
            if changeBuffer.isEmpty { return (replies, lastLogged, false) }
            try submit(index)
            trackTimers(now)
            countForSnapshot()
            enqueue(fired)
            // Drop the changes' references now: a value they hold (a list, a hash) would be
            // shared with the trie until the next write and copied whole by it.
            changeBuffer.removeAll()
            return (replies, index, true)  // written to the OS and visible: nothing to wait for
        }
        if headIsCommitted {
            head = committed  // O(1): the two diverge from here
            headIsCommitted = false
        }
        changeBuffer.recording = .all  // the committed state replays them
        let replies = apply(&head, now, index, &changeBuffer)
        if changeBuffer.isEmpty { return (replies, lastLogged, false) }
        try submit(index)
        trackTimers(now)
        countForSnapshot()
        if !immediate || !pending.isEmpty {
            // The buffer moves into the queue and a spare takes its place, each by swapping
            // with an empty record: a record passed by value (into the queue, out of the
            // spares) was copied and the original destroyed, three retains and releases.
            pending.append((index, StoreState.Changes()))
            swap(&changeBuffer, &pending[pending.count - 1].changes)
            if let spare = spareChanges.popLast() { changeBuffer = consume spare }
        } else {
            var fired: [(WatchHandler, WatchEvent)] = []
            readLock.withLock { commitLocked(changeBuffer, index, into: &fired) }
            enqueue(fired)
        }
        changeBuffer.removeAll()
        return (replies, index, false)
    }

    /// The version of a guarded key that is live at `now` in `state`, or nil.
    private static func liveVersion(of watched: KeyGuard, in state: borrowing StoreState, at now: Int64) -> UInt64? {
        watched.db == 0 ? state.keyspace.live(watched.key, at: now)?.version : state.databases[watched.db]?.live(watched.key, at: now)?.version
    }

    /// Makes room in the log for the encoded txn (writer lock held). A txn too large for
    /// one record is refused and the store goes on; any other refusal means the log has failed
    /// (a full disk when making the next segment, a failed sync) and stops the store. Either
    /// way nothing has been applied yet.
    private func reserve() throws(StoreError) {
        do {
            try log.reserve(payloadLength: encodeBuffer.count)
        } catch {
            if case .payloadTooLarge = error { throw .log(error) }
            failure = .log(error)
            throw .log(error)
        }
    }

    /// Logs the prepared txn (writer lock held). Room was made for it, so this fails only if the
    /// log failed meanwhile (a background sync); the store then stops, and under `no` or
    /// `everysec` readers may see this one change until the store is reopened.
    private func submit(_ index: UInt64) throws(StoreError) {
        do {
            let logged = try withBytes(encodeBuffer) { (raw) throws(LogError) -> UInt64 in try log.submit(raw) }
            precondition(logged == index, "the log assigned \(logged), the store expected \(index)")
        } catch {
            failure = .log(error)
            throw .log(error)
        }
    }

    /// Moves the timers the decided txn's changes call for (writer lock held), and wakes the
    /// expirer when one is due before it planned to look.
    private func trackTimers(_ now: Int64) {
        let earliest = expiry.track(&changeBuffer, time: now)
        if earliest != .max { expirer.scheduled(earliest) }
    }

    /// Counts the submitted txn toward the automatic snapshot (writer lock held).
    private func countForSnapshot() {
        txnsSinceSnapshot += 1
        refreshKeyPathHinting()
        bytesSinceSnapshot += encodeBuffer.count
        if (options.snapshotEveryTxns > 0 && txnsSinceSnapshot >= options.snapshotEveryTxns)
            || (options.snapshotEveryBytes > 0 && bytesSinceSnapshot >= options.snapshotEveryBytes) {
            startBackgroundSnapshot()
        }
    }

    /// Runs `body` with the writer lock held (for the expiry driver and session touches).
    func withWriterLock<T>(_ body: () throws -> T) rethrows -> T {
        try writer.withLock { () throws -> T in try body() }
    }

    /// Applies logged txns up to `index` to the committed state and publishes it; `needed` is
    /// the txn its caller answers for (see ``publishLocked(through:needed:)``).
    private func publish(through index: UInt64, needed: UInt64) {
        writer.withLock { publishLocked(through: index, needed: needed) }
    }

    /// Before a commit is waited for: marks head, so that once the txn at `index` (and the
    /// newest pending one) is durable, the committed state becomes the mark instead of replaying
    /// each txn's changes, when the txns pending since the last mark changed at most
    /// ``maxMarkedKeys`` keys of database 0 and nothing else, ``markedChangesPerKey`` changes
    /// a key or more. Hot keys (a counter, a queue, a
    /// lock) are what a mark is for: a replay walked the key's path and assigned its entry once
    /// per txn, a mark costs head one copy of the path's nodes (and of a list's end chunk) per
    /// group commit. Over many keys the copies would cost far more than the replay (SET over
    /// 1M random keys under `always`: 1.5–2× the server's CPU a request, measured), so then no
    /// mark is taken.
    func markHead(covering index: UInt64) {
        writer.withLock { markHeadLocked(covering: index) }
    }

    private func markHeadLocked(covering index: UInt64) {
        guard !headIsCommitted, let newest = pending.last?.index, newest >= index else { return }
        let since = marks.last?.index ?? 0
        if since >= index { return }
        // The keys changed since the last mark: few, or no mark.
        var keys: [Bytes] = []
        var changes = 0
        var position = pending.count - 1
        // (Read in place: a copy of each txn's record cost three retains and releases.)
        while position >= 0 && pending[position].index > since {
            guard pending[position].changes.tree.isEmpty && pending[position].changes.otherDatabasesMade == 0 else { return }
            changes += pending[position].changes.keyspace.recorded.count
            for change in 0..<pending[position].changes.keyspace.recorded.count {
                guard let key = pending[position].changes.keyspace.recorded[change].key else { return }
                if !keys.contains(key) {
                    guard keys.count < Self.maxMarkedKeys else { return }
                    keys.append(key)
                }
            }
            position -= 1
        }
        // Each key's path is copied once per mark (a node of a large table holds up to 32
        // items, each retained), where a replay walks it once per change: worth it only for
        // many changes a key. (Small batches over random keys, `-P 1` under `always`, took 30%
        // more CPU a request when marked.)
        guard changes >= Self.markedChangesPerKey * keys.count else { return }
        marks.append((newest, head))
    }

    /// Most distinct keys the txns of a mark may have changed.
    private static let maxMarkedKeys = 4
    /// Fewest changes a changed key that a mark needs (a pipeline's writes share a txn).
    private static let markedChangesPerKey = 64

    /// Head and committed are two tries that share keys and values but not nodes: each change
    /// is applied to both in place. (Re-sharing head's structure would make the next write copy
    /// its whole path of nodes; a reader holding a view still gets copy-on-write.)
    ///
    /// With a mark at or below `index`, the newest such becomes the committed state (its txns'
    /// watches still fire, in order); txns after it are replayed only if `needed` is among
    /// them; else they wait for their own callers and marks (replaying them now would be
    /// undone by the next mark).
    private func publishLocked(through index: UInt64, needed: UInt64) {
        guard !pending.isEmpty && pending[0].index <= index else { return }
        var markIndex: UInt64 = 0  // 0: none
        var markState = StoreState()
        while let first = marks.first?.index, first <= index {
            markIndex = first
            markState = marks.removeFirst().state
        }
        let limit = markIndex >= needed ? markIndex : index
        let fired = readLock.withLock {
            var fired: [(WatchHandler, WatchEvent)] = []
            var hinted = 0  // pending txns whose paths are hinted, from the first
            while !pending.isEmpty && pending[0].index <= limit {
                var changes = StoreState.Changes()  // the txn's record is swapped in (see decide)
                swap(&changes, &pending[0].changes)
                let txnIndex = pending.removeFirst().index
                if txnIndex <= markIndex {
                    fireLocked(changes, into: &fired)  // the mark holds its changes
                    if txnIndex == markIndex {
                        swap(&committed, &markState)  // the old committed state goes with markState
                        committedIndex = txnIndex
                        publishedByMark += 1
                    }
                } else {
                    if hinted == 0 { hinted = hintReplayPaths(through: limit) }
                    hinted -= 1
                    commitLocked(changes, txnIndex, into: &fired)
                }
                changes.removeAll()
                // A large txn's buffers are not kept: a spare holds its capacity for good.
                if spareChanges.count < Self.maxSpareChanges && changes.capacity <= Self.maxSpareCapacity {
                    spareChanges.append(consume changes)
                }
            }
            return fired
        }
        enqueue(fired)
        if pending.isEmpty && log.fsyncPolicy != .always && !headIsCommitted {
            // Caught up outside `always`: one trie again (drop head so committed is unshared).
            head = StoreState()
            headIsCommitted = true
            marks.removeAll()
        }
    }

    /// Before the next pending txns (up to `index`) are replayed into the committed state,
    /// hints its trie's paths of the keys they change, all at once (``KeyTable/prefetchPaths(_:values:)``):
    /// in a keyspace too large for the cache each replayed write missed on every level, one
    /// after another. Returns how many txns it looked at (at least one). Database 0 only, and
    /// only once it is large: in a small one the paths are cached and the hints only cost.
    private func hintReplayPaths(through index: UInt64) -> Int {
        guard committed.keyspace.count >= Self.hintedKeyspaceSize else { return Int.max }
        return withUnsafeTemporaryAllocation(of: UInt64.self, capacity: KeyTable.maxPrefetchedPaths) { hashes in
            var count = 0, txns = 0
            // By position, not by element: a copy of each txn's change record cost retains.
            while txns < pending.count && pending[txns].index <= index {
                let changes = pending[txns].changes.keyspace.recorded.count
                if txns > 0 && count + changes > hashes.count { break }
                for change in 0..<min(changes, hashes.count - count) {
                    guard let key = pending[txns].changes.keyspace.recorded[change].key else { continue }
                    hashes[count] = KeyTable.hash(key)
                    count += 1
                }
                txns += 1
            }
            committed.keyspace.entries.prefetchPaths(UnsafeBufferPointer(rebasing: hashes[..<count]))
            return max(txns, 1)
        }
    }

    /// Keys in database 0 from which lookups are worth hinting (replays, pipelines).
    private static let hintedKeyspaceSize = 1 << 14

    /// Whether ``hintKeyPaths(writes:reads:)`` would do anything (database 0 is large), read without a
    /// lock: a server asks before it spends time finding a pipeline's keys.
    public var wantsKeyPathHints: Bool { keyPathHinting.load(ordering: .relaxed) }

    /// Updates ``wantsKeyPathHints`` (writer lock held; after every txn, and at open): a count
    /// and a compare, the shared flag stored only when it changes.
    func refreshKeyPathHinting() {
        let wanted = (headIsCommitted ? committed.keyspace.count : head.keyspace.count) >= Self.hintedKeyspaceSize
        if wanted != keyPathHintingMirror {
            keyPathHintingMirror = wanted
            keyPathHinting.store(wanted, ordering: .relaxed)
        }
    }

    /// The last value stored in ``keyPathHinting`` (writer lock held).
    private var keyPathHintingMirror = false

    /// The hash the store's tables place a key of these bytes by (for ``hintKeyPaths(writes:reads:)``).
    public static func keyHash(_ key: UnsafeRawBufferPointer) -> UInt64 {
        KeyHash.siphash(key, key: KeyHash.key, compressionRounds: 1, finalizationRounds: 3)
    }

    /// Starts loading into the cache the paths of database 0's keys with these hashes
    /// (``keyHash(_:)``), which requests about to run will look up: in a keyspace larger than
    /// the cache each lookup misses on every level of the trie in turn, while the hints of a
    /// pipeline's keys overlap their misses (``KeyTable/prefetchPaths(_:values:)``). Writes decide
    /// against head, reads look at the committed state (the same table unless txns wait for a
    /// sync). Only hints: nothing changes, and nothing is done for a small keyspace.
    ///
    /// ```swift
    /// if store.wantsKeyPathHints { store.hintKeyPaths(writes: setKeys, reads: getKeys) }
    /// ```
    public func hintKeyPaths(writes: UnsafeBufferPointer<UInt64>, reads: UnsafeBufferPointer<UInt64>) {
        guard writes.count + reads.count > 1 else { return }  // one walk alone has nothing to overlap
        writer.withLock {
            guard committed.keyspace.count >= Self.hintedKeyspaceSize else { return }
            if headIsCommitted {
                committed.keyspace.entries.prefetchPaths(writes)
            } else {
                head.keyspace.entries.prefetchPaths(writes)
            }
            // Only writers change the committed state, and this thread holds their lock.
            committed.keyspace.entries.prefetchPaths(reads, values: true)
        }
    }

    /// Applies one txn's changes to the committed state and collects the watches they fire
    /// (read lock held: a watch registered with a read sees every change after that read).
    private func commitLocked(_ changes: borrowing StoreState.Changes, _ index: UInt64, into fired: inout [(WatchHandler, WatchEvent)]) {
        committed.apply(changes)
        committedIndex = index
        fireLocked(changes, into: &fired)
    }

    /// Collects the watches a committed txn's changes fire (read lock held).
    private func fireLocked(_ changes: borrowing StoreState.Changes, into fired: inout [(WatchHandler, WatchEvent)]) {
        guard !watches.isEmpty else { return }
        for case .event(let event) in changes.tree { watches.fire(event, into: &fired) }
    }

    /// Queues fired events (called with the writer lock held, so queues fill in index order) and
    /// delivers them once the caller's locks are released.
    private func enqueue(_ fired: [(WatchHandler, WatchEvent)]) {
        guard !fired.isEmpty else { return }
        deliveryLock.withLock { deliveries.append(contentsOf: fired) }
        queuedEvents.add(fired.count, ordering: .relaxed)
    }

    /// Calls queued watch handlers in order, outside every lock but the delivery flag's; one
    /// thread at a time, so handlers see events in index order.
    private func deliver() {
        while queuedEvents.load(ordering: .relaxed) > 0 {
            let next: (WatchHandler, WatchEvent)? = deliveryLock.withLock {
                if delivering { return nil }
                guard let first = deliveries.popFirst() else { return nil }
                delivering = true
                queuedEvents.subtract(1, ordering: .relaxed)
                return first
            }
            guard let (handler, event) = next else { return }
            handler(event)
            deliveryLock.withLock { delivering = false }
        }
    }

    /// Registers a watch under the read lock, optionally with a read of the committed state.
    func registerWatch<T>(_ kind: (StoreState) -> WatchKind?, path: String, _ handler: @escaping WatchHandler, read: (StoreState) throws -> T) rethrows -> T {
        try readLock.withLock {
            let value = try read(committed)
            if let kind = kind(committed) { _ = watches.add(kind, path: path, handler) }
            return value
        }
    }

    /// Adds a persistent (or persistent recursive) watch: `addWatch`. With `immediate`, the
    /// handler is called as each change commits, under the store's read lock: it must only hand
    /// the event on (see ``readTree(handler:_:)``).
    public func addWatch(_ path: String, recursive: Bool, immediate: Bool = false, _ handler: @escaping WatchHandler) throws -> WatchID {
        try ZPath.validate(path)
        return readLock.withLock { watches.add(recursive ? .persistentRecursive : .persistent, path: path, immediate: immediate, handler) }
    }

    /// For servers: reads the committed tree and its zxid (the index of the last committed
    /// txn) and, in the same hold of the lock commits take, sets the watches `body` asks for, so
    /// no change can fall between the read and the watch. Each watch's handler (from
    /// `handler`) is called as the change that fires it commits, with that lock held: it must
    /// only queue the event (for the connection to send before its next reply, as ZooKeeper
    /// requires), never call the store.
    ///
    /// ```swift
    /// let (stat, zxid, set) = store.readTree(handler: { kind, path in { event in outbox.append(event) } }) { tree, _ in
    ///     (tree.nodes["/config"]?.stat, [(.data, "/config")])
    /// }
    /// ```
    public func readTree<T>(
        handler: (WatchKind, String) -> WatchHandler, _ body: (ZTree, Int64) throws -> (T, watches: [(WatchKind, String)])
    ) rethrows -> (value: T, zxid: Int64, watches: [(kind: WatchKind, path: String, id: WatchID)]) {
        try readLock.withLock {
            let zxid = Int64(bitPattern: committedIndex)
            let (value, wanted) = try body(committed.tree, zxid)
            let set = wanted.map { (kind: $0.0, path: $0.1, id: watches.add($0.0, path: $0.1, immediate: true, handler($0.0, $0.1))) }
            return (value, zxid, set)
        }
    }

    /// Reads the committed tree and its zxid, under the read lock (keep `body` short).
    public func readTree<T>(_ body: (ZTree, Int64) throws -> T) rethrows -> T {
        try readLock.withLock { try body(committed.tree, Int64(bitPattern: committedIndex)) }
    }

    /// Removes a watch; false if it had already fired or been removed.
    @discardableResult
    public func removeWatch(_ id: WatchID) -> Bool {
        readLock.withLock { watches.remove(id) }
    }

    /// Watches registered now (one-shot ones that have not fired, and persistent ones).
    public var watchCount: Int { readLock.withLock { watches.count } }

    /// Runs `operations` as one txn and returns once it is committed under the fsync policy.
    /// With `guards` (from ``versions(_:db:)``), nothing runs and nil is returned when a
    /// guarded key changed: what `WATCH` + `EXEC` needs.
    public func execute(_ operations: [Operation], guards: [KeyGuard] = []) throws(StoreError) -> [Reply]? {
        let (replies, index, settled) = try decide({ _ in operations }, guards: guards, apply: Self.applyAll)
        try complete(index, settled: settled)
        return replies
    }

    /// Async form of ``execute(_:guards:)``: suspends while the sync runs, never blocks a thread.
    public func execute(_ operations: [Operation], guards: [KeyGuard] = []) async throws(StoreError) -> [Reply]? {
        let (replies, index, settled) = try decide({ _ in operations }, guards: guards, apply: Self.applyAll)
        try await complete(index, settled: settled)
        return replies
    }

    /// Runs one operation and returns its reply (no array is made on the way).
    func run(_ operation: Operation) throws(StoreError) -> Reply {
        let (reply, index, settled) = try decideOne(operation)
        try complete(index, settled: settled)
        return reply
    }

    func run(_ operation: Operation) async throws(StoreError) -> Reply {
        let (reply, index, settled) = try decideOne(operation)
        try await complete(index, settled: settled)
        return reply
    }

    static func applyAll(_ state: inout StoreState, _ txn: Txn, _ index: UInt64, _ changes: inout StoreState.Changes) -> [Reply] {
        state.apply(txn, index: index, changes: &changes)
    }

    /// Waits until the txn at `index` is committed (unless it already is), makes it visible,
    /// and delivers the watch events it fired.
    func complete(_ index: UInt64, settled: Bool) throws(StoreError) {
        if !settled {
            markHead(covering: index)
            do { try log.waitForCommit(index) } catch { throw .log(error) }
            publish(through: log.durableOrWrittenIndex(index), needed: index)
        }
        deliver()
    }

    func complete(_ index: UInt64, settled: Bool) async throws(StoreError) {
        if !settled {
            markHead(covering: index)
            do { try await log.commit(index) } catch { throw .log(error) }
            publish(through: log.durableOrWrittenIndex(index), needed: index)
        }
        deliver()
    }

    // MARK: Reading

    /// A consistent view of the committed keyspace of database `db` at this moment, and the
    /// time to judge expiry by.
    public func readView(db: Int = 0) -> (keyspace: Keyspace, now: Int64) {
        (readLock.withLock { db == 0 ? committed.keyspace : committed.keyspace(db) }, clock.nowMilliseconds())
    }

    /// The committed entry of `key` unless it has expired. The clock is read only for keys that
    /// have a deadline: most reads need no time at all.
    public func liveEntry(_ key: Bytes, db: Int = 0) -> Entry? {
        live(readLock.withLock { db == 0 ? committed.keyspace.entries[key] : committed.databases[db]?.entries[key] })
    }

    /// ``liveEntry(_:db:)`` of the key with these bytes, without making a ``Bytes`` of them.
    public func liveEntry(bytes key: UnsafeRawBufferPointer, db: Int = 0) -> Entry? {
        live(readLock.withLock { db == 0 ? committed.keyspace.entries[bytes: key] : committed.databases[db]?.entries[bytes: key] })
    }

    /// The entry unless it has expired.
    private func live(_ entry: Entry?) -> Entry? {
        guard let entry else { return nil }
        if entry.expiresAt != 0 && entry.expiresAt <= clock.nowMilliseconds() { return nil }
        return entry
    }

    /// A consistent view of everything committed: keyspace and tree.
    public func stateView() -> StoreState {
        readLock.withLock { committed }
    }

    /// The committed state and the index of its last txn, taken together (for a snapshot).
    func committedView() -> (StoreState, UInt64) {
        readLock.withLock { (committed, committedIndex) }
    }
}

extension Log {
    /// The highest index known committed once `index` is: everything durable, at least `index`.
    func durableOrWrittenIndex(_ index: UInt64) -> UInt64 { Swift.max(index, durableLogIndex) }
}
