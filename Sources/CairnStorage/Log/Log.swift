import CoreMetrics
import SystemPackage
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The append-only transaction log: records with consecutive 64-bit indexes in
/// `log-<firstIndex>.seg` segments, committed under one of three ``FsyncPolicy``s.
///
/// ```swift
/// let log = try Log.open(directory: "/var/lib/cairn", options: LogOptions(fsyncPolicy: .always))
/// let index = try log.append(payload)   // returns once an fdatasync covers the record
/// try log.close()
/// ```
///
/// Writing is split in two so that a caller can order its own state by index:
/// ``submit(_:term:)`` writes a record to the OS and returns its index at once;
/// ``waitForCommit(_:)`` (blocking) or ``commit(_:)`` (async) returns when the record is
/// committed under the policy. Under `always`, whoever waits first while no sync runs leads
/// the next `fdatasync` for every record written so far (group commit); async waiters are led
/// by a background thread, so no Swift concurrency thread ever blocks in `fdatasync`.
///
/// A failed write or sync is never retried and never acknowledged: the log stops accepting
/// appends and every waiter gets ``LogError/writerFailed(_:)`` until it is reopened.
public final class Log: @unchecked Sendable {
    public let directory: FilePath
    /// What recovery found and did when the log was opened.
    public let recovery: LogDirectoryScan

    private let fileSystem: any FileSystem
    private let directoryLock: any FileLock
    private let fsyncTimer: CoreMetrics.Timer
    private let batchRecorder: Recorder
    private let state = Lock()
    /// Threads blocked until the durable index moves, a sync ends, or the flusher stops.
    private let progress: Condition
    /// The background flusher waits here for work; only async waiters, policy changes and
    /// closing wake it, so a blocking appender's syncs never cost it a context switch.
    private let flusherWork: Condition

    // Everything below is guarded by `state`.
    private var options: LogOptions
    private var active: ActiveSegment {
        didSet { publishRoom() }  // (a class: changes to its fields call publishRoom themselves)
    }
    /// Under `no` and `everysec`: the segment before the active one while it is still to be
    /// cut to its last record and synced. The writer that fills a segment starts the next one
    /// at once and leaves this to the flusher (a disk slow to sync never stalls a write there);
    /// no record of the active segment counts as durable before it is done. One at a time.
    private var sealing: ActiveSegment?
    /// First index of every segment, oldest first (the active one last).
    private var segmentFirstIndexes: [UInt64]
    private var firstIndex: UInt64
    private var nextIndex: UInt64 {
        didSet { nextIndexMirror.store(nextIndex, ordering: .releasing) }
    }
    /// `nextIndex` and the policy, readable without the lock: the store reads both on every
    /// write (two lock round trips a write saved). Written only under the lock.
    private let nextIndexMirror = Atomic<UInt64>(0)
    private let policyMirror = Atomic<UInt8>(0)
    private var durableIndex: UInt64
    private var syncInProgress = false
    private var failure: LogError? { didSet { publishSettled() } }
    private var isClosed = false { didSet { publishSettled() } }
    /// Room left in the active segment, and whether the log has failed or closed, readable
    /// without the lock: `reserve` needs the lock only when a segment must be made.
    private let roomMirror = Atomic<Int>(0)
    private let settledMirror = Atomic<Bool>(false)

    private func publishRoom() { roomMirror.store(active.capacity - active.writeOffset, ordering: .releasing) }
    private func publishSettled() { settledMirror.store(failure != nil || isClosed, ordering: .releasing) }
    private static func policyCode(_ policy: FsyncPolicy) -> UInt8 {
        UInt8(FsyncPolicy.allCases.firstIndex(of: policy)!)
    }
    private var flusherRunning = false
    /// Pages of the active segment's mapping the flusher is to fault in ahead of the writer.
    private var prefaultRequest: (segment: ActiveSegment, range: Range<Int>)?
    /// How many threads wait on `progress`: it is signalled only when someone does.
    private var blockedThreads = 0
    private var waiters: [Waiter] = []
    private var counters = LogStats()
    private var scratch: UnsafeMutableRawBufferPointer
    /// Under `always`: records encoded but not yet written, starting at file offset
    /// `pendingOffset` of the active segment. The sync leader swaps it with `inflight` and
    /// writes the whole batch with one `pwrite` before its `fdatasync`.
    private var pending: UnsafeMutableRawBufferPointer
    private var pendingCount = 0
    private var pendingOffset = 0
    private var inflight: UnsafeMutableRawBufferPointer
    /// Appends wait (or lead a sync) rather than let a batch grow past this.
    private let maxBatchBytes = 16 << 20
    /// Group commit gathering (async waiters): how many records recent syncs carried (a peak
    /// that decays by an eighth, at least one, per sync), when the first waiter of the coming
    /// batch arrived, and how long the last sync took. The flusher waits for the batch to reach
    /// the peak, at most one sync's time. Records, not waiters: one waiter may stand for many
    /// records (an event loop registers once for all the requests it read in a tick), and
    /// counting waiters let a sync start with half of a loop's clients while the other half
    /// were a few microseconds away, so that two half batches took turns on the disk.
    private var gatherTarget = 1
    /// Records written and not yet durable (under the lock).
    private var unsyncedRecords: Int { Int(nextIndex - 1 - durableIndex) }
    private var gatherStart: UInt64 = 0
    private var lastSyncNanoseconds: UInt64 = 0
    private let maxGatherNanoseconds: UInt64 = 200_000
    /// Syncs up to this long are gathered for by polling, longer ones by sleeping.
    private let maxPolledSyncNanoseconds: UInt64 = 60_000

