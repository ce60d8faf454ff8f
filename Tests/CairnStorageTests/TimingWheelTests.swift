import CairnStorage
import CairnTesting
import Testing

@Suite struct TimingWheelTests {
    /// Drives a wheel to `time`, returning (payload, deadline, fired-at) triples.
    func run(_ wheel: inout TimingWheel<Int>, to time: Int64, limit: Int = .max) -> [(Int, Int64)] {
        var fired: [(Int, Int64)] = []
        wheel.advance(to: time, limit: limit) { payload, deadline in fired.append((payload, deadline)) }
        return fired
    }

    @Test func firesAtTheRightTickAcrossLevelBoundaries() {
        var wheel = TimingWheel<Int>(startMilliseconds: 0)
        // Deadlines around every level boundary (64^k) and a few in between.
        var deadlines: [Int64] = [1, 2, 63, 64, 65, 100, 4095, 4096, 4097, 262_143, 262_144, 16_777_216, 1 << 30, (1 << 32) + 5]
        deadlines.append(contentsOf: [68_719_476_735, 68_719_476_736, 68_719_476_737])  // 2^36 ± 1: the overflow
        for (i, deadline) in deadlines.enumerated() { wheel.schedule(at: deadline, i) }
        #expect(wheel.count == deadlines.count)
        for (i, deadline) in deadlines.enumerated() {
            // Nothing fires a tick early.
            #expect(run(&wheel, to: deadline - 1).isEmpty, "before \(deadline)")
            let fired = run(&wheel, to: deadline)
            #expect(fired.map(\.0) == [i], "at \(deadline): \(fired)")
            #expect(fired.first?.1 == deadline)
        }
        #expect(wheel.count == 0)
        #expect(wheel.nextDeadline() == nil)
    }

    @Test func firesInDeadlineOrderWhenAdvancedFarAtOnce() {
        var wheel = TimingWheel<Int>(startMilliseconds: 1000)
        var rng = SplitMix64(seed: 9)
        var expected: [(Int64, Int)] = []
        for i in 0..<5000 {
            let deadline = 1000 + Int64(rng.next() % 10_000_000)
            wheel.schedule(at: deadline, i)
            expected.append((deadline, i))
        }
        let fired = run(&wheel, to: 20_000_000)
        #expect(fired.count == 5000)
        let deadlines = fired.map(\.1)
        #expect(deadlines == deadlines.sorted(), "fired out of order")
        #expect(Set(fired.map(\.0)) == Set(expected.map(\.1)))
    }

    @Test func pastDeadlinesFireOnTheNextAdvance() {
        var wheel = TimingWheel<Int>(startMilliseconds: 500)
        wheel.schedule(at: 10, 1)
        wheel.schedule(at: 500, 2)
        #expect(run(&wheel, to: 500).map(\.0).sorted() == [1, 2])
    }

    @Test func cancelAndReschedule() {
        var wheel = TimingWheel<Int>(startMilliseconds: 0)
        let a = wheel.schedule(at: 100, 1)
        let b = wheel.schedule(at: 100, 2)
        let c = wheel.schedule(at: 5000, 3)
        #expect(wheel.cancel(a) == 1)
        #expect(wheel.cancel(a) == nil, "a stale handle cancels nothing")
        let moved = wheel.reschedule(c, at: 50)
        #expect(moved != nil && wheel.reschedule(c, at: 10) == nil)
        #expect(run(&wheel, to: 60).map(\.0) == [3])
        #expect(run(&wheel, to: 100).map(\.0) == [2])
        #expect(wheel.cancel(b) == nil, "a fired timer cannot be cancelled")
        // Slots are reused, and old handles stay stale.
        let d = wheel.schedule(at: 200, 4)
        #expect(wheel.cancel(a) == nil && wheel.cancel(d) == 4)
        #expect(wheel.count == 0)
    }

