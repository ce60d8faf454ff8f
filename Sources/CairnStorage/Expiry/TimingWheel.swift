/// Identifies a scheduled timer; stale after it fires or is cancelled (its generation moves on).
public struct TimerID: Hashable, Sendable {
    let index: UInt32
    let generation: UInt32
}

/// A hierarchical timing wheel (Varghese & Lauck): O(1) schedule and cancel, and advancing
/// that jumps straight to the next occupied slot, so an idle wheel costs nothing.
///
/// Six levels of 64 slots cover 2^36 ticks (about 795 days at the default 1 ms tick); later
/// deadlines wait in an overflow list that is re-examined when the top level turns over. A timer
/// lives in level `l` when its deadline first differs from "now" in the `l`-th group of six
/// bits, so every timer of a lower level is due before any of a higher one; a higher-level slot
/// is cascaded down when time reaches it, and level-0 slots are exact ticks.
///
/// Timers are kept in one slab of parallel arrays with intrusive doubly linked lists per slot
/// and a free list: scheduling allocates nothing once the slab has grown, and a timer costs
/// 20 bytes plus its payload. Time is passed in (the caller owns the clock), so tests are exact.
///
/// ```swift
/// var wheel = TimingWheel<String>(startMilliseconds: 0)
/// let id = wheel.schedule(at: 1500, "session 7")
/// wheel.cancel(id)                          // or let it fire:
/// wheel.advance(to: 2000) { payload, deadline in print(payload, deadline) }
/// ```
public struct TimingWheel<Payload> {
    public static var levels: Int { 6 }
    static var slotBits: Int { 6 }
    static var slots: Int { 64 }

    public let tickMilliseconds: Int64
    /// The current tick: everything due at or before it has fired.
    public private(set) var now: UInt64

    // The slab: one entry per timer (parallel arrays keep entries small and unboxed).
    private var deadlines: [UInt64] = []
    private var next: [Int32] = []
    private var prev: [Int32] = []
    private var generations: [UInt32] = []
    /// Where the entry lives: level * 64 + slot, `overflowSlot`, or -1 when free.
    private var homes: [Int16] = []
    private var payloads: [Payload?] = []
    private var freeHead: Int32 = -1

    /// Heads of the slot lists, level * 64 + slot; -1 for empty.
    private var heads: [Int32]
    /// One bit per occupied slot, per level.
    private var occupied: [UInt64]
    private var overflow: Int32 = -1
    private static var overflowSlot: Int16 { Int16(levels * slots) }

    public private(set) var count = 0

    public init(tickMilliseconds: Int64 = 1, startMilliseconds: Int64) {
        precondition(tickMilliseconds > 0, "the tick must be positive")
        self.tickMilliseconds = tickMilliseconds
        now = UInt64(max(0, startMilliseconds) / tickMilliseconds)
        heads = [Int32](repeating: -1, count: Self.levels * Self.slots)
        occupied = [UInt64](repeating: 0, count: Self.levels)
    }

    /// Bytes the wheel holds per slab entry (beyond what the payload itself points to).
    public static var bytesPerTimer: Int {
        MemoryLayout<UInt64>.stride + 2 * MemoryLayout<Int32>.stride + MemoryLayout<UInt32>.stride
            + MemoryLayout<Int16>.stride + MemoryLayout<Payload?>.stride
    }

    /// The tick a deadline in milliseconds falls due at (rounded up: a timer never fires early).
    @inline(__always) func tick(_ milliseconds: Int64) -> UInt64 {
        guard milliseconds > 0 else { return 0 }
        return UInt64((milliseconds + tickMilliseconds - 1) / tickMilliseconds)
    }

    // MARK: Scheduling

    /// Schedules `payload` for `deadline` (milliseconds). A deadline already past fires on the
    /// next ``advance(to:limit:_:)``.
    @discardableResult
    public mutating func schedule(at deadline: Int64, _ payload: Payload) -> TimerID {
        let index: Int32
        if freeHead >= 0 {
            index = freeHead
            freeHead = next[Int(index)]
            payloads[Int(index)] = payload
        } else {
            precondition(deadlines.count < Int(Int32.max), "too many timers")
            index = Int32(deadlines.count)
            deadlines.append(0)
            next.append(-1)
            prev.append(-1)
            generations.append(0)
            homes.append(-1)
            payloads.append(payload)
        }
        let i = Int(index)
        deadlines[i] = tick(deadline)
        place(index)
        count += 1
        return TimerID(index: UInt32(index), generation: generations[i])
    }

