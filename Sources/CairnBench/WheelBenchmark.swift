#if canImport(Glibc)
import Glibc
#endif
import CairnStorage
import Foundation
import Histogram

/// The timing wheel's figures: schedule and cancel cost, memory per timer, firing lateness.
public enum WheelBenchmark {
    public struct CostResult: Sendable {
        public var timers: Int
        public var scheduleNanoseconds: Double
        public var cancelNanoseconds: Double
        public var bytesPerTimerSlab: Int
        public var bytesPerTimerResident: Double
    }

    /// Schedules `timers` timers (deadlines spread over an hour, payloads of one reference, like
    /// a key) and cancels them all.
    public static func cost(timers: Int) -> CostResult {
        var wheel = TimingWheel<[UInt8]>(startMilliseconds: 0)
        var rng = SystemRandomNumberGenerator()
        let deadlines = (0..<timers).map { _ in Int64.random(in: 1...3_600_000, using: &rng) }
        let key: [UInt8] = Array("key:000000000001".utf8)
        var ids: [TimerID] = []
        ids.reserveCapacity(timers)
        let rssBefore = residentBytes()
        let t0 = monotonicNanoseconds()
        for deadline in deadlines { ids.append(wheel.schedule(at: deadline, key)) }
        let t1 = monotonicNanoseconds()
        let rssAfter = residentBytes()
        for id in ids { _ = wheel.cancel(id) }
        let t2 = monotonicNanoseconds()
        precondition(wheel.count == 0)
        let idBytes = timers * MemoryLayout<TimerID>.stride
        return CostResult(
            timers: timers,
            scheduleNanoseconds: Double(t1 - t0) / Double(timers),
            cancelNanoseconds: Double(t2 - t1) / Double(timers),
            bytesPerTimerSlab: TimingWheel<[UInt8]>.bytesPerTimer,
            bytesPerTimerResident: Double(max(0, rssAfter - rssBefore - idBytes)) / Double(timers))
    }

    /// With `timers` pending and spread over `seconds`, a driver sleeps until the next deadline
    /// (at most one tick) and fires what is due; lateness is firing time minus deadline.
    public static func lateness(timers: Int, seconds: Double) -> Histogram<UInt64> {
        var wheel = TimingWheel<Int>(startMilliseconds: 0)
        let start = monotonicNanoseconds()
        func nowMilliseconds() -> Int64 { Int64((monotonicNanoseconds() - start) / 1_000_000) }
        let span = Int64(seconds * 1000)
        var rng = SystemRandomNumberGenerator()
        // Deadlines start 1 s out: scheduling a million timers takes about 0.1 s.
        for i in 0..<timers { wheel.schedule(at: 1000 + Int64.random(in: 0..<span, using: &rng), i) }
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000)
        let deadline = start + UInt64((seconds + 2) * 1e9)
        while wheel.count > 0 && monotonicNanoseconds() < deadline {
            wheel.advance(to: nowMilliseconds()) { _, due in
                let late = Int64(monotonicNanoseconds() - start) - due * 1_000_000
                _ = histogram.record(UInt64(max(0, late)))
            }
            if let next = wheel.nextDeadline() {
                // Sleep until shortly before the next deadline, then yield: a wake-up here can
                // overshoot by more than a tick, so the last 200 us are not left to the sleep.
                let wait = next * 1_000_000 - Int64(monotonicNanoseconds() - start)
                if wait > 300_000 {
                    var t = timespec(tv_sec: Int((wait - 200_000) / 1_000_000_000), tv_nsec: Int((wait - 200_000) % 1_000_000_000))
                    nanosleep(&t, nil)
                } else if wait > 0 {
                    sched_yield()
                }
            }
        }
        return histogram
    }

    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
    }
}