    private struct Waiter {
        var index: UInt64
        var resumption: Resumption

        /// A suspended task, or a callback (for event-loop servers, which must not depend on
        /// Swift tasks being scheduled).
        enum Resumption {
            case task(UnsafeContinuation<LogError?, Never>)
            case callback(@Sendable (LogError?) -> Void)
        }

        func resume(returning error: LogError?) {
            switch resumption {
            case .task(let continuation): continuation.resume(returning: error)
            case .callback(let callback): callback(error)
            }
        }
    }

    final class ActiveSegment: @unchecked Sendable {
        let handle: any DiskFile
        let name: String
        let firstIndex: UInt64
        var capacity: Int
        var writeOffset: Int
        /// The largest size an `fdatasync` has made durable. A segment is sealed in the
        /// background only once its preallocated size is durable: a crash before the seal
        /// then leaves zeros past its records, which is how recovery knows it was unsealed.
        var syncedCapacity = 0
        /// How far the flusher has been asked to prefault the mapping (see ``Log/prefaultWindow``).
        var prefaulted = 0
        init(handle: any DiskFile, name: String, firstIndex: UInt64, capacity: Int, writeOffset: Int) {
            self.handle = handle
            self.name = name
            self.firstIndex = firstIndex
            self.capacity = capacity
            self.writeOffset = writeOffset
        }
    }

    // MARK: Opening

    /// Opens (creating if needed) the log in `directory`, recovering it: every record is
    /// verified, `replay` sees each valid one in order, and a crash-torn tail of the last
    /// segment is cut (``recovery`` says where and how much), or of the one before it when a
    /// crash came before its background seal (the last segment, never synced, is then removed
    /// with it; docs/FORMAT.md, "Sealing"). Damage anywhere else throws
    /// ``LogError/corruption(file:offset:defect:validRecordsAfter:)`` and changes nothing.
    public static func open(
        directory: FilePath, options: LogOptions = LogOptions(),
        fileSystem: any FileSystem = PosixFileSystem(),
        replay: (LogFormat.Record) throws -> Void = { _ in }
    ) throws -> Log {
        do { try fileSystem.createDirectory(directory) } catch { throw LogError.disk(error) }
        let lock: any FileLock
        do {
            lock = try fileSystem.lock(directory.appending("LOCK"))
        } catch {
            if error.errno == .wouldBlock || error.errno == .resourceTemporarilyUnavailable {
                throw LogError.locked(directory: directory.string)
            }
            throw LogError.disk(error)
        }
        do {
            let scan = try LogDirectoryScan.run(directory: directory, fileSystem: fileSystem, visit: replay)
            if case .corruption(let error) = scan.problem { throw error }
            return try Log(directory: directory, options: options, fileSystem: fileSystem, lock: lock, scan: scan)
        } catch {
            lock.unlock()
            throw error
        }
    }

