import Cairn
import CairnStorage
import Foundation
import Histogram
import Synchronization
import SystemPackage

/// Active expiry under load: a million keys fall due at the same moment while a writer runs,
/// and every write's latency is recorded (before and during the expiry) to show that expiring
/// in slices never stalls the writer for long.
public struct ExpiryBenchmark: Sendable {
    /// The system clock plus an offset the benchmark can jump: every loaded key falls due at
    /// the same instant, without waiting for it.
    final class JumpingClock: Clock, @unchecked Sendable {
        private let offset = Lock()
        private var milliseconds: Int64 = 0
        func nowMilliseconds() -> Int64 { SystemClock().nowMilliseconds() + offset.withLock { milliseconds } }
        func jump(_ by: Int64) { offset.withLock { milliseconds += by } }
    }

    public struct Result: Sendable {
        public var mode: FsyncPolicy
        public var keys: Int
        public var loadSeconds: Double
        /// From the moment all keys fell due until the last was expired.
        public var expirySeconds: Double
        public var expireTxns: UInt64
        public var before: Histogram<UInt64>
        public var during: Histogram<UInt64>
        public var writesDuring: Int
        public var allExpired: Bool
        public var slowBefore: Int
        public var slowDuring: Int
        /// The slowest `fdatasync` the log made in the whole run (ms).
        public var slowestSyncMilliseconds: Double = 0
        /// The longest the writer spent starting a new log segment (ms), and how many it started.
        public var slowestSegmentSwitchMilliseconds: Double = 0
        public var segmentsCreated: UInt64 = 0

        /// Milliseconds the slowest write waited while the keys were expiring.
        public var maxWriteMillisecondsDuring: Double { Double(during.max) / 1e6 }

        /// The report `cairn bench expiry` prints.
        public var summary: [String] {
            func ms(_ value: UInt64) -> String { String(format: "%.3f ms", Double(value) / 1e6) }
            func spread(_ h: Histogram<UInt64>) -> String {
                "p50 \(ms(h.valueAtPercentile(50))), p99 \(ms(h.valueAtPercentile(99))), p999 \(ms(h.valueAtPercentile(99.9))), max \(ms(h.max))"
            }
            return [
                "\(mode.rawValue): \(keys) keys with one deadline (loaded in \(String(format: "%.2f", loadSeconds)) s) "
                    + (allExpired ? "all expired \(String(format: "%.2f", expirySeconds)) s after falling due" : "NOT all expired within the limit")
                    + ", in \(expireTxns) txns",
                "  writes before: \(before.totalCount), \(spread(before)), over 10 ms: \(slowBefore)",
                "  writes during: \(writesDuring), \(spread(during)), over 10 ms: \(slowDuring)  (target: none)",
                "  slowest fdatasync of the log in the run: " + String(format: "%.3f ms", slowestSyncMilliseconds)
                    + String(format: "; slowest of %llu segment switches: %.3f ms", segmentsCreated, slowestSegmentSwitchMilliseconds),
            ]
        }
    }

    public var directory: FilePath
    public var valueSize: Int
    public var segmentSize: Int
    public var slice: Int

    public init(directory: FilePath, valueSize: Int = 100, segmentSize: Int = 64 << 20, slice: Int = StoreOptions().expirySlice) {
        self.directory = directory
        self.valueSize = valueSize
        self.segmentSize = segmentSize
        self.slice = slice
    }

