import CoreMetrics

/// When an append counts as committed: Redis's `appendfsync` settings.
public enum FsyncPolicy: String, Sendable, CaseIterable, Codable {
    /// An append is committed once an `fdatasync` covers it. Concurrent appends share syncs
    /// (group commit). Nothing acknowledged is lost, even to a power cut.
    case always
    /// An append is committed once written to the OS; a background flush syncs about once a
    /// second, so a power cut may lose about the last second.
    case everysec
    /// An append is committed once written to the OS; the OS decides when it reaches the disk.
    case no
}

/// Settings of a ``Log``.
public struct LogOptions: Sendable {
    public var fsyncPolicy: FsyncPolicy
    /// Segments are preallocated to this size and a new one is started when the next record
    /// would not fit. A record larger than this gets a segment of its own.
    public var segmentSize: Int
    /// Index of the first record when the directory holds no segment yet.
    public var firstIndex: UInt64
    /// Interval of the background flush under ``FsyncPolicy/everysec``.
    public var everysecInterval: Duration
    /// Where the log reports `cairn_log_fsync` (a timer per commit sync) and
    /// `cairn_log_batch_records` (records per sync); the process's metrics system by default.
    public var metrics: (any MetricsFactory)?

    public init(
        fsyncPolicy: FsyncPolicy = .everysec, segmentSize: Int = 64 << 20, firstIndex: UInt64 = 1,
        everysecInterval: Duration = .seconds(1), metrics: (any MetricsFactory)? = nil
    ) {
        self.metrics = metrics
        precondition(segmentSize >= 4096, "segmentSize must be at least 4096 bytes")
        precondition(firstIndex >= 1, "log indexes start at 1")
        self.fsyncPolicy = fsyncPolicy
        self.segmentSize = segmentSize
        self.firstIndex = firstIndex
        self.everysecInterval = everysecInterval
    }
}