    private init(
        directory: FilePath, options: LogOptions, fileSystem: any FileSystem, lock: any FileLock,
        scan: LogDirectoryScan
    ) throws(LogError) {
        self.directory = directory
        self.options = options
        self.fileSystem = fileSystem
        self.directoryLock = lock
        let factory = options.metrics ?? MetricsSystem.factory
        fsyncTimer = CoreMetrics.Timer(label: "cairn_log_fsync", factory: factory)
        batchRecorder = Recorder(label: "cairn_log_batch_records", factory: factory)
        self.recovery = scan
        self.progress = Condition(state)
        self.flusherWork = Condition(state)
        self.scratch = .allocate(byteCount: 64 << 10, alignment: LogFormat.alignment)
        self.pending = .allocate(byteCount: 1 << 20, alignment: LogFormat.alignment)
        self.inflight = .allocate(byteCount: 1 << 20, alignment: LogFormat.alignment)
        // A torn tail before the last segment takes the segments after it (FORMAT.md).
        let kept = scan.survivingSegments
        self.segmentFirstIndexes = kept.map(\.firstIndex)
        do {
            var writeOffset = kept.last?.scan.validEnd ?? 0
            if case .tornTail(let tail) = scan.problem, let cut = LogRepair.plan(for: scan) {
                // Cut the tail (and remove what was begun after it), durably, before anything
                // new is written: what `cairn check --fix` does.
                try cut.apply(directory: directory, fileSystem: fileSystem)
                writeOffset = tail.offset
            }
            if kept.count >= 2, let previous = kept.dropLast().last, previous.isUnsealed {
                // Left unsealed by a crash: seal it now.
                try LogRepair.cut(previous.name, at: previous.scan.validEnd, directory: directory, fileSystem: fileSystem)
            }
            if let last = kept.last {
                let handle = try fileSystem.open(directory.appending(last.name), create: false)
                let capacity = max(options.segmentSize, try handle.size())
                try handle.preallocate(size: capacity)
                try handle.syncData()  // the preallocated size, durable (see syncedCapacity)
                if options.fsyncPolicy != .always { try handle.mapForWriting(size: capacity) }
                active = ActiveSegment(
                    handle: handle, name: last.name, firstIndex: last.firstIndex, capacity: capacity,
                    writeOffset: writeOffset)
                active.syncedCapacity = capacity
                firstIndex = kept.first!.firstIndex
                nextIndex = last.firstIndex + UInt64(last.scan.recordCount)
            } else {
                active = try Log.createSegment(
                    directory: directory, fileSystem: fileSystem, firstIndex: options.firstIndex,
                    capacity: options.segmentSize, mapped: options.fsyncPolicy != .always)
                segmentFirstIndexes = [options.firstIndex]
                firstIndex = options.firstIndex
                nextIndex = options.firstIndex
            }
        } catch {
            scratch.deallocate()
            pending.deallocate()
            inflight.deallocate()
            throw .disk(error)
        }
        durableIndex = nextIndex - 1
        nextIndexMirror.store(nextIndex, ordering: .releasing)  // (no observers run in init)
        publishRoom()
        policyMirror.store(Self.policyCode(options.fsyncPolicy), ordering: .releasing)
        flusherRunning = true
        startThread(name: "cairn-log-flush") { [self] in flusherLoop() }
    }

    deinit {
        scratch.deallocate()
        pending.deallocate()
        inflight.deallocate()
    }

    /// Segments are memory-mapped under `no` and `everysec` (an append is a copy into the page
    /// cache, no syscall). Under `always` they are not: writeback of a mapped page write-protects
    /// it (a TLB shootdown on every core) and the next append faults, once per sync; a batch
    /// written with one `pwrite` avoids both.
    /// Its preallocated size and directory entry are made durable here unless `durable` is
    /// false (a background seal syncs both before any record of the new segment counts).
    private static func createSegment(
        directory: FilePath, fileSystem: any FileSystem, firstIndex: UInt64, capacity: Int, mapped: Bool,
        durable: Bool = true
    ) throws(DiskError) -> ActiveSegment {
        let name = LogFormat.segmentName(firstIndex: firstIndex)
        let handle = try fileSystem.open(directory.appending(name), create: true)
        try handle.truncate(to: 0)
        try handle.preallocate(size: capacity)
        if mapped { try handle.mapForWriting(size: capacity) }
        let segment = ActiveSegment(handle: handle, name: name, firstIndex: firstIndex, capacity: capacity, writeOffset: 0)
        if durable {
            try handle.syncData()
            segment.syncedCapacity = capacity
            try fileSystem.syncDirectory(directory)
        }
        return segment
    }

    // MARK: Appending

    /// Writes one record to the OS and returns its index, without waiting for it to commit.
    public func submit(_ payload: UnsafeRawBufferPointer, term: UInt64 = 0) throws(LogError) -> UInt64 {
        state.lock()
        defer { state.unlock() }
        return try submitLocked(payload, term: term)
    }

