#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CairnStorage
import Foundation
import Histogram
import Synchronization
import SystemPackage

private let directorySerial = Atomic<Int>(0)

/// One measured row: a workload's rate and latency percentiles.
public struct BenchResult: Sendable {
    public var name: String
    public var operations: Int
    public var seconds: Double
    public var p50Microseconds: Double?
    public var p99Microseconds: Double?
    public var p999Microseconds: Double?
    public var note: String = ""

    public var perSecond: Double { Double(operations) / max(seconds, 1e-9) }
}

/// The transaction log's benchmarks, each run side by side with its baseline in one process so
/// that ratios hold on a noisy machine.
public struct LogBenchmark: Sendable {
    public var directory: FilePath
    public var recordSize: Int
    public var duration: Double
    public var recoveryBytes: Int

    public init(directory: FilePath, recordSize: Int = 128, duration: Double = 2, recoveryBytes: Int = 1 << 30) {
        self.directory = directory
        self.recordSize = recordSize
        self.duration = duration
        self.recoveryBytes = recoveryBytes
    }

    /// A new, uniquely named directory under the scratch directory. Nothing is deleted between
    /// rows: on a filesystem mounted with `discard`, deleting a preallocated segment issues a
    /// TRIM that later journal commits wait for, which would slow the next row's syncs. The
    /// caller removes the whole scratch directory at the end.
    private func freshDirectory(_ name: String) throws -> FilePath {
        let path = directory.appending("\(name)-\(directorySerial.add(1, ordering: .relaxed).oldValue)")
        removeTree(path)
        try PosixFileSystem().createDirectory(path)
        return path
    }

    private func openLog(_ name: String, _ policy: FsyncPolicy) throws -> (Log, FilePath) {
        let dir = try freshDirectory(name)
        return (try Log.open(directory: dir, options: LogOptions(fsyncPolicy: policy)), dir)
    }

    private func batchNote(_ stats: LogStats) -> String {
        String(format: "%.1f records/sync, largest batch %d", stats.meanBatchSize, stats.largestBatch)
    }

    /// `pwrite` of one record then `fdatasync`, in a loop: the disk's own commit rate.
    /// `preallocated` writes into a file already extended with `posix_fallocate`.
    public func rawSyncLoop(preallocated: Bool) throws -> BenchResult {
        let path = try freshDirectory("raw").appending("raw.dat")
        let fd = open(path.string, O_RDWR | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw DiskError(.open, path, Errno(rawValue: errno)) }
        defer { close(fd) }
        if preallocated { _ = posix_fallocate(fd, 0, off_t(256 << 20)); fsync(fd) }
        let record = [UInt8](repeating: 0x5A, count: LogFormat.recordSize(payloadLength: recordSize))
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000)
        let end = monotonicNanoseconds() + UInt64(duration * 1e9)
        var count = 0
        var offset = 0
        let start = monotonicNanoseconds()
        while true {
            let t0 = monotonicNanoseconds()
            record.withUnsafeBytes { _ = pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
            fdatasync(fd)
            let t1 = monotonicNanoseconds()
            _ = histogram.record(t1 - t0)
            offset += record.count
            count += 1
            if t1 >= end || offset + record.count > (256 << 20) { break }
        }
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        return result(preallocated ? "raw pwrite+fdatasync (preallocated)" : "raw pwrite+fdatasync (appending)",
                      count, seconds, histogram)
    }

