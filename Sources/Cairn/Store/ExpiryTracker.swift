import CairnStorage

/// A key of one database.
struct DatabaseKey: Hashable {
    var db: Int
    var key: Bytes
}

/// What a timer of the store's expiry wheel stands for.
enum ExpiryTarget {
    case key(DatabaseKey)
    case node(String)
    case session(Int64)
}

/// The store's timers: one ``TimingWheel`` for key deadlines, TTL and container znodes and
/// session timeouts, and the timer of each target, so that a change moves or cancels it.
///
/// Timers are not state: nothing here is logged. They follow the changes txns make
/// (``track(_:time:)``), are rebuilt from the state on open, and when one fires the store
/// proposes a txn (``takeDue(at:limit:)``) that re-checks its condition against the txn's own
/// time, so a timer that is late, early or stale can never make replay differ.
/// Guarded by the store's writer lock.
struct ExpiryTracker {
    private var wheel: TimingWheel<ExpiryTarget>
    private var keyTimers: [DatabaseKey: TimerID] = [:]
    private var nodeTimers: [String: TimerID] = [:]
    private var sessionTimers: [Int64: (timer: TimerID, timeout: Int64)] = [:]
    /// Timers fired and txns proposed for them since open.
    private(set) var fired = 0
    private(set) var proposedTxns = 0

    init(now: Int64) {
        wheel = TimingWheel(startMilliseconds: now)
    }

    /// Timers pending, by kind.
    var pendingKeys: Int { keyTimers.count }
    /// True when some key has a timer (a change to any key may then have to move one).
    var anyKeyTimer: Bool { !keyTimers.isEmpty }
    var pendingNodes: Int { nodeTimers.count }
    var pendingSessions: Int { sessionTimers.count }

    /// When the next timer may be due (milliseconds), or nil when none is pending.
    var nextDeadline: Int64? { wheel.nextDeadline() }

    /// True when ``takeDue(at:limit:)`` at `now` has work to do.
    func isDue(at now: Int64) -> Bool { wheel.isDue(at: now) }

    /// Starts, moves or cancels timers for what one txn at `time` changed. Returns the earliest
    /// deadline it scheduled (`Int64.max` for none), so a sleeping driver can be woken.
    /// `changes` is only read: `inout` passes the store's buffer by address, where a plain
    /// argument read from the store's property would retain its three arrays on every write.
    mutating func track(_ changes: inout StoreState.Changes, time: Int64) -> Int64 {
        var earliest = Int64.max
        // In place (a for-in loop would copy each change); nothing to do for a put without a
        // deadline while no key has a timer, the common case.
        changes.keyspace.recorded.withUnsafeBufferPointer { keyspace in
            for i in keyspace.indices where !keyTimers.isEmpty || KeyspaceChange.setsDeadline(keyspace[i]) {
                trackKey(keyspace[i], db: 0, &earliest)
            }
        }
        if changes.otherDatabasesMade == 0 && changes.tree.isEmpty { return earliest }  // (a loop over an empty array still retains it)
        for (db, change) in changes.otherDatabases { trackKey(change, db: db, &earliest) }
        for change in changes.tree {
            switch change {
            case .put(let path, let node):
                if let deadline = node.ttlDeadline {  // created or modified: the TTL starts again
                    Self.set(&wheel, &nodeTimers, path, .node(path), at: deadline)
                    earliest = min(earliest, deadline)
                }
            case .remove(let path):
                if !nodeTimers.isEmpty { Self.cancel(&wheel, &nodeTimers, path) }
            case .childRemoved(let parent, _, let stat) where stat.numChildren == 0:
                // A container that lost its last child goes now; a TTL node once its TTL passed.
                var deadline: Int64?
                if stat.ephemeralOwner == EphemeralOwner.container {
                    deadline = time
                } else if let ttl = EphemeralOwner.ttlValue(stat.ephemeralOwner) {
                    deadline = max(time, stat.mtime &+ ttl &+ 1)
                }
                if let deadline {
                    Self.set(&wheel, &nodeTimers, parent, .node(parent), at: deadline)
                    earliest = min(earliest, deadline)
                }
            case .sessionOpened(let id, let timeout):
                let deadline = time &+ timeout
                sessionTimers[id] = (wheel.schedule(at: deadline, .session(id)), timeout)
                earliest = min(earliest, deadline)
            case .sessionClosed(let id):
                if let (timer, _) = sessionTimers.removeValue(forKey: id) { wheel.cancel(timer) }
            case .childAdded, .childRemoved, .event, .ephemeralAdded, .ephemeralRemoved:
                break
            }
        }
        return earliest
    }