    /// Cancels a timer; returns its payload, or nil if it already fired or was cancelled.
    @discardableResult
    public mutating func cancel(_ id: TimerID) -> Payload? {
        let i = Int(id.index)
        guard i < generations.count, generations[i] == id.generation, homes[i] >= 0 else { return nil }
        unlink(Int32(i))
        return release(Int32(i))
    }

    /// Moves a timer to a new deadline (cancel + schedule); nil if it is no longer scheduled.
    public mutating func reschedule(_ id: TimerID, at deadline: Int64) -> TimerID? {
        guard let payload = cancel(id) else { return nil }
        return schedule(at: deadline, payload)
    }

    /// The deadline of a scheduled timer in ticks, or nil.
    public func deadlineTick(_ id: TimerID) -> UInt64? {
        let i = Int(id.index)
        guard i < generations.count, generations[i] == id.generation, homes[i] >= 0 else { return nil }
        return deadlines[i]
    }

    private mutating func release(_ index: Int32) -> Payload? {
        let i = Int(index)
        let payload = payloads[i]
        payloads[i] = nil
        generations[i] &+= 1
        homes[i] = -1
        next[i] = freeHead
        freeHead = index
        count -= 1
        return payload
    }

    /// Puts an entry in the slot its deadline belongs to, relative to `now`.
    private mutating func place(_ index: Int32) {
        let i = Int(index)
        let deadline = max(deadlines[i], now)  // overdue: the current tick
        let differing = deadline ^ now
        let level = differing == 0 ? 0 : (63 - differing.leadingZeroBitCount) / Self.slotBits
        let home: Int16
        if level >= Self.levels {
            home = Self.overflowSlot
            overflow = link(index, before: overflow)
        } else {
            let slot = Int(deadline >> UInt64(level * Self.slotBits)) & (Self.slots - 1)
            home = Int16(level * Self.slots + slot)
            heads[Int(home)] = link(index, before: heads[Int(home)])
            occupied[level] |= 1 << UInt64(slot)
        }
        homes[i] = home
    }

    /// Links an entry in front of a list; returns the new head.
    private mutating func link(_ index: Int32, before head: Int32) -> Int32 {
        let i = Int(index)
        prev[i] = -1
        next[i] = head
        if head >= 0 { prev[Int(head)] = index }
        return index
    }

    private mutating func unlink(_ index: Int32) {
        let i = Int(index)
        let home = homes[i]
        if prev[i] >= 0 { next[Int(prev[i])] = next[i] }
        if next[i] >= 0 { prev[Int(next[i])] = prev[i] }
        if home == Self.overflowSlot {
            if overflow == index { overflow = next[i] }
        } else {
            let h = Int(home)
            if heads[h] == index {
                heads[h] = next[i]
                if heads[h] < 0 { occupied[h / Self.slots] &= ~(1 << UInt64(h % Self.slots)) }
            }
        }
    }

    // MARK: Advancing

    /// The tick of the earliest occupied slot (the deadline of level-0 timers; for a higher
    /// level, when its slot must be cascaded), or nil when the wheel is empty.
    private func nextEvent() -> (tick: UInt64, level: Int, slot: Int)? {
        // A higher-level slot at the current position is one whose cascade a limit cut short
        // (placement never puts a timer there): it goes first, its timers may be due soonest.
        for level in 1..<Self.levels where occupied[level] != 0 {
            let current = Int(now >> UInt64(level * Self.slotBits)) & (Self.slots - 1)
            if occupied[level] & (1 << UInt64(current)) != 0 { return (now, level, current) }
        }
        for level in 0..<Self.levels where occupied[level] != 0 {
            let shift = UInt64(level * Self.slotBits)
            let current = Int(now >> shift) & (Self.slots - 1)
            // Slots at or after the current one, in this turn of the level.
            let ahead = occupied[level] >> UInt64(current)
            precondition(ahead != 0, "a timer sits behind the wheel's position")
            let slot = current + ahead.trailingZeroBitCount
            let levelStart = now & ~((1 << (shift + UInt64(Self.slotBits))) - 1)
            let tick = max(now, levelStart + (UInt64(slot) << shift))
            return (tick, level, slot)
        }
        return nil
    }

