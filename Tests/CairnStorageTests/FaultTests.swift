import CairnStorage
import CairnTesting
import SystemPackage
import Testing

/// A failed write or sync is never retried silently and never acknowledged: the writer stops
/// and every caller gets the error until the log is reopened.
@Suite struct FaultTests {
    @Test func aFailedSyncStopsTheWriterAndIsNeverAcknowledged() throws {
        let disk = SimulatedFileSystem()
        let log = try Log.open(directory: dataDirectory, options: LogOptions(fsyncPolicy: .always), fileSystem: disk)
        try log.append([1])
        disk.inject(.init(.sync, pathContains: ".seg", errno: .ioError, count: 1))
        #expect(throws: LogError.self) { try log.append([2]) }
        guard case .writerFailed(let cause)? = log.writerFailure else {
            Issue.record("the writer did not stop")
            return
        }
        #expect(cause.errno == .ioError && cause.operation == .sync && cause.path.string.hasSuffix(".seg"))
        // The fault is gone, but the writer does not retry: the page cache can't be trusted.
        #expect(throws: LogError.writerFailed(cause)) { try log.append([3]) }
        #expect(log.durableLogIndex == 1)
        #expect(throws: LogError.self) { try log.close() }
        // Reopening recovers whatever reached the disk; only record 1 was acknowledged.
        let (records, reopened) = try readAllRecords(dataDirectory, fileSystem: disk)
        try reopened.close()
        #expect(records.first?.1 == [1])
    }

    @Test func asyncWaitersGetTheSyncError() async throws {
        let disk = SimulatedFileSystem()
        let log = try Log.open(directory: dataDirectory, options: LogOptions(fsyncPolicy: .always), fileSystem: disk)
        disk.inject(.init(.sync, pathContains: ".seg", errno: .ioError))
        let failures = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<16 {
                group.addTask {
                    do {
                        try await log.append([UInt8(i)])
                        return false
                    } catch {
                        return true
                    }
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(failures == 16, "no append may be acknowledged when its sync failed")
        #expect(log.stats.durableIndex == 0)
        try? log.close()
    }

    @Test(arguments: [FsyncPolicy.no, .everysec])
    func aFailedWriteIsReportedAtOnce(policy: FsyncPolicy) throws {
        let disk = SimulatedFileSystem()
        let log = try Log.open(directory: dataDirectory, options: LogOptions(fsyncPolicy: policy), fileSystem: disk)
        try log.append([1])
        disk.inject(.init(.write, errno: .ioError, count: 1))
        #expect(throws: LogError.self) { try log.append([2]) }
        #expect(throws: LogError.self) { try log.append([3]) }
        #expect(log.lastIndex == 1)
        try? log.close()
    }

    @Test func aFullDiskAtRotationStopsAppendsWithENOSPC() throws {
        let disk = SimulatedFileSystem()
        let log = try Log.open(directory: dataDirectory, options: LogOptions(fsyncPolicy: .always, segmentSize: 4096), fileSystem: disk)
        disk.capacity = disk.usedBytes + 2048  // room to seal, none for the next segment
        var written = 0
        var failure: LogError?
        for i in 0..<100 {
            do {
                try log.append(payload(i, size: 500))
                written += 1
            } catch {
                failure = error
                break
            }
        }
        guard case .writerFailed(let cause)? = failure else {
            Issue.record("expected the writer to fail on a full disk, got \(String(describing: failure))")
            return
        }
        #expect(cause.isOutOfSpace)
        #expect(cause.description.contains("log-"), "the error names the file: \(cause)")
        try? log.close()
        disk.capacity = nil
        let (records, reopened) = try readAllRecords(dataDirectory, fileSystem: disk)
        try reopened.close()
        #expect(records.count == written, "every acknowledged record is there, nothing else")
    }

    @Test func aFailedDirectorySyncWhenCreatingASegmentStopsTheWriter() throws {
        let disk = SimulatedFileSystem()
        let log = try Log.open(directory: dataDirectory, options: LogOptions(fsyncPolicy: .always, segmentSize: 4096), fileSystem: disk)
        disk.inject(.init(.syncDirectory, errno: .ioError))
        var acknowledged = 0
        for i in 0..<100 {
            guard (try? log.append(payload(i, size: 500))) != nil else { break }
            acknowledged += 1
        }
        #expect(acknowledged < 100)
        #expect(log.writerFailure != nil)
        try? log.close()
        disk.clearFaults()
        let (records, reopened) = try readAllRecords(dataDirectory, fileSystem: disk)
        try reopened.close()
        #expect(records.count >= acknowledged)
    }

    @Test func anUnreadableSegmentFailsTheOpenWithItsName() throws {
        let disk = SimulatedFileSystem()
        try Log.open(directory: dataDirectory, fileSystem: disk).close()
        disk.inject(.init(.read, errno: .ioError))
        do {
            _ = try Log.open(directory: dataDirectory, fileSystem: disk)
            Issue.record("open succeeded over a failing read")
        } catch let error as LogError {
            guard case .disk(let cause) = error else { Issue.record("wrong error \(error)"); return }
            #expect(cause.operation == .read && cause.path.string.contains("log-"))
        }
        // The failed open released the lock.
        disk.clearFaults()
        try Log.open(directory: dataDirectory, fileSystem: disk).close()
    }
}
