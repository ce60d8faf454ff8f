import CairnStorage
import CairnTesting
import SystemPackage
import Testing

/// Damage planted in segment files, and what open, `check` and `--fix` make of it.
@Suite struct RecoveryTests {
    let options = LogOptions(fsyncPolicy: .always, segmentSize: 8192)

    /// A closed log of `count` 100-byte records (128 bytes each on disk) and its segment names.
    func makeLog(_ count: Int, segmentSize: Int = 8192) throws -> (SimulatedFileSystem, [String]) {
        let disk = SimulatedFileSystem()
        var options = options
        options.segmentSize = segmentSize
        let log = try Log.open(directory: dataDirectory, options: options, fileSystem: disk)
        for i in 1...count { try log.append(payload(i, size: 100)) }
        try log.close()
        let names = try disk.listDirectory(dataDirectory).filter { $0.hasSuffix(".seg") }.sorted()
        return (disk, names)
    }

    func mutate(_ disk: SimulatedFileSystem, _ name: String, _ change: (inout [UInt8]) -> Void) {
        let path = dataDirectory.appending(name)
        var bytes = disk.contents(path)!
        change(&bytes)
        disk.setContents(path, bytes)
    }

    func openError(_ disk: SimulatedFileSystem) -> LogError? {
        do {
            try Log.open(directory: dataDirectory, options: options, fileSystem: disk).close()
            return nil
        } catch let error as LogError {
            return error
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    static let recordSize = LogFormat.recordSize(payloadLength: 100)  // 128

    @Test(arguments: [0, 4, 8, 16, 24, 80, 124, 127])
    func aFlippedBitInASealedSegmentStopsTheOpen(byte: Int) throws {
        let (disk, names) = try makeLog(200)
        #expect(names.count > 2)
        let offset = 3 * Self.recordSize
        mutate(disk, names[0]) { $0[offset + byte] ^= 0x10 }
        let error = openError(disk)
        guard case .corruption(let file, let at, _, let after)? = error else {
            Issue.record("expected corruption, got \(String(describing: error))")
            return
        }
        #expect(file == names[0] && at == offset)
        #expect(after > 0)
        #expect(error!.description.contains(names[0]) && error!.description.contains("offset \(offset)"))
        // Nothing was changed by the failed open.
        let scan = try LogDirectoryScan.run(directory: dataDirectory, fileSystem: disk)
        guard case .corruption = scan.problem else { Issue.record("check no longer sees the damage"); return }
    }

    @Test func aFlippedBitMidwayInTheLastSegmentIsCorruptionNotATornTail() throws {
        let (disk, names) = try makeLog(100)
        mutate(disk, names.last!) { $0[2 * Self.recordSize + 40] ^= 0x01 }
        guard case .corruption(let file, let offset, .checksumMismatch, _)? = openError(disk) else {
            Issue.record("a flipped bit before intact records must not be cut as a torn tail")
            return
        }
        #expect(file == names.last! && offset == 2 * Self.recordSize)
    }

    @Test func truncationAtEveryByteOfTheLastRecordIsCutAndReported() throws {
        let (pristine, names) = try makeLog(70)
        let last = names.last!
        let full = pristine.contents(dataDirectory.appending(last))!
        let used = LogDirectoryScan.lastNonZeroForTests(full)
        let lastStart = used - Self.recordSize
        for cut in (lastStart + 1)..<used {
            let disk = SimulatedFileSystem()
            try disk.createDirectory(dataDirectory)
            for name in names { disk.setContents(dataDirectory.appending(name), pristine.contents(dataDirectory.appending(name))!) }
            disk.setContents(dataDirectory.appending(last), Array(full[0..<cut]))
            var count = 0
            let log = try Log.open(directory: dataDirectory, options: options, fileSystem: disk) { _ in count += 1 }
            #expect(count == 69, "cut at \(cut)")
            guard case .tornTail(let tail)? = log.recovery.problem else {
                Issue.record("cut at \(cut): no torn tail reported")
                try log.close()
                continue
            }
            // Bytes are counted to the last non-zero one (the rest is indistinguishable from preallocation).
            let expectedBytes = LogDirectoryScan.lastNonZeroForTests(Array(full[0..<cut])) - lastStart
            #expect(tail.file == last && tail.offset == lastStart && tail.bytes == expectedBytes, "cut at \(cut)")
            // Appending goes on from the cut, and nothing of the old tail comes back.
            #expect(try log.append([0xAB]) == 70)
            try log.close()
            let (records, reopened) = try readAllRecords(dataDirectory, fileSystem: disk, options: options)
            #expect(reopened.recovery.problem == nil)
            try reopened.close()
            #expect(records.count == 70 && records.last!.1 == [0xAB])
        }
    }

    @Test func aPartlyZeroFilledLastRecordIsCut() throws {
        let (disk, names) = try makeLog(10)
        let start = 9 * Self.recordSize
        mutate(disk, names.last!) { bytes in for i in (start + 60)..<(start + Self.recordSize) { bytes[i] = 0 } }
        let log = try Log.open(directory: dataDirectory, options: options, fileSystem: disk)
        defer { try? log.close() }
        guard case .tornTail(let tail)? = log.recovery.problem else { Issue.record("not reported"); return }
        #expect(tail.offset == start && tail.bytes == 60 && tail.defect == .trailerMismatch)
        #expect(log.lastIndex == 9)
    }

    @Test func aWhollyZeroedLastRecordLooksLikeTheEnd() throws {
        let (disk, names) = try makeLog(10)
        let start = 9 * Self.recordSize
        mutate(disk, names.last!) { bytes in for i in start..<(start + Self.recordSize) { bytes[i] = 0 } }
        let log = try Log.open(directory: dataDirectory, options: options, fileSystem: disk)
        defer { try? log.close() }
        #expect(log.recovery.problem == nil, "zeros are what preallocation leaves: nothing to report")
        #expect(log.lastIndex == 9)
    }

    @Test func garbageAfterTheLastRecordIsATornTail() throws {
        let (disk, names) = try makeLog(10)
        let start = 10 * Self.recordSize
        mutate(disk, names.last!) { bytes in for i in start..<(start + 50) { bytes[i] = UInt8(truncatingIfNeeded: i % 200 + 1) } }
        let log = try Log.open(directory: dataDirectory, options: options, fileSystem: disk)
        defer { try? log.close() }
        guard case .tornTail(let tail)? = log.recovery.problem else { Issue.record("not reported"); return }
        #expect(tail.offset == start && tail.bytes == 50)
    }

    @Test func aLostPageBeforeWrittenBackRecordsIsCutWithThem() throws {
        // A page cache may write page 2 back and lose page 1: valid records after a zero page.
        let (disk, names) = try makeLog(100, segmentSize: 64 << 10)
        let last = names.last!
        let used = LogDirectoryScan.lastNonZeroForTests(disk.contents(dataDirectory.appending(last))!)
        #expect(used > 2 * 4096)
        mutate(disk, last) { bytes in for i in 4096..<8192 { bytes[i] = 0 } }
        let log = try Log.open(directory: dataDirectory, options: options, fileSystem: disk)
        defer { try? log.close() }
        guard case .tornTail(let tail)? = log.recovery.problem else { Issue.record("expected a torn tail"); return }
        #expect(tail.discardedRecords > 0)
        #expect(tail.offset == 4096, "records 33...64 sat on the lost page")
        #expect(tail.defect == .zeroHeaderBeforeData)
        #expect(tail.description.contains("discarded"))
    }

    @Test func aMissingSegmentIsAGap() throws {
        let (disk, names) = try makeLog(300)
        #expect(names.count >= 3)
        try disk.remove(dataDirectory.appending(names[1]))
        guard case .indexGap(let file, let expected, let found)? = openError(disk) else {
            Issue.record("a missing segment was not noticed")
            return
        }
        #expect(file == names[2])
        #expect(expected == LogFormat.segmentFirstIndex(fileName: names[1]))
        #expect(found == LogFormat.segmentFirstIndex(fileName: names[2]))
    }

    /// Under `no` and `everysec` the flusher seals a full segment while the writer goes on in
    /// the next: a power cut can take the unsynced tail of the segment before the last. It still
    /// has its preallocated zeros, so recovery knows it was never sealed: it is cut as a torn
    /// tail, and the last segment (begun after it, never synced) goes with it.
    @Test func aSegmentLeftUnsealedIsCutAndTheSegmentBegunAfterItGoes() throws {
        let (disk, names) = try makeLog(150)  // 64 + 64 + 22 records
        #expect(names.count == 3)
        let kept = 54
        mutate(disk, names[1]) { bytes in
            bytes = Array(bytes[0..<(kept * Self.recordSize)]) + [UInt8](repeating: 0, count: 8192 - kept * Self.recordSize)
        }
        let scan = try LogDirectoryScan.run(directory: dataDirectory, fileSystem: disk)
        guard case .tornTail(let tail)? = scan.problem else {
            Issue.record("expected a torn tail, got \(String(describing: scan.problem))")
            return
        }
        #expect(tail.file == names[1] && tail.offset == kept * Self.recordSize)
        #expect(tail.defect == .endsBeforeNextSegment)
        #expect(tail.removedSegments == [names[2]] && tail.removedRecords == 22)
        #expect(tail.description.contains(names[2]) && tail.description.contains("22 unsynced records"))
        #expect(scan.lastValidIndex == UInt64(64 + kept) && scan.recordCount == 64 + kept)
        let repair = try #require(LogRepair.plan(for: scan))
        #expect(repair.file == names[1] && repair.removedSegments == [names[2]] && repair.lastKeptIndex == UInt64(64 + kept))

        let (records, log) = try readAllRecords(dataDirectory, fileSystem: disk, options: options)
        #expect(records.count == 64 + kept, "the last segment's records are never replayed")
        #expect(!disk.fileExists(dataDirectory.appending(names[2])))
        #expect(try log.append([1]) == UInt64(64 + kept + 1))
        try log.close()
        let again = try Log.open(directory: dataDirectory, options: options, fileSystem: disk)
        #expect(again.recovery.problem == nil)
        try again.close()
    }

    /// A crash after the writer moved on but before the background seal, with nothing lost:
    /// the segment before the last still has its zeros. It joins up, so nothing is cut, and
    /// open seals it (cut at its last record) so that it looks like any other sealed segment.
    @Test func anUnsealedSegmentThatJoinsUpIsSealedOnOpen() throws {
        let (disk, names) = try makeLog(150, segmentSize: 8000)  // 62 records (7936 bytes) a segment
        #expect(names.count == 3)
        let sealedSize = 62 * Self.recordSize
        mutate(disk, names[1]) { bytes in bytes += [UInt8](repeating: 0, count: 8000 - bytes.count) }
        let scan = try LogDirectoryScan.run(directory: dataDirectory, fileSystem: disk)
        #expect(scan.problem == nil)
        #expect(scan.segments[1].isUnsealed && !scan.segments[0].isUnsealed)
        let (records, log) = try readAllRecords(dataDirectory, fileSystem: disk, options: options)
        try log.close()
        #expect(records.count == 150)
        #expect(disk.contents(dataDirectory.appending(names[1]))?.count == sealedSize)
    }

    /// The same hole after a segment cut to its last record (sealed) is not a crash: a segment
    /// is missing, and the log refuses to open.
    @Test func aGapAfterASealedSegmentIsStillCorruption() throws {
        let (disk, names) = try makeLog(150)
        mutate(disk, names[1]) { bytes in bytes = Array(bytes[0..<(54 * Self.recordSize)]) }
        guard case .indexGap(let file, _, _)? = openError(disk) else {
            Issue.record("a gap after a sealed segment was taken for a crash")
            return
        }
        #expect(file == names[2])
        #expect(disk.fileExists(dataDirectory.appending(names[2])), "a refused open changes nothing")
    }

    @Test func repairCutsAtTheDamageAndSaysWhatIsLost() throws {
        let (disk, names) = try makeLog(300)
        let offset = 5 * Self.recordSize
        mutate(disk, names[1]) { $0[offset + 30] ^= 0xFF }
        let scan = try LogDirectoryScan.run(directory: dataDirectory, fileSystem: disk)
        let repair = try #require(LogRepair.plan(for: scan))
        let firstOfSecond = LogFormat.segmentFirstIndex(fileName: names[1])!
        #expect(repair.file == names[1] && repair.offset == offset)
        #expect(repair.lastKeptIndex == firstOfSecond + 4)
        #expect(repair.removedSegments == Array(names[2...]))
        // Every valid record after the damaged one is counted; the damaged one is beyond saving.
        #expect(repair.recordsLost == 300 - Int(firstOfSecond + 4) - 1)
        try repair.apply(directory: dataDirectory, fileSystem: disk)
        let (records, log) = try readAllRecords(dataDirectory, fileSystem: disk, options: options)
        #expect(log.recovery.problem == nil)
        #expect(try log.append([1]) == firstOfSecond + 5)
        try log.close()
        #expect(records.count == Int(firstOfSecond + 4))
    }

    @Test func repairOfAGapDropsTheSegmentsAfterIt() throws {
        let (disk, names) = try makeLog(300)
        try disk.remove(dataDirectory.appending(names[1]))
        let scan = try LogDirectoryScan.run(directory: dataDirectory, fileSystem: disk)
        let repair = try #require(LogRepair.plan(for: scan))
        #expect(repair.file == names[0] && repair.recordsLostInFile == 0)
        #expect(repair.removedSegments == Array(names[2...]))
        try repair.apply(directory: dataDirectory, fileSystem: disk)
        let (records, log) = try readAllRecords(dataDirectory, fileSystem: disk, options: options)
        try log.close()
        #expect(records.count == Int(LogFormat.segmentFirstIndex(fileName: names[1])! - 1))
    }
}

extension LogDirectoryScan {
    static func lastNonZeroForTests(_ bytes: [UInt8]) -> Int {
        var end = bytes.count
        while end > 0 && bytes[end - 1] == 0 { end -= 1 }
        return end
    }
}