    private func submitLocked(_ payload: UnsafeRawBufferPointer, term: UInt64) throws(LogError) -> UInt64 {
        guard payload.count <= LogFormat.maxPayloadLength else {
            throw .payloadTooLarge(size: payload.count, limit: LogFormat.maxPayloadLength)
        }
        let size = LogFormat.recordSize(payloadLength: payload.count)
        if let failure { throw failure }
        if isClosed { throw .closed }
        if active.writeOffset + size > active.capacity { try makeRoom(for: size) }
        let index = nextIndex
        if options.fsyncPolicy == .always {
            while pendingCount > 0 && pendingCount + size > maxBatchBytes {
                if syncInProgress { waitForProgress() } else { syncLocked() }
                if let failure { throw failure }
            }
            if pendingCount == 0 { pendingOffset = active.writeOffset }
            if pending.count < pendingCount + size {
                let grown = UnsafeMutableRawBufferPointer.allocate(
                    byteCount: max(pendingCount + size, pending.count * 2), alignment: LogFormat.alignment)
                grown.baseAddress!.copyMemory(from: pending.baseAddress!, byteCount: pendingCount)
                pending.deallocate()
                pending = grown
            }
            LogFormat.encode(index: index, term: term, payload: payload, into: pending.baseAddress! + pendingCount)
            pendingCount += size
        } else {
            if scratch.count < size {
                scratch.deallocate()
                scratch = .allocate(byteCount: max(size, scratch.count * 2), alignment: LogFormat.alignment)
            }
            LogFormat.encode(index: index, term: term, payload: payload, into: scratch.baseAddress!)
            do {
                try active.handle.write(UnsafeRawBufferPointer(start: scratch.baseAddress, count: size), at: active.writeOffset)
            } catch {
                fail(.writerFailed(error))
                throw failure!
            }
            if active.writeOffset + size + Self.prefaultWindow / 2 > active.prefaulted { requestPrefault() }
        }
        let wasNearlyFull = activeNearlyFull
        active.writeOffset += size
        publishRoom()
        if !wasNearlyFull && activeNearlyFull && options.fsyncPolicy != .always { flusherWork.signal() }
        nextIndex = index + 1
        counters.appends += 1
        counters.appendedBytes += UInt64(size)
        return index
    }

    /// Under `no` and `everysec` a segment is written through its mapping, and each first write
    /// to a page faulted (the kernel reads, or zeroes, the page in): 4% of the event loop under
    /// a pipelined SET. The flusher faults this much ahead of the writer in instead.
    static let prefaultWindow = 1 << 20

    /// Asks the flusher to fault in the active segment's next pages (once per half window).
    private func requestPrefault() {
        let end = min(active.capacity, active.writeOffset + Self.prefaultWindow)
        guard end > active.prefaulted else { return }
        prefaultRequest = (active, max(active.prefaulted, active.writeOffset)..<end)
        active.prefaulted = end
        flusherWork.signal()
    }

    /// Makes sure the next record, of `payloadLength` bytes, can be submitted without I/O that
    /// could fail: when the active segment cannot hold it, the segment is sealed and the next
    /// one made now. A caller that must not change anything visible before its record is
    /// accepted (the store applies a txn before submitting it) reserves first: a full disk then
    /// fails here, before the change, and the `submit` that follows can only fail if the log
    /// has failed meanwhile. The promise holds for a caller that is the log's only appender
    /// (as the store is, under its writer lock): another appender could take the room.
    public func reserve(payloadLength: Int) throws(LogError) {
        // The common case without the lock: the caller is the only appender, so the room it
        // sees cannot shrink before its submit.
        if !settledMirror.load(ordering: .acquiring), payloadLength <= LogFormat.maxPayloadLength,
           LogFormat.recordSize(payloadLength: payloadLength) <= roomMirror.load(ordering: .acquiring) {
            return
        }
        state.lock()
        defer { state.unlock() }
        guard payloadLength <= LogFormat.maxPayloadLength else {
            throw .payloadTooLarge(size: payloadLength, limit: LogFormat.maxPayloadLength)
        }
        if let failure { throw failure }
        if isClosed { throw .closed }
        let size = LogFormat.recordSize(payloadLength: payloadLength)
        if active.writeOffset + size > active.capacity { try makeRoom(for: size) }
    }

    /// Writes one record and returns its index once it is committed under the policy.
    @discardableResult
    public func append(_ payload: UnsafeRawBufferPointer, term: UInt64 = 0) throws(LogError) -> UInt64 {
        let index = try submit(payload, term: term)
        try waitForCommit(index)
        return index
    }

    @discardableResult
    public func append(_ payload: [UInt8], term: UInt64 = 0) throws(LogError) -> UInt64 {
        try withBytes(payload) { (raw) throws(LogError) -> UInt64 in try append(raw, term: term) }
    }

    /// Async form of ``append(_:term:)-7x9c0``: suspends (never blocks a thread) until committed.
    @discardableResult
    public func append(_ payload: [UInt8], term: UInt64 = 0) async throws(LogError) -> UInt64 {
        // Submit and wait under one acquisition of the lock: the hot path of async appenders.
        var index: UInt64 = 0
        let error: LogError? = await withUnsafeContinuation { continuation in
            state.lock()
            defer { state.unlock() }
            do throws(LogError) {
                index = try withBytes(payload) { (raw) throws(LogError) -> UInt64 in try submitLocked(raw, term: term) }
            } catch {
                continuation.resume(returning: error)
                return
            }
            awaitCommitLocked(index, continuation)
        }
        if let error { throw error }
        return index
    }

    private enum CommitStatus { case committed, failed(LogError), pending }

    private func statusLocked(_ index: UInt64) -> CommitStatus {
        if durableIndex >= index { return .committed }
        if let failure { return .failed(failure) }
        if isClosed { return .failed(.closed) }
        if options.fsyncPolicy != .always && index < nextIndex { return .committed }
        return .pending
    }