    /// One appender, blocking API, under `policy`.
    public func singleAppender(_ policy: FsyncPolicy, timed: Bool = true) throws -> BenchResult {
        let (log, _) = try openLog("single-\(policy.rawValue)", policy)
        defer { try? log.close() }
        let payload = [UInt8](repeating: 0x42, count: recordSize)
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000)
        let start = monotonicNanoseconds()
        let end = start + UInt64(duration * 1e9)
        var count = 0
        try payload.withUnsafeBytes { raw in
            if timed {
                var now = start
                while now < end {
                    let t0 = now
                    try log.append(raw)
                    now = monotonicNanoseconds()
                    _ = histogram.record(now - t0)
                    count += 1
                }
            } else {
                // Rate only: check the clock every 1024 appends.
                while true {
                    for _ in 0..<1024 { try log.append(raw) }
                    count += 1024
                    if monotonicNanoseconds() >= end { break }
                }
            }
        }
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        var row = result("log \(policy.rawValue), 1 appender" + (timed ? "" : " (rate pass)"), count, seconds, timed ? histogram : nil)
        let stats = log.stats
        if policy == .always { row.note = String(format: "%.2f records/sync", stats.meanBatchSize) }
        return row
    }

    /// `appenders` concurrent async tasks appending under `policy`: group commit at work.
    public func concurrentAppenders(_ policy: FsyncPolicy, appenders: Int) async throws -> BenchResult {
        let (log, _) = try openLog("concurrent-\(policy.rawValue)", policy)
        defer { try? log.close() }
        let payload = [UInt8](repeating: 0x42, count: recordSize)
        let start = monotonicNanoseconds()
        let end = start + UInt64(duration * 1e9)
        // A task group: with Dispatch's global executor on Linux, detached tasks whose
        // continuations are resumed from another thread (the flusher) starve detached tasks
        // that have not started yet; a group's children do not.
        let merged = try await withThrowingTaskGroup(of: (Int, Histogram<UInt64>).self) { group in
            for _ in 0..<appenders {
                group.addTask {
                    var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000)
                    var count = 0
                    var now = monotonicNanoseconds()
                    while now < end {
                        let t0 = now
                        try await log.append(payload)
                        now = monotonicNanoseconds()
                        _ = histogram.record(now - t0)
                        count += 1
                    }
                    return (count, histogram)
                }
            }
            var total = 0
            var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000)
            for try await (count, part) in group {
                total += count
                histogram.add(part)
            }
            return (total, histogram)
        }
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        var row = result("log \(policy.rawValue), \(appenders) appenders (async tasks)", merged.0, seconds, merged.1)
        if policy == .always { row.note = batchNote(log.stats) }  // other policies sync in the background, not per batch
        return row
    }

    /// `appenders` clients multiplexed on one event-loop thread, as a server drives them (Redis's
    /// `appendfsync always`, `cairn serve`'s `LoopCommitter`): each tick submits the next record
    /// of every client whose last one is committed, then one `waitForCommit` of the newest syncs
    /// them all inline (one write + one `fdatasync`), and each client's latency runs from its
    /// submit to the end of that sync. The same two calls as the 1-appender row's `append`, so
    /// the ratio of the two is group commit's alone, without the thread or task hand-offs.
    public func eventLoopAppenders(_ policy: FsyncPolicy, appenders: Int) throws -> BenchResult {
        precondition(appenders > 0, "at least one appender")
        let (log, _) = try openLog("loop-\(policy.rawValue)", policy)
        defer { try? log.close() }
        let payload = [UInt8](repeating: 0x42, count: recordSize)
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000)
        var issued = [UInt64](repeating: 0, count: appenders)
        let start = monotonicNanoseconds()
        let end = start + UInt64(duration * 1e9)
        var count = 0
        try payload.withUnsafeBytes { raw in
            var now = start
            while now < end {
                var newest: UInt64 = 0
                for client in 0..<appenders {
                    issued[client] = monotonicNanoseconds()
                    newest = try log.submit(raw)
                }
                try log.waitForCommit(newest)
                now = monotonicNanoseconds()
                for client in 0..<appenders { _ = histogram.record(now - issued[client]) }
                count += appenders
            }
        }
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        var row = result("log \(policy.rawValue), \(appenders) appenders (event loop)", count, seconds, histogram)
        row.note = batchNote(log.stats)
        return row
    }

    /// `appenders` OS threads appending through the blocking API under `policy`.
    public func threadAppenders(_ policy: FsyncPolicy, appenders: Int) throws -> BenchResult {
        let (log, _) = try openLog("threads-\(policy.rawValue)", policy)
        defer { try? log.close() }
        let payload = [UInt8](repeating: 0x42, count: recordSize)
        let start = monotonicNanoseconds()
        let end = start + UInt64(duration * 1e9)
        let done = ConditionLock()
        nonisolated(unsafe) var finished = 0
        nonisolated(unsafe) var total = 0
        nonisolated(unsafe) var merged = Histogram<UInt64>(highestTrackableValue: 60_000_000_000)
        for worker in 0..<appenders {
            startThread(name: "appender-\(worker)") {
                var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000)
                var count = 0
                payload.withUnsafeBytes { raw in
                    var now = monotonicNanoseconds()
                    while now < end {
                        let t0 = now
                        guard (try? log.append(raw)) != nil else { break }
                        now = monotonicNanoseconds()
                        _ = histogram.record(now - t0)
                        count += 1
                    }
                }
                done.withLock {
                    total += count
                    merged.add(histogram)
                    finished += 1
                    done.broadcast()
                }
            }
        }
        let count = done.withLock { () -> Int in
            while finished < appenders { done.wait() }
            return total
        }
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        var row = result("log \(policy.rawValue), \(appenders) threads (blocking API)", count, seconds, merged)
        row.note = batchNote(log.stats)
        return row
    }

    /// Writes a log of `recoveryBytes`, closes it, and times a reopen (verify every record).
    public func recoveryScan() throws -> BenchResult {
        let dir = try freshDirectory("recovery")
        let payload = [UInt8](repeating: 0x33, count: 4000)
        let log = try Log.open(directory: dir, options: LogOptions(fsyncPolicy: .no))
        let perRecord = LogFormat.recordSize(payloadLength: payload.count)
        try payload.withUnsafeBytes { raw in
            for _ in 0..<(recoveryBytes / perRecord) { _ = try log.submit(raw) }
        }
        try log.close()
        let start = monotonicNanoseconds()
        var records = 0
        var bytes = 0
        let reopened = try Log.open(directory: dir, options: LogOptions(fsyncPolicy: .no)) { record in
            records += 1
            bytes += record.size
        }
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        try reopened.close()
        var row = BenchResult(name: "recovery scan", operations: records, seconds: seconds)
        row.note = String(format: "%.2f GB/s over %.2f GB, %d records (page cache warm)",
                          Double(bytes) / seconds / 1e9, Double(bytes) / 1e9, records)
        return row
    }

    /// CRC32C throughput over a 16 MiB buffer, hardware and table-driven.
    public static func checksumThroughput() -> [BenchResult] {
        let size = 16 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 64)
        defer { buffer.deallocate() }
        for i in 0..<size { buffer[i] = UInt8(truncatingIfNeeded: i &* 31) }
        var rows: [BenchResult] = []
        for portable in [false, true] {
            var sink: UInt32 = 0
            let rounds = portable ? 8 : 64
            let start = monotonicNanoseconds()
            for _ in 0..<rounds {
                sink &+= portable ? CRC32C.portableChecksum(UnsafeRawBufferPointer(buffer)) : CRC32C.checksum(UnsafeRawBufferPointer(buffer))
            }
            let seconds = Double(monotonicNanoseconds() - start) / 1e9
            var row = BenchResult(name: portable ? "crc32c slicing-by-8" : "crc32c " + (CRC32C.usesHardware ? "hardware" : "(no hardware: table)"),
                                  operations: rounds, seconds: seconds)
            row.note = String(format: "%.2f GB/s (checksum %08x)", Double(size * rounds) / seconds / 1e9, sink)
            rows.append(row)
        }
        return rows
    }

    private func result(_ name: String, _ count: Int, _ seconds: Double, _ histogram: Histogram<UInt64>?) -> BenchResult {
        BenchResult(
            name: name, operations: count, seconds: seconds,
            p50Microseconds: histogram.map { Double($0.valueAtPercentile(50)) / 1000 },
            p99Microseconds: histogram.map { Double($0.valueAtPercentile(99)) / 1000 },
            p999Microseconds: histogram.map { Double($0.valueAtPercentile(99.9)) / 1000 })
    }
}

/// Removes a directory tree (benchmark scratch only).
public func removeTree(_ path: FilePath) {
    let fs = PosixFileSystem()
    guard let names = try? fs.listDirectory(path) else {
        unlink(path.string)
        return
    }
    for name in names { removeTree(path.appending(name)) }
    rmdir(path.string)
}
