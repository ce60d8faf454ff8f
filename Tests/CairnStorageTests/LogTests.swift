import CairnStorage
import Dispatch
import CairnTesting
import SystemPackage
import Testing

@Suite struct LogTests {
    @Test(arguments: FsyncPolicy.allCases)
    func appendsSurviveCloseAndReopen(policy: FsyncPolicy) throws {
        let disk = SimulatedFileSystem()
        let options = LogOptions(fsyncPolicy: policy, segmentSize: 4096)
        let log = try Log.open(directory: dataDirectory, options: options, fileSystem: disk)
        for i in 1...300 { #expect(try log.append(payload(i), term: UInt64(i / 100)) == UInt64(i)) }
        try log.close()
        let (records, reopened) = try readAllRecords(dataDirectory, fileSystem: disk, options: options)
        defer { try? reopened.close() }
        #expect(records.count == 300)
        for (position, (index, bytes)) in records.enumerated() {
            #expect(index == UInt64(position + 1))
            #expect(bytes == payload(position + 1))
        }
        #expect(reopened.recovery.problem == nil)
        #expect(reopened.recovery.segments.count > 5, "4 KiB segments must have rotated")
        #expect(reopened.lastIndex == 300)
        #expect(try reopened.append(payload(301)) == 301)
    }

    @Test func segmentsRotateAtTheConfiguredSize() throws {
        let disk = SimulatedFileSystem()
        let log = try Log.open(directory: dataDirectory, options: LogOptions(segmentSize: 4096), fileSystem: disk)
        let record = [UInt8](repeating: 7, count: 1000)  // 1032 bytes on disk: three fit in 4096
        for _ in 0..<7 { try log.append(record) }
        try log.close()
        let names = try disk.listDirectory(dataDirectory).filter { $0.hasSuffix(".seg") }.sorted()
        #expect(names == [1, 4, 7].map { LogFormat.segmentName(firstIndex: $0) })
        // Sealed segments are cut to their records; the active one stays preallocated.
        #expect(disk.contents(dataDirectory.appending(names[0]))?.count == 3 * 1032)
        #expect(disk.contents(dataDirectory.appending(names[2]))?.count == 4096)
    }

    @Test func aRecordLargerThanASegmentGetsItsOwn() throws {
        let disk = SimulatedFileSystem()
        let options = LogOptions(segmentSize: 4096)
        let log = try Log.open(directory: dataDirectory, options: options, fileSystem: disk)
        try log.append([1, 2, 3])
        let big = [UInt8](repeating: 9, count: 20_000)
        try log.append(big)
        try log.append([4])
        try log.close()
        let (records, reopened) = try readAllRecords(dataDirectory, fileSystem: disk, options: options)
        try reopened.close()
        #expect(records.map(\.1) == [[1, 2, 3], big, [4]])
    }

    @Test func firstIndexOfAnEmptyLogIsConfigurable() throws {
        let disk = SimulatedFileSystem()
        let log = try Log.open(directory: dataDirectory, options: LogOptions(firstIndex: 1000), fileSystem: disk)
        #expect(try log.append([1]) == 1000)
        try log.close()
        let (records, reopened) = try readAllRecords(dataDirectory, fileSystem: disk)
        try reopened.close()
        #expect(records.map(\.0) == [1000])
    }

    @Test func aDirectoryOpensOnlyOnce() throws {
        let disk = SimulatedFileSystem()
        let log = try Log.open(directory: dataDirectory, fileSystem: disk)
        #expect(throws: LogError.locked(directory: dataDirectory.string)) {
            try Log.open(directory: dataDirectory, fileSystem: disk)
        }
        try log.close()
        try Log.open(directory: dataDirectory, fileSystem: disk).close()
    }

    @Test func theRealLockExcludesASecondOpener() throws {
        let directory = TemporaryDirectory("lock")
        defer { directory.cleanup() }
        let log = try Log.open(directory: directory.path)
        #expect(throws: LogError.locked(directory: directory.path.string)) { try Log.open(directory: directory.path) }
        try log.append([1, 2, 3])
        try log.close()
        let (records, reopened) = try readAllRecords(directory.path, fileSystem: PosixFileSystem())
        try reopened.close()
        #expect(records.map(\.1) == [[1, 2, 3]])
    }