    /// Blocks until the record with `index` (from ``submit(_:term:)``) is committed.
    public func waitForCommit(_ index: UInt64) throws(LogError) {
        state.lock()
        defer { state.unlock() }
        while true {
            switch statusLocked(index) {
            case .committed: return
            case .failed(let error): throw error
            case .pending: if syncInProgress { waitForProgress() } else { syncLocked() }
            }
        }
    }

    /// Suspends until the record with `index` (from ``submit(_:term:)``) is committed.
    public func commit(_ index: UInt64) async throws(LogError) {
        state.lock()
        let status = statusLocked(index)
        state.unlock()
        switch status {
        case .committed: return
        case .failed(let error): throw error
        case .pending: break
        }
        let error: LogError? = await withUnsafeContinuation { continuation in
            state.lock()
            defer { state.unlock() }
            awaitCommitLocked(index, continuation)
        }
        if let error { throw error }
    }

    /// Resumes `continuation` now if `index` is settled, else queues it for the sync that will
    /// cover it.
    private func awaitCommitLocked(_ index: UInt64, _ continuation: UnsafeContinuation<LogError?, Never>) {
        awaitCommitLocked(index, .task(continuation))
    }

    /// Calls `callback` once the record with `index` is committed (nil) or the writer failed:
    /// at once on this thread if it is settled already, else later from the thread that syncs,
    /// possibly with the log's lock held, so the callback must only hand the news on (say, to an
    /// event loop) and never call back into the log.
    public func onCommit(_ index: UInt64, _ callback: @escaping @Sendable (LogError?) -> Void) {
        state.lock()
        switch statusLocked(index) {
        case .committed:
            state.unlock()
            callback(nil)
        case .failed(let error):
            state.unlock()
            callback(error)
        case .pending:
            awaitCommitLocked(index, .callback(callback))
            state.unlock()
        }
    }

    private func awaitCommitLocked(_ index: UInt64, _ resumption: Waiter.Resumption) {
        switch statusLocked(index) {
        case .committed: Waiter(index: index, resumption: resumption).resume(returning: nil)
        case .failed(let error): Waiter(index: index, resumption: resumption).resume(returning: error)
        case .pending:
            waiters.append(Waiter(index: index, resumption: resumption))
            if waiters.count == 1 { gatherStart = monotonicNanoseconds() }
            // Wake the flusher when a batch starts and when it is as large as recent ones.
            if !syncInProgress && (waiters.count == 1 || unsyncedRecords >= gatherTarget) { flusherWork.signal() }
        }
    }

    /// Makes everything written so far durable now, whatever the policy.
    public func sync() throws(LogError) {
        state.lock()
        defer { state.unlock() }
        let target = nextIndex - 1
        while durableIndex < target || sealing != nil {
            if let failure { throw failure }
            if syncInProgress { waitForProgress() } else { syncLocked() }
        }
    }

    /// Compaction: deletes the sealed segments whose every record is at or below `index` (a
    /// snapshot covers them), oldest first, and makes the removals durable. The active segment
    /// is never deleted. Returns the names removed. A crash part-way leaves a prefix of them
    /// deleted: the log still starts at a segment boundary with no gap after it.
    @discardableResult
    public func removeSegments(coveredThrough index: UInt64) throws(LogError) -> [String] {
        // A segment is covered when the next one starts at or below index + 1.
        let doomed: [UInt64] = state.withLock {
            var doomed: [UInt64] = []
            for (position, first) in segmentFirstIndexes.enumerated().dropLast() where segmentFirstIndexes[position + 1] <= index + 1 {
                doomed.append(first)
            }
            return doomed
        }
        guard !doomed.isEmpty else { return [] }
        var removed: [String] = []
        for first in doomed {
            let name = LogFormat.segmentName(firstIndex: first)
            do { try fileSystem.remove(directory.appending(name)) } catch { throw .disk(error) }
            removed.append(name)
            // Forget it at once: a reader of the list never sees a deleted segment.
            state.withLock {
                segmentFirstIndexes.removeFirst()
                firstIndex = segmentFirstIndexes.first ?? firstIndex
            }
        }
        do { try fileSystem.syncDirectory(directory) } catch { throw .disk(error) }
        return removed
    }

    /// Names of the segments, oldest first (the active one last).
    public var segmentNames: [String] { state.withLock { segmentFirstIndexes.map { LogFormat.segmentName(firstIndex: $0) } } }