    /// Loads `keys` keys with one deadline, runs a writer for `warmup` seconds, makes them all
    /// due at once, and measures until they are gone (at most `limit` seconds).
    public func run(keys: Int, mode: FsyncPolicy, warmup: Double = 1, limit: Double = 60) throws -> Result {
        let path = directory.appending("expiry-\(mode.rawValue)-\(UUID().uuidString.prefix(8))")
        try PosixFileSystem().createDirectory(path)
        let clock = JumpingClock()
        let store = try Store.open(directory: path, options: StoreOptions(
            fsyncPolicy: mode, segmentSize: segmentSize, clock: clock, expirySlice: slice,
            // Automatic snapshots (every 1M txns) would run during the measurement: this one is
            // about expiry; `cairn bench snapshot` measures writes during a snapshot.
            snapshotEveryTxns: 0, snapshotEveryBytes: 0))
        let value = Bytes([UInt8](repeating: 0x65, count: valueSize))
        let hour: Int64 = 3_600_000
        let deadline = clock.nowMilliseconds() + hour
        let loadStart = monotonicNanoseconds()
        for start in stride(from: 0, to: keys, by: 1000) {
            _ = try store.execute((start..<min(start + 1000, keys)).map {
                .set(Bytes("ttl:\(String(repeating: "0", count: 12 - String($0).count))\($0)"), value, condition: .always, expiry: .at(deadline), returnOld: false)
            })
        }
        let loadSeconds = Double(monotonicNanoseconds() - loadStart) / 1e9

        // The writer: 16-byte keys, 100-byte values, no TTL; latency of every write.
        final class Shared: @unchecked Sendable {
            let lock = Lock()
            var before = Histogram<UInt64>(highestTrackableValue: 60_000_000_000)
            var during = Histogram<UInt64>(highestTrackableValue: 60_000_000_000)
            var writesDuring = 0
            var slowBefore = 0
            var slowDuring = 0
            /// 0 warm-up, 1 expiring, 2 stop; the writer echoes each phase it has entered.
            let phase = Atomic<Int>(0)
            let entered = Atomic<Int>(0)
            var done = false
            var failure: String?
        }
        let shared = Shared()
        startThread(name: "bench-writer") {
            var i = 0
            var phase = 0
            var before = Histogram<UInt64>(highestTrackableValue: 60_000_000_000)
            var during = Histogram<UInt64>(highestTrackableValue: 60_000_000_000)
            var writesDuring = 0
            var slowBefore = 0
            var slowDuring = 0
            let writerKeys = (0..<100_000).map { Bytes("key:\(String(repeating: "0", count: 12 - String($0).count))\($0)") }
            while phase < 2 {
                let t0 = monotonicNanoseconds()
                do { try store.set(writerKeys[i % writerKeys.count], value) } catch {
                    shared.lock.withLock { shared.failure = "\(error)" }
                    break
                }
                let elapsed = monotonicNanoseconds() - t0
                let slow = elapsed > 10_000_000 ? 1 : 0
                if phase == 0 {
                    _ = before.record(elapsed)
                    slowBefore += slow
                } else {
                    _ = during.record(elapsed)
                    writesDuring += 1
                    slowDuring += slow
                }
                i += 1
                phase = shared.phase.load(ordering: .acquiring)
                shared.entered.store(phase, ordering: .releasing)
            }
            shared.lock.withLock {
                shared.before = before
                shared.during = during
                shared.writesDuring = writesDuring
                shared.slowBefore = slowBefore
                shared.slowDuring = slowDuring
                shared.done = true
            }
        }
        usleep(UInt32(warmup * 1e6))
        shared.phase.store(1, ordering: .releasing)
        while shared.entered.load(ordering: .acquiring) < 1 && shared.lock.withLock({ !shared.done }) { usleep(100) }
        let dueAt = monotonicNanoseconds()
        clock.jump(hour)
        let stopAt = dueAt + UInt64(limit * 1e9)
        var expiredAt = dueAt
        var allExpired = false
        while monotonicNanoseconds() < stopAt {
            if store.pendingTimers.keys == 0 { allExpired = true; expiredAt = monotonicNanoseconds(); break }
            usleep(2000)
        }
        shared.phase.store(2, ordering: .releasing)
        while !shared.lock.withLock({ shared.done }) { usleep(1000) }
        let expireTxns = UInt64(store.expiryCounts.txns)
        let logStats = store.log.stats
        let slowestSync = Double(logStats.maxSyncNanoseconds) / 1e6
        try store.close()
        try? FileManager.default.removeItem(atPath: path.string)
        if let failure = shared.lock.withLock({ shared.failure }) { throw BenchError(message: "the writer failed: \(failure)") }
        return Result(
            mode: mode, keys: keys, loadSeconds: loadSeconds, expirySeconds: Double(expiredAt - dueAt) / 1e9,
            expireTxns: expireTxns, before: shared.before, during: shared.during, writesDuring: shared.writesDuring,
            allExpired: allExpired, slowBefore: shared.slowBefore, slowDuring: shared.slowDuring, slowestSyncMilliseconds: slowestSync,
            slowestSegmentSwitchMilliseconds: Double(logStats.maxSegmentSwitchNanoseconds) / 1e6, segmentsCreated: logStats.segmentsCreated)
    }
}

struct BenchError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
