import CairnStorage
import Synchronization

/// Active expiry: when timers of the wheel fall due, the store proposes txns that expire their
/// targets through the normal write path (logged, group committed, replayed like any change).
///
/// A background thread does it when ``StoreOptions/activeExpiry`` is on; ``Store/expireDue()``
/// does the same on demand (deterministic tests drive it with a manual clock). Due timers go in
/// slices of ``StoreOptions/expirySlice``: the writer lock is released between slices, and while
/// more are due each slice is followed by a pause three times as long as it took, so a long run
/// of expiry takes at most about a quarter of a core (Redis caps its active expiry at 25% CPU
/// for the same reason) and a write never waits behind more than one slice.
extension Store {
    /// Expires every target due now, slice by slice (one txn each); returns how many timers fired.
    @discardableResult
    public func expireDue() throws(StoreError) -> Int {
        var total = 0
        while true {
            let (fired, more) = try expireSlice()
            total += fired
            if !more { return total }
        }
    }

    /// Expires one slice of due timers as one txn; returns how many fired and whether more are
    /// due now.
    func expireSlice() throws(StoreError) -> (fired: Int, more: Bool) {
        var fired = 0
        var more = false
        let (_, index, settled) = try decide({ now in
            let due = expiry.takeDue(at: now, limit: expirySlice)
            fired = due.fired
            more = expiry.isDue(at: now)
            return due.operations
        }, guards: [], apply: Self.applyAll)
        try complete(index, settled: settled)
        return (fired, more)
    }

    /// Timers pending now: key deadlines, TTL and container znodes, open sessions.
    public var pendingTimers: (keys: Int, nodes: Int, sessions: Int) {
        withWriterLock { (expiry.pendingKeys, expiry.pendingNodes, expiry.pendingSessions) }
    }

    /// Since open: timers fired, and the expire txns proposed for them.
    public var expiryCounts: (fired: Int, txns: Int) {
        withWriterLock { (expiry.fired, expiry.proposedTxns) }
    }

    func startExpirer() {
        expirer.start()
        startThread(name: "cairn-expiry") { [self] in runExpirer() }
    }

    /// Stops the background expirer (if running) and waits until it has finished its slice.
    func stopExpirer() {
        expirer.stop()
    }

    private func runExpirer() {
        defer { expirer.finished() }
        while expirer.isRunning {
            let now = clock.nowMilliseconds()
            let next = withWriterLock { () -> Int64? in
                let next = expiry.nextDeadline
                expirer.plan(next ?? .max)
                return next
            }
            guard let next, next <= now else {
                // Sleep until the next deadline; a timer scheduled earlier wakes us. Capped, so a
                // clock that jumps (or a manual one) is noticed within the cap.
                let milliseconds = next.map { min($0 - now, ExpirerControl.maxSleepMilliseconds) } ?? ExpirerControl.maxSleepMilliseconds
                expirer.sleep(nanoseconds: UInt64(milliseconds) * 1_000_000)
                continue
            }
            let started = monotonicNanoseconds()
            let more: Bool
            do { more = try expireSlice().more } catch {
                return  // the store has failed: every write reports it; nothing more to expire
            }
            if more {
                // Pace a long run at 25%: at 50% the writer's p99 under `always` was 1.8 ms, at
                // 25% it is 0.05 ms (cairn bench expiry).
                expirer.sleep(nanoseconds: 3 * (monotonicNanoseconds() - started))
            }
        }
    }
}

/// The background expirer's lifecycle and wake-ups.
final class ExpirerControl: @unchecked Sendable {
    static let maxSleepMilliseconds: Int64 = 100

    private enum Phase { case idle, running, stopping, stopped }

    private let signal = ConditionLock()
    private var phase = Phase.idle
    private var wakeRequested = false
    /// When the expirer means to look next (ms): a timer scheduled earlier wakes it.
    private let plannedWake = Atomic<Int64>(.max)

    var isRunning: Bool { signal.withLock { phase == .running } }

    func start() { signal.withLock { phase = .running } }

    /// Called by the expirer with the writer lock held, so no timer scheduled after it is missed.
    func plan(_ wake: Int64) { plannedWake.store(wake, ordering: .relaxed) }

    /// A timer was scheduled for `deadline`: wakes the expirer if it planned to look later.
    func scheduled(_ deadline: Int64) {
        guard deadline < plannedWake.load(ordering: .relaxed) else { return }
        plannedWake.store(deadline, ordering: .relaxed)
        signal.withLock {
            wakeRequested = true
            signal.signal()
        }
    }

    /// Sleeps up to `nanoseconds` unless woken (or stopped) first.
    func sleep(nanoseconds: UInt64) {
        signal.withLock {
            if !wakeRequested && phase == .running && nanoseconds > 0 { signal.wait(nanoseconds: nanoseconds) }
            wakeRequested = false
        }
    }

    func stop() {
        signal.withLock {
            guard phase == .running else { return }
            phase = .stopping
            signal.broadcast()
            while phase == .stopping { signal.wait() }
        }
    }

    func finished() {
        signal.withLock {
            phase = .stopped
            signal.broadcast()
        }
    }
}
