import CairnStorage
import Foundation
import Synchronization
import SystemPackage

/// The store's snapshots: what recovery starts from, and the compaction of the log behind them.
///
/// `snapshot()` takes an O(1) copy of the committed state and the index of its last txn,
/// makes the log durable through that index (so a snapshot is never ahead of the log), writes
/// `snapshot-<index>.lz4` while writes go on, switches the `MANIFEST` to it, then deletes the
/// snapshots beyond ``StoreOptions/snapshotsRetained`` and the log segments the *oldest* kept
/// snapshot wholly covers (as ZooKeeper's purge keeps the logs its retained snapshots need), so
/// a damaged newest snapshot still leaves the previous one plus the log to recover from.
/// Each step is durable before the next, so a crash at any point opens to the same state.
extension Store {
    /// Snapshot bookkeeping (under `snapshotLock`).
    struct SnapshotState {
        var manifest: Manifest?
        var closed = false
        var lastError: StoreError?
        var taken = 0
    }

    /// What recovery found before the log is read: the snapshot to start from, if any.
    struct RecoveredSnapshots {
        var manifest: Manifest?
        var state: StoreState?
        var index: UInt64 = 0
        var notes: [String] = []
        /// Snapshots in the manifest that could not be used, with why.
        var failures: [String] = []
        /// Their indexes (set aside as `.damaged` files and dropped from the manifest on open).
        var failedIndexes: [UInt64] = []
    }

    // MARK: Taking snapshots

    /// Takes a snapshot now, on this thread (writes go on meanwhile), then compacts the log
    /// behind it. Returns what was written. One snapshot runs at a time: a call while another
    /// runs waits for it, then takes its own.
    ///
    /// ```swift
    /// let stats = try store.snapshot()
    /// print(stats.file, stats.header.index, stats.compressionRatio)
    /// ```
    @discardableResult
    public func snapshot(progress: (@Sendable (Int) -> Void)? = nil) throws(StoreError) -> SnapshotFile.Stats {
        snapshotLock.lock()
        defer { snapshotLock.unlock() }
        do {
            let stats = try snapshotLocked(progress: progress)
            snapshotState.lastError = nil
            options.logger.info("snapshot \(stats.file): \(stats.header.keys) keys, \(stats.header.nodes) znodes, \(stats.fileBytes) bytes (ratio \(String(format: "%.2f", stats.compressionRatio))), \(String(format: "%.2f", stats.seconds)) s")
            return stats
        } catch {
            snapshotState.lastError = error
            options.logger.error("snapshot failed: \(error)")
            throw error
        }
    }

    private func snapshotLocked(progress: (@Sendable (Int) -> Void)?) throws(StoreError) -> SnapshotFile.Stats {
        guard !snapshotState.closed else { throw .closed }
        let (state, index) = committedView()
        // The snapshot must never be ahead of the durable log: a crash would then reopen with
        // a log that ends before it, and the next txn would reuse an index.
        do {
            if index > 0 { try log.waitForCommit(index) }
            try log.sync()
        } catch { throw .log(error) }
        let fileSystem = options.fileSystem
        let header = SnapshotFormat.Header(
            index: index, time: clock.nowMilliseconds(), keys: state.keyCount, nodes: state.tree.count,
            sessions: state.tree.sessions.count)
        let stats: SnapshotFile.Stats
        do {
            stats = try SnapshotFile.write(state, header: header, directory: directory, fileSystem: fileSystem,
                                           level: options.snapshotCompressionLevel, progress: progress)
            let previous = snapshotState.manifest?.snapshots.filter { $0 < index } ?? []
            let all = [index] + previous
            let kept = Array(all.prefix(options.snapshotsRetained))
            let manifest = Manifest(snapshots: kept)
            try manifest.write(directory: directory, fileSystem: fileSystem)
            snapshotState.manifest = manifest
            snapshotState.taken += 1
            // Compaction: what the oldest kept snapshot covers is no longer needed to recover
            // from any kept one.
            try Self.removeSnapshots(all.dropFirst(kept.count), directory: directory, fileSystem: fileSystem)
            do { try log.removeSegments(coveredThrough: kept.last!) } catch { throw StoreError.log(error) }
        } catch let error as SnapshotError {
            throw .snapshot(error)
        } catch let error as StoreError {
            throw error
        } catch {
            preconditionFailure("unexpected error \(error)")
        }
        withWriterLock {
            txnsSinceSnapshot = log.lastIndex - index
            bytesSinceSnapshot = 0
        }
        return stats
    }