    /// One `fdatasync` covering every record written so far. Called with `state` held; releases
    /// it during the sync so that appends go on and form the next batch.
    private func syncLocked() {
        syncInProgress = true
        let target = nextIndex - 1
        let segment = active
        let capacity = segment.capacity
        let sealSegment = sealing
        let batchOffset = pendingOffset
        let batchCount = pendingCount
        swap(&pending, &inflight)
        pendingCount = 0
        let batch = UnsafeRawBufferPointer(start: inflight.baseAddress, count: batchCount)
        state.unlock()
        let start = monotonicNanoseconds()
        var syncError: DiskError?
        do {
            if let sealSegment {
                // The full segment first: cut at its last record and synced, so that it ends at
                // a record boundary; then the active one and, last, the directory entry that
                // names it. Only then do the active segment's records count as durable.
                try sealSegment.handle.truncate(to: sealSegment.writeOffset)
                try sealSegment.handle.syncData()
            }
            if batchCount > 0 { try segment.handle.write(batch, at: batchOffset) }
            try segment.handle.syncData()
            if sealSegment != nil { try fileSystem.syncDirectory(directory) }
        } catch {
            syncError = error
        }
        let elapsed = monotonicNanoseconds() - start
        state.lock()
        syncInProgress = false
        if syncError == nil {
            segment.syncedCapacity = max(segment.syncedCapacity, capacity)
            if let sealSegment, sealing === sealSegment { sealing = nil }
        }
        if let syncError {
            fail(.writerFailed(syncError))
            return
        }
        let records = target > durableIndex ? Int(target - durableIndex) : 0
        if records > 0 {
            counters.recordBatch(records: UInt64(records), nanoseconds: elapsed)
            fsyncTimer.recordNanoseconds(elapsed)
            batchRecorder.record(records)
        }
        lastSyncNanoseconds = elapsed
        let ready = markDurable(target)
        gatherTarget = max(records, gatherTarget - max(1, gatherTarget / 8), 1)
        if !waiters.isEmpty {
            gatherStart = monotonicNanoseconds()
            flusherWork.signal()  // async waiters remain: the flusher leads their sync
        }
        notifyProgress()
        if !ready.isEmpty {
            // Resume outside the lock: appenders submitting the next batch must not wait on it.
            state.unlock()
            for waiter in ready { waiter.resume(returning: nil) }
            state.lock()
        }
    }

    /// Advances the durable index; returns the async waiters it satisfies (removed from the list),
    /// for the caller to resume.
    private func markDurable(_ index: UInt64) -> [Waiter] {
        guard index > durableIndex else { return [] }
        durableIndex = index
        guard !waiters.isEmpty else { return [] }
        // Waiters usually all qualify: hand the whole list over without copying.
        if waiters.allSatisfy({ $0.index <= index }) {
            defer { waiters = []; waiters.reserveCapacity(64) }
            return waiters
        }
        let ready = waiters.filter { $0.index <= index }
        waiters.removeAll { $0.index <= index }
        return ready
    }

    private func fail(_ error: LogError) {
        if failure == nil { failure = error }
        for waiter in waiters { waiter.resume(returning: failure) }
        waiters.removeAll()
        notifyProgress()
        flusherWork.signal()
    }

    /// Waits on `progress` (lock held), counted so that nobody signals an empty room.
    private func waitForProgress() {
        blockedThreads += 1
        progress.wait()
        blockedThreads -= 1
    }

    private func notifyProgress() {
        if blockedThreads > 0 { progress.broadcast() }
    }

    /// How often the flusher syncs a nearly full segment under `no` and `everysec`.
    static let preSealNanoseconds: UInt64 = 20_000_000

    /// True once the active segment's last eighth is being written (the flusher syncs it often).
    private var activeNearlyFull: Bool { active.writeOffset >= active.capacity - active.capacity / 8 }

    /// Starts a new segment (or grows an empty one) so that a record of `size` bytes fits.
    private func makeRoom(for size: Int) throws(LogError) {
        if active.writeOffset == 0 {
            do {
                // A sealed segment is never empty: grow this one instead.
                try active.handle.preallocate(size: size)
                if options.fsyncPolicy != .always { try active.handle.mapForWriting(size: size) }
                active.capacity = size
                publishRoom()
                return
            } catch {
                fail(.writerFailed(error))
                throw failure!
            }
        }
        // Under `always` every record is synced before it is acknowledged: the seal is part of
        // the writer's path. Under `no` and `everysec` the flusher seals the full segment while
        // the writer goes on in the next one.
        let switchStart = monotonicNanoseconds()
        defer { counters.maxSegmentSwitchNanoseconds = max(counters.maxSegmentSwitchNanoseconds, monotonicNanoseconds() - switchStart) }
        // One seal at a time: a whole segment was filled while the last one was being sealed.
        while sealing != nil && failure == nil {
            flusherWork.signal()
            waitForProgress()
        }
        let sealInBackground = options.fsyncPolicy != .always && active.syncedCapacity == active.capacity
        if !sealInBackground {
            while syncInProgress { waitForProgress() }
        }
        if let failure { throw failure }
        assert(sealing == nil, "a segment is still being sealed")
        do {
            if !sealInBackground {
                // Seal: the old segment is durable before the new one gets its first record.
                try writePendingLocked()
                try active.handle.truncate(to: active.writeOffset)
                try active.handle.syncData()
                for waiter in markDurable(nextIndex - 1) { waiter.resume(returning: nil) }
            }
            let segment = try Log.createSegment(
                directory: directory, fileSystem: fileSystem, firstIndex: nextIndex,
                capacity: max(options.segmentSize, size), mapped: options.fsyncPolicy != .always,
                durable: !sealInBackground)
            if sealInBackground { sealing = active }
            active = segment
            segmentFirstIndexes.append(segment.firstIndex)
            counters.segmentsCreated += 1
            if sealInBackground { flusherWork.signal() }
        } catch {
            fail(.writerFailed(error))
            throw failure!
        }
    }