    private mutating func trackKey(_ change: KeyspaceChange, db: Int, _ earliest: inout Int64) {
        switch change {
        case .put(let key, let entry):
            if entry.expiresAt != 0 {
                let target = DatabaseKey(db: db, key: key)
                Self.set(&wheel, &keyTimers, target, .key(target), at: entry.expiresAt)
                earliest = min(earliest, entry.expiresAt)
            } else if !keyTimers.isEmpty {
                Self.cancel(&wheel, &keyTimers, DatabaseKey(db: db, key: key))
            }
        case .remove(let key):
            if !keyTimers.isEmpty { Self.cancel(&wheel, &keyTimers, DatabaseKey(db: db, key: key)) }
        case .clear:
            for (target, timer) in keyTimers where target.db == db {
                wheel.cancel(timer)
                keyTimers[target] = nil
            }
        case .listPushed, .listPopped, .appended:
            break  // the list's deadline is unchanged
        }
    }

    /// Schedules the timers a state needs: every key deadline, every childless TTL node and
    /// emptied container, and every session with a full timeout from `now`.
    mutating func rebuild(from state: StoreState, now: Int64) {
        for db in 0..<StoreState.databaseCount {
            for (key, entry) in state.keyspace(db).entries where entry.expiresAt != 0 {
                let target = DatabaseKey(db: db, key: key)
                keyTimers[target] = wheel.schedule(at: entry.expiresAt, .key(target))
            }
        }
        for (path, node) in state.tree.nodes where node.children.isEmpty {
            if let deadline = node.ttlDeadline {
                nodeTimers[path] = wheel.schedule(at: deadline, .node(path))
            } else if node.kind == .container && node.stat.cversion > 0 {
                nodeTimers[path] = wheel.schedule(at: now, .node(path))
            }
        }
        for (id, session) in state.tree.sessions {
            sessionTimers[id] = (wheel.schedule(at: now &+ session.timeout, .session(id)), session.timeout)
        }
    }

    /// Restarts a session's timeout from `now`; false when it is not open (or already fired).
    mutating func touch(_ session: Int64, now: Int64) -> Bool {
        guard let (timer, timeout) = sessionTimers[session], let moved = wheel.reschedule(timer, at: now &+ timeout) else { return false }
        sessionTimers[session] = (moved, timeout)
        return true
    }

    /// Takes the timers due by `now`, at most `limit` of them fired or cascaded, and returns the
    /// operations that expire their targets (one txn's worth) and how many timers fired.
    mutating func takeDue(at now: Int64, limit: Int) -> (operations: [Operation], fired: Int) {
        var keys: [DatabaseKey] = []
        var paths: [String] = []
        var sessions: [Int64] = []
        let fired = wheel.advance(to: now, limit: limit) { target, _ in
            switch target {
            case .key(let key): keys.append(key)
            case .node(let path): paths.append(path)
            case .session(let id): sessions.append(id)
            }
        }
        for key in keys { keyTimers[key] = nil }
        for path in paths { nodeTimers[path] = nil }
        for id in sessions { sessionTimers[id] = nil }
        var operations: [Operation] = []
        var byDatabase: [Int: [Bytes]] = [:]
        for target in keys { byDatabase[target.db, default: []].append(target.key) }
        for (db, expired) in byDatabase.sorted(by: { $0.key < $1.key }) {
            operations.append(db == 0 ? .expireKeys(expired) : .inDatabase(db, .expireKeys(expired)))
        }
        if !paths.isEmpty { operations.append(.expireNodes(paths)) }
        for id in sessions { operations.append(.closeSession(id)) }
        self.fired += fired
        if !operations.isEmpty { proposedTxns += 1 }
        return (operations, fired)
    }

    private static func set<Target: Hashable>(
        _ wheel: inout TimingWheel<ExpiryTarget>, _ timers: inout [Target: TimerID], _ target: Target,
        _ payload: @autoclosure () -> ExpiryTarget, at deadline: Int64
    ) {
        if let timer = timers[target], let moved = wheel.reschedule(timer, at: deadline) {
            timers[target] = moved
        } else {
            timers[target] = wheel.schedule(at: deadline, payload())
        }
    }

    private static func cancel<Target: Hashable>(_ wheel: inout TimingWheel<ExpiryTarget>, _ timers: inout [Target: TimerID], _ target: Target) {
        if let timer = timers.removeValue(forKey: target) { wheel.cancel(timer) }
    }
}