    /// Starts a snapshot on a background thread unless one is already on its way (writer lock
    /// held: only sets a flag and starts a thread).
    func startBackgroundSnapshot() {
        guard snapshotInFlight.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else { return }
        txnsSinceSnapshot = 0  // do not ask again while this one runs
        bytesSinceSnapshot = 0
        startThread(name: "cairn-snapshot") { [self] in
            _ = try? snapshot()
            snapshotInFlight.store(false, ordering: .releasing)
        }
    }

    /// Snapshots taken since open, and the last one's error (nil when it succeeded).
    public var snapshotStatus: (manifest: Manifest?, taken: Int, lastError: StoreError?) {
        snapshotLock.withLock { (snapshotState.manifest, snapshotState.taken, snapshotState.lastError) }
    }

    // MARK: Recovery

    /// Reads the manifest and the newest snapshot that decodes; a damaged one is skipped for
    /// the previous (whether the log behind it is still there is checked once the log is read).
    static func loadSnapshot(directory: FilePath, fileSystem: any FileSystem) throws(StoreError) -> RecoveredSnapshots {
        var recovered = RecoveredSnapshots()
        do { recovered.manifest = try Manifest.read(directory: directory, fileSystem: fileSystem) } catch { throw .snapshot(error) }
        for index in recovered.manifest?.snapshots ?? [] {
            let path = directory.appending(SnapshotFormat.fileName(index: index))
            do {
                let (state, _) = try SnapshotFile.read(path, fileSystem: fileSystem)
                recovered.state = state
                recovered.index = index
                break
            } catch {
                recovered.failures.append("\(SnapshotFormat.fileName(index: index)) is unusable: \(error)")
                recovered.failedIndexes.append(index)
            }
        }
        return recovered
    }

    /// The log must hold every txn after the snapshot: no gap, and not end before it.
    static func checkContinuity(log: Log, recovered: inout RecoveredSnapshots) throws(StoreError) {
        let base = recovered.index
        let first = log.firstLogIndex
        let last = log.lastIndex
        if first > base + 1 {
            var reason = recovered.index == 0
                ? "no snapshot can be used and the log starts at index \(first), not 1"
                : "the snapshot at index \(base) needs the log from index \(base + 1), but it starts at \(first)"
            if !recovered.failures.isEmpty { reason += " (" + recovered.failures.joined(separator: "; ") + ")" }
            throw .unrecoverable(reason)
        }
        if last < base {
            throw .unrecoverable("the log ends at index \(last), before the snapshot's index \(base): log segments are missing")
        }
        if !recovered.failures.isEmpty {
            let from = base == 0 ? "the whole log" : "\(SnapshotFormat.fileName(index: base)) and the log after it"
            recovered.notes = recovered.failures + ["recovered from \(from)"]
        }
    }