    /// When a driver should next call ``advance(to:limit:_:)``, in milliseconds, or nil when
    /// nothing is scheduled: the next level-0 deadline, or the start of the next higher-level
    /// slot to cascade (O(1); no timer is due before it). Not later than the earliest deadline.
    public func nextDeadline() -> Int64? {
        if let event = nextEvent() { return Int64(event.tick) * tickMilliseconds }
        guard overflow >= 0 else { return nil }
        var earliest = UInt64.max
        var entry = overflow
        while entry >= 0 { earliest = min(earliest, deadlines[Int(entry)]); entry = next[Int(entry)] }
        return Int64(earliest) * tickMilliseconds
    }

    /// Advances time to `milliseconds`, calling `fire` for every timer due by then, in deadline
    /// order. At most `limit` timers are fired *or moved down a level* per call (a million timers
    /// due at once sit in one higher-level slot; cascading it is work too): the rest stay due for
    /// the next call, so expiring a million keys happens in bounded slices. Returns how many
    /// fired; ``isDue(at:)`` tells whether anything due is left.
    @discardableResult
    public mutating func advance(to milliseconds: Int64, limit: Int = .max, _ fire: (Payload, Int64) -> Void) -> Int {
        let target = UInt64(max(0, milliseconds) / tickMilliseconds)
        var fired = 0
        var work = 0
        while work < limit {
            guard let event = nextEvent(), event.tick <= target else {
                // Nothing in the wheel is due. Moving to the target may enter a new span of the
                // top level, which brings overflow timers in; they are looked at again.
                guard overflow >= 0, target > now else { break }
                moveNow(to: target)
                continue
            }
            moveNow(to: event.tick)
            let home = event.level * Self.slots + event.slot
            if event.level > 0 {
                // Cascade: the slot's timers go to lower levels, relative to the new "now". Cut
                // short by the limit, the rest stay at the current position (see nextEvent).
                var entry = heads[home]
                while entry >= 0 && work < limit {
                    let following = next[Int(entry)]
                    place(entry)
                    entry = following
                    work += 1
                }
                heads[home] = entry
                if entry >= 0 { prev[Int(entry)] = -1 } else { occupied[event.level] &= ~(1 << UInt64(event.slot)) }
                continue
            }
            // Level 0: every timer here is due now.
            while work < limit, heads[home] >= 0 {
                let entry = heads[home]
                let deadline = deadlines[Int(entry)]
                unlink(entry)
                let payload = release(entry)!
                fired += 1
                work += 1
                fire(payload, Int64(deadline) * tickMilliseconds)
            }
        }
        // Stopped by the limit: stay where the remaining due timers are.
        if work < limit { moveNow(to: max(now, target)) }
        return fired
    }

    /// True when a call of ``advance(to:limit:_:)`` to `milliseconds` has work to do: a timer
    /// due, or a slot to cascade, by then.
    public func isDue(at milliseconds: Int64) -> Bool {
        guard let next = nextDeadline() else { return false }
        return next <= milliseconds
    }

    /// Moves "now" forward. Timers in the wheel always lie in the current span of 2^36 ticks
    /// and overflow timers in later ones, so entering a new span (which happens only when
    /// nothing in the wheel is due) re-places the overflow timers, due or not.
    private mutating func moveNow(to tick: UInt64) {
        guard tick > now else { return }
        let span = UInt64(Self.levels * Self.slotBits)
        let crossed = (tick >> span) != (now >> span)
        now = tick
        guard crossed, overflow >= 0 else { return }
        var entry = overflow
        overflow = -1
        while entry >= 0 {
            let following = next[Int(entry)]
            place(entry)
            entry = following
        }
    }
}