    @Test(arguments: FsyncPolicy.allCases)
    func realDiskRoundTripWithRotation(policy: FsyncPolicy) async throws {
        let directory = TemporaryDirectory("real")
        defer { directory.cleanup() }
        let options = LogOptions(fsyncPolicy: policy, segmentSize: 64 << 10)
        let log = try Log.open(directory: directory.path, options: options)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask {
                    for i in UInt32(0)..<200 { try await log.append(TestRecord.payload(writer: UInt32(task), sequence: i)) }
                }
            }
            try await group.waitForAll()
        }
        #expect(log.stats.appends == 1600)
        try log.close()
        let (records, reopened) = try readAllRecords(directory.path, fileSystem: PosixFileSystem(), options: options)
        try reopened.close()
        #expect(records.map(\.0) == Array(1...1600))
        #expect(Set(records.map(\.1)).count == 1600)
    }

    @Test func groupCommitSharesSyncs() async throws {
        let disk = SimulatedFileSystem()
        let log = try Log.open(directory: dataDirectory, options: LogOptions(fsyncPolicy: .always), fileSystem: disk)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<32 {
                group.addTask { for i in 0..<50 { try await log.append(payload(task + i)) } }
            }
            try await group.waitForAll()
        }
        let stats = log.stats
        try log.close()
        #expect(stats.appends == 1600)
        #expect(stats.durableIndex == 1600)
        #expect(stats.syncs < 1600, "32 concurrent appenders must share syncs (\(stats.syncs) syncs)")
        #expect(stats.largestBatch > 1)
        #expect(stats.batchSizeBuckets.reduce(0, +) == stats.syncs)
    }

    @Test func theGroupCommitTargetFallsBackToOneAfterABurst() async throws {
        let disk = SimulatedFileSystem()
        let log = try Log.open(directory: dataDirectory, options: LogOptions(fsyncPolicy: .always), fileSystem: disk)
        // The burst, without depending on timing: syncs are held until all 32 appenders have
        // written a record (each waits for it before its next), so they share one sync.
        disk.holdSyncs()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<32 { group.addTask { for i in 0..<20 { try await log.append(payload(task + i)) } } }
            let deadline = ContinuousClock.now + .seconds(30)
            while log.stats.writtenIndex < 32 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(1)) }
            disk.releaseSyncs()
            try await group.waitForAll()
        }
        // The target follows batch sizes; one of 8 or more puts it where `x - x / 8` never left.
        #expect(log.stats.largestBatch >= 8, "the burst did not batch: \(log.stats.largestBatch)")
        // A lone appender afterwards: the target decays by at least one per sync.
        for i in 0..<64 { try await log.append(payload(i)) }
        #expect(log.stats.groupCommitTarget == 1, "a lone appender must not keep waiting for a batch")
        try log.close()
    }

    /// One waiter may stand for many records (an event loop registers once for a tick's
    /// requests): the batch size the flusher gathers for counts records, so that it waits for
    /// the loop's next tick of as many requests, not for one more waiter.
    @Test func theGroupCommitTargetCountsRecordsNotWaiters() throws {
        let disk = SimulatedFileSystem()
        let log = try Log.open(directory: dataDirectory, options: LogOptions(fsyncPolicy: .always), fileSystem: disk)
        // 16 records and one waiter for the last: nothing syncs before someone waits, so the
        // flusher's sync covers all 16.
        for i in 1...16 { #expect(try payload(i).withUnsafeBytes { try log.submit($0) } == UInt64(i)) }
        let done = DispatchSemaphore(value: 0)
        log.onCommit(16) { error in
            #expect(error == nil)
            done.signal()
        }
        #expect(done.wait(timeout: .now() + 10) == .success, "the flusher never synced the batch")
        let stats = log.stats
        #expect(stats.syncs == 1 && stats.largestBatch == 16 && stats.durableIndex == 16)
        #expect(stats.groupCommitTarget == 16, "the target counts the 16 records, not the one waiter: \(stats.groupCommitTarget)")
        try log.close()
    }

    @Test func truncateAfterDropsASuffixAcrossSegments() throws {
        let disk = SimulatedFileSystem()
        let options = LogOptions(fsyncPolicy: .always, segmentSize: 4096)
        let log = try Log.open(directory: dataDirectory, options: options, fileSystem: disk)
        for i in 1...100 { try log.append(payload(i, size: 200)) }
        try log.truncate(after: 37)
        #expect(log.lastIndex == 37)
        #expect(try log.append([0xEE]) == 38)
        #expect(throws: LogError.self) { try log.truncate(after: 500) }
        try log.close()
        let (records, reopened) = try readAllRecords(dataDirectory, fileSystem: disk, options: options)
        try reopened.close()
        #expect(records.map(\.0) == Array(1...38))
        #expect(records.last?.1 == [0xEE])
        #expect(records[36].1 == payload(37, size: 200))
    }

    @Test func policyCanChangeWhileOpen() throws {
        let disk = SimulatedFileSystem()
        let log = try Log.open(directory: dataDirectory, options: LogOptions(fsyncPolicy: .no), fileSystem: disk)
        try log.append([1])
        log.fsyncPolicy = .always
        #expect(log.durableLogIndex == 1, "switching to always syncs what was written")
        try log.append([2])
        #expect(log.durableLogIndex == 2)
        log.fsyncPolicy = .everysec
        try log.append([3])
        try log.close()
        let (records, reopened) = try readAllRecords(dataDirectory, fileSystem: disk)
        try reopened.close()
        #expect(records.map(\.1) == [[1], [2], [3]])
    }

    @Test func everysecFlushesInTheBackground() throws {
        let disk = SimulatedFileSystem()
        let options = LogOptions(fsyncPolicy: .everysec, everysecInterval: .milliseconds(20))
        let log = try Log.open(directory: dataDirectory, options: options, fileSystem: disk)
        try log.append([1, 2, 3])
        #expect(log.durableLogIndex == 0)
        let deadline = monotonicNanoseconds() + 5_000_000_000
        while log.durableLogIndex < 1 && monotonicNanoseconds() < deadline { usleepSafe(5_000) }
        #expect(log.durableLogIndex == 1, "the background flush did not sync within 5 s")
        try log.close()
    }
}

func usleepSafe(_ microseconds: UInt32) {
    var request = timespec(tv_sec: Int(microseconds / 1_000_000), tv_nsec: Int(microseconds % 1_000_000) * 1000)
    var remaining = timespec()
    _ = nanosleep(&request, &remaining)
}

#if canImport(Glibc)
import Glibc
#endif