    /// True while something written is not yet durable, or a segment is not yet sealed.
    private var hasUnsyncedWork: Bool { durableIndex < nextIndex - 1 || sealing != nil }

    /// Blocks until no segment waits to be sealed (or the log failed). Tests use it to keep
    /// the order of disk operations, and so a seeded crash, deterministic.
    func waitUntilSealed() {
        state.lock()
        defer { state.unlock() }
        while sealing != nil && failure == nil && !isClosed {
            flusherWork.signal()
            waitForProgress()
        }
    }

    /// Writes the `always` batch now, with the lock held (rotation, truncation, policy change).
    private func writePendingLocked() throws(DiskError) {
        guard pendingCount > 0 else { return }
        try active.handle.write(UnsafeRawBufferPointer(start: pending.baseAddress, count: pendingCount), at: pendingOffset)
        pendingCount = 0
    }

    // MARK: Background flush

    private func flusherLoop() {
        state.lock()
        var nextFlush = monotonicNanoseconds() + nanoseconds(options.everysecInterval)
        var lastFlush: UInt64 = 0
        while !isClosed && failure == nil {
            switch options.fsyncPolicy {
            case .always:
                prefaultRequest = nil  // (asked for before the policy changed)
                guard !waiters.isEmpty && !syncInProgress else {
                    flusherWork.wait()
                    continue
                }
                // Let the appenders the last sync resumed come back before the next one.
                let deadline = gatherStart + min(lastSyncNanoseconds, maxGatherNanoseconds)
                let now = monotonicNanoseconds()
                if unsyncedRecords < gatherTarget && now < deadline {
                    if lastSyncNanoseconds > maxPolledSyncNanoseconds {
                        // A slow disk: sleep until the batch is full (an appender's waiter
                        // wakes us) or the deadline passes. Polling that long would take a core
                        // the appenders need: on a 2-core machine with 250 µs syncs, the poll
                        // cost the flusher 150 µs of CPU a sync.
                        flusherWork.wait(nanoseconds: deadline - now)
                        continue
                    }
                    // The appenders the last sync resumed come back within microseconds: poll
                    // for them (yielding the core) rather than sleep, since a futex wake-up on a
                    // virtual machine can take longer than the sync itself.
                    let enough = durableIndex + 1 + UInt64(gatherTarget)  // nextIndex once the batch is full
                    state.unlock()
                    while nextIndexMirror.load(ordering: .relaxed) < enough && monotonicNanoseconds() < deadline {
                        sched_yield()
                    }
                    state.lock()
                } else {
                    syncLocked()
                }
            case .everysec, .no:
                if let request = prefaultRequest {
                    // Outside the lock: the writer goes on meanwhile (the handle keeps the
                    // mapping from going away under it).
                    prefaultRequest = nil
                    state.unlock()
                    request.segment.handle.prefault(request.range)
                    state.lock()
                    continue
                }
                if sealing != nil {
                    if syncInProgress { waitForProgress() } else { syncLocked() }
                    continue
                }
                // Once the active segment is nearly full, sync it often (under `no` too: the
                // same bytes are synced at the seal anyway), so that its seal has little left to
                // sync and its preallocated size is durable (the seal can then run here, in the
                // background, rather than on the writer's path).
                let now = monotonicNanoseconds()
                let everysec = options.fsyncPolicy == .everysec
                var due = everysec ? nextFlush : .max
                if activeNearlyFull { due = min(due, lastFlush &+ Self.preSealNanoseconds) }
                if now >= due {
                    if !syncInProgress && durableIndex < nextIndex - 1 { syncLocked() }
                    lastFlush = monotonicNanoseconds()
                    if everysec && now >= nextFlush { nextFlush = lastFlush + nanoseconds(options.everysecInterval) }
                } else if due == .max {
                    flusherWork.wait()
                } else {
                    flusherWork.wait(nanoseconds: due - now)
                }
            }
        }
        flusherRunning = false
        notifyProgress()
        state.unlock()
    }