    @Test func firesInBoundedSlices() {
        var wheel = TimingWheel<Int>(startMilliseconds: 0)
        for i in 0..<10_000 { wheel.schedule(at: 1000, i) }
        var total = 0
        var slices = 0
        // Cascading the 10 000 timers down from level 1 is bounded work too: 10 slices of moves,
        // then 10 of firings.
        while wheel.isDue(at: 1000) && slices < 100 {
            let fired = run(&wheel, to: 1000, limit: 1000)
            #expect(fired.count <= 1000)
            total += fired.count
            slices += 1
        }
        #expect(total == 10_000 && slices == 20)
        #expect(wheel.count == 0 && !wheel.isDue(at: 1000))
    }

    @Test func aCascadeCutShortKeepsDeadlineOrder() {
        var wheel = TimingWheel<Int>(startMilliseconds: 0)
        var rng = SplitMix64(seed: 7)
        // 5000 timers in one level-2 slot (ticks 4096..<8192), a few in level 0 and level 1.
        for i in 0..<5000 { wheel.schedule(at: 4096 + Int64(rng.next() % 4096), i) }
        for i in 0..<20 { wheel.schedule(at: Int64(rng.next() % 64), 10_000 + i) }
        for i in 0..<20 { wheel.schedule(at: Int64(rng.next() % 4000) + 64, 20_000 + i) }
        var deadlines: [Int64] = []
        var calls = 0
        while wheel.isDue(at: 9000) && calls < 1000 {
            deadlines.append(contentsOf: run(&wheel, to: 9000, limit: 97).map(\.1))
            // A timer scheduled between slices, while a cascade is cut short, still fires in order.
            if calls == 60 { wheel.schedule(at: 8500, 99_999) }
            calls += 1
        }
        #expect(deadlines.count == 5041 && wheel.count == 0)
        #expect(deadlines == deadlines.sorted(), "fired in deadline order across slices")
    }

    @Test func anIdleWheelJumps() {
        var wheel = TimingWheel<Int>(startMilliseconds: 0)
        wheel.schedule(at: 1 << 34, 1)
        #expect(wheel.nextDeadline()! <= 1 << 34, "never later than the earliest deadline")
        // One advance over 2^34 ticks visits a handful of slots, not every tick.
        #expect(run(&wheel, to: 1 << 35).map(\.0) == [1])
        #expect(wheel.now == 1 << 35)
    }

    @Test func aMillionTimersWithCancellations() {
        var wheel = TimingWheel<Int>(startMilliseconds: 0)
        var rng = SplitMix64(seed: 42)
        var ids: [TimerID] = []
        ids.reserveCapacity(1_000_000)
        for i in 0..<1_000_000 { ids.append(wheel.schedule(at: Int64(rng.next() % 3_600_000) + 1, i)) }
        var cancelled = Set<Int>()
        for i in stride(from: 0, to: 1_000_000, by: 3) {
            #expect(wheel.cancel(ids[i]) == i)
            cancelled.insert(i)
        }
        var count = 0
        var last: Int64 = 0
        var ordered = true
        var firedCancelled = false
        wheel.advance(to: 3_600_001) { payload, deadline in
            count += 1
            if deadline < last { ordered = false }
            last = deadline
            if cancelled.contains(payload) { firedCancelled = true }
        }
        #expect(count == 1_000_000 - cancelled.count)
        #expect(ordered && !firedCancelled)
        #expect(wheel.count == 0)
    }

    @Test func coarseTicksRoundDeadlinesUp() {
        var wheel = TimingWheel<Int>(tickMilliseconds: 10, startMilliseconds: 0)
        wheel.schedule(at: 15, 1)
        #expect(run(&wheel, to: 15).isEmpty, "never early: 15 ms is due at the 20 ms tick")
        #expect(run(&wheel, to: 20).map(\.1) == [20])
    }

    @Test func memoryPerTimer() {
        // Key payloads are one reference: 8 (deadline) + 8 (links) + 4 (generation) + 2 (home) + 9 (optional ref).
        #expect(TimingWheel<[UInt8]>.bytesPerTimer <= 48)
    }
}