    /// Finishes what a crash interrupted: temporary files, snapshots the manifest does not
    /// name, and log segments the oldest kept snapshot covers. A snapshot that could not be
    /// read is renamed `snapshot-<index>.lz4.damaged` (kept for inspection, never read again)
    /// and dropped from the manifest, so it neither counts toward retention nor is tried again.
    static func cleanUp(directory: FilePath, log: Log, recovered: inout RecoveredSnapshots, fileSystem: any FileSystem) throws(StoreError) {
        if let manifest = recovered.manifest, !recovered.failedIndexes.isEmpty {
            for index in recovered.failedIndexes {
                let path = directory.appending(SnapshotFormat.fileName(index: index))
                guard fileSystem.fileExists(path) else { continue }
                do { try fileSystem.rename(path, to: directory.appending(SnapshotFormat.fileName(index: index) + ".damaged")) } catch { throw .log(.disk(error)) }
            }
            let usable = Manifest(snapshots: manifest.snapshots.filter { !recovered.failedIndexes.contains($0) })
            do { try usable.write(directory: directory, fileSystem: fileSystem) } catch { throw .snapshot(error) }
            recovered.manifest = usable
            recovered.notes.append("set aside " + recovered.failedIndexes.map { SnapshotFormat.fileName(index: $0) + ".damaged" }.joined(separator: ", "))
        }
        let live = Set(recovered.manifest?.snapshots ?? [])
        var names: [String] = []
        do { names = try fileSystem.listDirectory(directory) } catch { throw .log(.disk(error)) }
        var removed = false
        for name in names {
            let orphan = name.hasSuffix(".tmp") && (name.hasPrefix("snapshot-") || name.hasPrefix(Manifest.fileName))
            let unlisted = SnapshotFormat.index(fromFileName: name).map { !live.contains($0) } ?? false
            guard orphan || unlisted else { continue }
            do { try fileSystem.remove(directory.appending(name)) } catch { throw .log(.disk(error)) }
            removed = true
        }
        if removed { do { try fileSystem.syncDirectory(directory) } catch { throw .log(.disk(error)) } }
        // Behind the oldest kept snapshot, once one was used (the used one is never older).
        if recovered.index > 0, let oldest = recovered.manifest?.snapshots.last {
            do { try log.removeSegments(coveredThrough: min(oldest, recovered.index)) } catch { throw .log(error) }
        }
    }

    static func removeSnapshots(_ indexes: some Sequence<UInt64>, directory: FilePath, fileSystem: any FileSystem) throws(SnapshotError) {
        var removed = false
        for index in indexes {
            let path = directory.appending(SnapshotFormat.fileName(index: index))
            guard fileSystem.fileExists(path) else { continue }
            do { try fileSystem.remove(path) } catch { throw .disk(error) }
            removed = true
        }
        if removed { do { try fileSystem.syncDirectory(directory) } catch { throw .disk(error) } }
    }
}

extension Store {
    /// What a directory holds, read without opening it for writing (no lock, nothing cut or
    /// deleted): the state recovery would build, the index it ends at, and what was skipped.
    /// For `cairn inspect` and tools; a live directory may be read too.
    public static func readState(directory: FilePath, fileSystem: any FileSystem = PosixFileSystem()) throws(StoreError) -> (state: StoreState, index: UInt64, notes: [String]) {
        var recovered = try loadSnapshot(directory: directory, fileSystem: fileSystem)
        var state = recovered.state ?? StoreState()
        let base = recovered.index
        var last = base
        var scratch = StoreState.Changes(recording: .none)
        do {
            let scan = try LogDirectoryScan.run(directory: directory, fileSystem: fileSystem) { record in
                if record.index <= base { return }
                try state.replay(record, scratch: &scratch)
                last = record.index
            }
            if case .corruption(let error) = scan.problem { throw StoreError.log(error) }
            let first = scan.firstIndex ?? base + 1
            if first > base + 1 {
                throw StoreError.unrecoverable("the snapshot at index \(base) needs the log from index \(base + 1), but it starts at \(first)")
            }
        } catch let error as StoreError {
            throw error
        } catch let error as LogError {
            throw .log(error)
        } catch {
            preconditionFailure("unexpected error \(error)")
        }
        if !recovered.failures.isEmpty { recovered.notes = recovered.failures }
        return (state, last, recovered.notes)
    }
}