    private func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        return UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
    }

    // MARK: State

    /// The fsync policy in force; it can change while the log is open (`CONFIG SET appendfsync`).
    public var fsyncPolicy: FsyncPolicy {
        get { FsyncPolicy.allCases[Int(policyMirror.load(ordering: .acquiring))] }
        set {
            state.lock()
            defer { state.unlock() }
            guard newValue != options.fsyncPolicy, failure == nil, !isClosed else { return }
            while syncInProgress { waitForProgress() }
            // Records batched under `always` are written and synced before the switch, so that
            // none is acknowledged under the new policy without having reached the OS.
            if hasUnsyncedWork { syncLocked() }
            if failure != nil { return }
            do {
                try active.handle.mapForWriting(size: newValue == .always ? 0 : active.capacity)
            } catch {
                fail(.writerFailed(error))
                return
            }
            options.fsyncPolicy = newValue
            policyMirror.store(Self.policyCode(newValue), ordering: .releasing)
            flusherWork.signal()
        }
    }

    public var stats: LogStats {
        state.withLock {
            var copy = counters
            copy.writtenIndex = nextIndex - 1
            copy.durableIndex = durableIndex
            copy.groupCommitTarget = gatherTarget
            return copy
        }
    }

    /// Index of the last record written, or `firstIndex - 1` when the log is empty.
    public var lastIndex: UInt64 { nextIndexMirror.load(ordering: .acquiring) - 1 }
    /// Index of the first record the log holds (or will hold).
    public var firstLogIndex: UInt64 { state.withLock { firstIndex } }
    /// Last index known to be durable on disk.
    public var durableLogIndex: UInt64 { state.withLock { durableIndex } }
    /// The error that stopped the writer, if any.
    public var writerFailure: LogError? { state.withLock { failure } }

    // MARK: Suffix truncation

    /// Removes every record after `index`, crash-safely: later segments are deleted newest
    /// first (each deletion made durable), then the segment holding `index + 1` is cut there.
    /// A crash at any step leaves a log that is a prefix of the one before. Raft uses this to
    /// drop entries that conflict with a new leader's.
    public func truncate(after index: UInt64) throws(LogError) {
        state.lock()
        defer { state.unlock() }
        if let failure { throw failure }
        if isClosed { throw .closed }
        guard index + 1 >= firstIndex, index < nextIndex else {
            throw .indexOutOfRange(index: index, first: firstIndex, last: nextIndex - 1)
        }
        if index == nextIndex - 1 { return }
        while syncInProgress || sealing != nil {
            if syncInProgress { waitForProgress() } else { syncLocked() }
            if let failure { throw failure }
        }
        do {
            try writePendingLocked()
            let keepFrom = segmentFirstIndexes.lastIndex { $0 <= index + 1 } ?? 0
            try LogRepair.remove(
                segmentFirstIndexes[(keepFrom + 1)...].map { LogFormat.segmentName(firstIndex: $0) },
                directory: directory, fileSystem: fileSystem)
            let keptFirst = segmentFirstIndexes[keepFrom]
            segmentFirstIndexes.removeSubrange((keepFrom + 1)...)
            let handle: any DiskFile
            if keptFirst == active.firstIndex {
                handle = active.handle
            } else {
                handle = try fileSystem.open(directory.appending(LogFormat.segmentName(firstIndex: keptFirst)), create: false)
            }
            var bytes: [UInt8] = []
            let count = try handle.readAll(into: &bytes)
            var cut = 0
            bytes.withUnsafeBytes { raw in
                _ = SegmentScanner.scan(UnsafeRawBufferPointer(rebasing: raw[0..<count]), firstIndex: keptFirst) { record in
                    if record.index <= index { cut = record.offset + record.size }
                }
            }
            try handle.truncate(to: cut)
            try handle.syncData()
            let capacity = max(options.segmentSize, cut)
            try handle.preallocate(size: capacity)
            try handle.mapForWriting(size: options.fsyncPolicy == .always ? 0 : capacity)
            active = ActiveSegment(
                handle: handle, name: LogFormat.segmentName(firstIndex: keptFirst), firstIndex: keptFirst,
                capacity: capacity, writeOffset: cut)
            nextIndex = index + 1
            durableIndex = min(durableIndex, index)
        } catch {
            fail(.writerFailed(error))
            throw failure!
        }
    }

    // MARK: Closing

    /// Makes everything written durable, stops the background flush, closes the files and
    /// releases the directory lock. Waiters still pending get ``LogError/closed``.
    public func close() throws(LogError) {
        state.lock()
        defer { state.unlock() }
        if isClosed { return }
        while syncInProgress { waitForProgress() }
        if failure == nil && hasUnsyncedWork { syncLocked() }
        isClosed = true
        let closingError = failure
        for waiter in waiters { waiter.resume(returning: closingError ?? .closed) }
        waiters.removeAll()
        notifyProgress()
        flusherWork.signal()
        while flusherRunning { waitForProgress() }
        try? active.handle.close()
        directoryLock.unlock()
        if let closingError { throw closingError }
    }
}
