/// Counters of a ``Log`` since it was opened.
public struct LogStats: Sendable, Equatable {
    public var appends: UInt64 = 0
    public var appendedBytes: UInt64 = 0
    /// Syncs made to commit appends (a background seal under `no`/`everysec` is one of them;
    /// the seal an `always` appender makes itself is not counted).
    public var syncs: UInt64 = 0
    public var syncNanoseconds: UInt64 = 0
    public var maxSyncNanoseconds: UInt64 = 0
    /// Records committed per sync: `batchSizeBuckets[k]` counts syncs that covered
    /// 2^k ..< 2^(k+1) records (bucket 0: one record).
    public var batchSizeBuckets = [UInt64](repeating: 0, count: 16)
    public var largestBatch: UInt64 = 0
    public var segmentsCreated: UInt64 = 0
    /// The longest an appender spent starting a new segment (under `always` this includes
    /// sealing the full one; under `no` and `everysec` the flusher seals it).
    public var maxSegmentSwitchNanoseconds: UInt64 = 0
    /// The batch size the background flusher currently waits for before syncing (the recent
    /// peak, decaying): 1 means it syncs as soon as anyone waits.
    public var groupCommitTarget = 1
    /// Last index written to the OS, and last index known durable.
    public var writtenIndex: UInt64 = 0
    public var durableIndex: UInt64 = 0

    /// Mean records per sync.
    public var meanBatchSize: Double {
        syncs == 0 ? 0 : Double(batchRecords) / Double(syncs)
    }

    /// Mean time a sync took (the batch's `pwrite` under `always`, and its `fdatasync`).
    public var meanSyncMicroseconds: Double {
        syncs == 0 ? 0 : Double(syncNanoseconds) / Double(syncs) / 1000
    }

    var batchRecords: UInt64 = 0

    mutating func recordBatch(records: UInt64, nanoseconds: UInt64) {
        syncs += 1
        syncNanoseconds += nanoseconds
        maxSyncNanoseconds = max(maxSyncNanoseconds, nanoseconds)
        batchRecords += records
        largestBatch = max(largestBatch, records)
        let bucket = min(batchSizeBuckets.count - 1, records <= 1 ? 0 : 63 - records.leadingZeroBitCount)
        batchSizeBuckets[bucket] += 1
    }
}
