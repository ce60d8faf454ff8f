@testable import Cairn
import CairnStorage
import CairnTesting
import Foundation
import SystemPackage
import Testing

/// Snapshots: round trips, exactness under concurrent writes, crashes at every step of
/// snapshot + manifest switch + compaction, damage, and the stock `lz4` tool.
@Suite struct SnapshotTests {
    func options(_ disk: SimulatedFileSystem, _ clock: ManualClock, policy: FsyncPolicy = .always, segmentSize: Int = 64 << 10) -> StoreOptions {
        StoreOptions(fsyncPolicy: policy, segmentSize: segmentSize, clock: clock, fileSystem: disk, activeExpiry: false)
    }

    /// A store holding every kind of state there is.
    func fillEveryKind(_ store: Store, _ clock: ManualClock) throws {
        try store.set("plain", "value")
        try store.set(Bytes([0, 255, 10, 13]), Bytes([1, 2, 3, 0]))
        try store.set("ttl", "soon", expiry: .milliseconds(60_000))
        try store.incr("counter")
        try store.rpush("queue", "a", "b", "c")
        try store.lpush("queue", "z")
        _ = try store.hset("hash", [("f1", "v1"), ("f2", Bytes([0xFF]))])
        try store.create("/app", data: "config")
        try store.setData("/app", data: "config-v2")
        try store.create("/app/seq-", sequential: true)
        try store.create("/app/seq-", sequential: true)
        let session = try store.createSession(timeout: 30_000)
        try store.create("/app/eph", data: "me", kind: .ephemeral, session: session)
        try store.create("/box", kind: .container)
        try store.create("/box/child")
        try store.create("/t", data: "x", kind: .ttl, ttl: 90_000)
        try store.createNode("/locked", data: "s", acl: [ACLEntry(perms: ACLEntry.all, scheme: "digest", id: "u:hash"), ACLEntry(perms: ACLEntry.read, scheme: "ip", id: "10.0.0.0/8")])
        _ = try store.execute([.createNode(path: "/null", data: "", kind: .persistent, sequential: false, ttl: 0, owner: 0, nullData: true)])
        _ = try store.createSession(timeout: 5000)
        let d5 = store.now() + 45_000
        _ = try store.execute([.inDatabase(5, .set("other-db", "5", condition: .always, expiry: .at(d5), returnOld: false)),
                               .inDatabase(2, .push("q", ["x"], left: false, onlyIfExists: false))])
        clock.advance(milliseconds: 17)
    }

    @Test func everyKindOfStateRoundTrips() throws {
        let disk = SimulatedFileSystem()
        let clock = ManualClock()
        let store = try Store.open(directory: storeDirectory, options: options(disk, clock))
        try fillEveryKind(store, clock)
        let before = store.stateView()
        // The content format alone.
        var content: [UInt8] = []
        let header = SnapshotFormat.Header(index: 99, term: 3, time: 5, keys: before.keyCount, nodes: before.tree.count, sessions: before.tree.sessions.count)
        try SnapshotFormat.encode(before, header: header, chunkSize: 64) { content.append(contentsOf: $0) }
        let (decodedHeader, decoded) = try content.withUnsafeBytes { try SnapshotFormat.decode($0) }
        #expect(decodedHeader == header)
        #expect(decoded == before, "every key, value type, deadline, version, znode Stat, child set and session")

        // Through the store: snapshot, reopen from it, and carry on where it left off.
        let stats = try store.snapshot()
        #expect(stats.header.index == store.log.lastIndex && stats.header.keys == 8 && stats.header.sessions == 2)
        try store.close()
        let reopened = try Store.open(directory: storeDirectory, options: options(disk, clock))
        #expect(reopened.stateView() == before)
        #expect(try reopened.create("/app/seq-", sequential: true) == "/app/seq-0000000003", "the parent's cversion came back")
        #expect(reopened.pttl("ttl") == 60_000 - 17)
        #expect(try reopened.incr("counter") == 2)
        try reopened.close()
    }

    @Test func aSnapshotDuringConcurrentWritesIsExactlyTheStateAtItsIndex() async throws {
        let disk = SimulatedFileSystem()
        let clock = ManualClock()
        // One segment that is never compacted: the log keeps every txn for the check.
        let store = try Store.open(directory: storeDirectory, options: options(disk, clock, policy: .everysec, segmentSize: 8 << 20))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<4 {
                group.addTask {
                    for i in 0..<400 {
                        try await store.set(Bytes("w\(writer):\(i % 50)"), Bytes("\(i)"))
                        if i % 7 == 0 { _ = try await store.execute([.push(Bytes("list\(writer)"), [Bytes("\(i)")], left: false, onlyIfExists: false)]) }
                    }
                }
            }
            group.addTask {
                for _ in 0..<5 {
                    try store.snapshot()
                    await Task.yield()
                }
            }
            try await group.waitForAll()
        }
        try store.close()
        let newest = try #require(Manifest.read(directory: storeDirectory, fileSystem: disk)?.snapshots.first)
        let (snapshotState, stats) = try SnapshotFile.read(storeDirectory.appending(SnapshotFormat.fileName(index: newest)), fileSystem: disk)
        // Replay the log up to the snapshot's index on an empty state: the two must be equal.
        var replayed = StoreState()
        var changes = StoreState.Changes()
        let log = try Log.open(directory: storeDirectory, options: LogOptions(fsyncPolicy: .no, segmentSize: 8 << 20), fileSystem: disk) { record in
            guard record.index <= stats.header.index else { return }
            _ = replayed.apply(try TxnCodec.decode(Array(record.payload)), index: record.index, changes: &changes)
            changes = StoreState.Changes()
        }
        #expect(log.firstLogIndex == 1)
        try log.close()
        #expect(stats.header.index > 0)
        #expect(snapshotState == replayed)
    }

    /// Builds the same store on a fresh disk every time (deterministic), with several segments.
    func preparedStore() throws -> (Store, SimulatedFileSystem, ManualClock, StoreState) {
        let disk = SimulatedFileSystem()
        let clock = ManualClock()
        let store = try Store.open(directory: storeDirectory, options: options(disk, clock, segmentSize: 4 << 10))
        try fillEveryKind(store, clock)
        for i in 0..<150 { try store.set(Bytes("key\(i)"), Bytes(String(repeating: "v", count: 40))) }
        try store.snapshot()  // an older snapshot, so retention has something to delete later
        for i in 0..<150 { try store.set(Bytes("key\(i)"), Bytes("second \(i)")) }
        return (store, disk, clock, store.stateView())
    }

    @Test func aCrashAtEveryStepOfSnapshotManifestAndCompactionOpensToTheSameState() throws {
        // Count the disk operations one snapshot makes (with a retention of 1, to delete too).
        let (probe, probeDisk, _, _) = try preparedStore()
        let start = probeDisk.operations
        try probe.snapshot()
        let steps = probeDisk.operations - start
        try probe.close()
        #expect(steps > 10)
        let modes: [SimulatedFileSystem.CrashMode] = [.dropUnsynced, .tornWrite, .zeroFilledWrite, .reorderedPages, .processKill]
        for step in 0...steps {
            let (store, disk, clock, expected) = try preparedStore()
            disk.scheduleCrash(afterOperations: step, mode: modes[step % modes.count], seed: UInt64(step))
            _ = try? store.snapshot()
            try? store.close()
            if !disk.hasCrashed { disk.crash(.dropUnsynced, seed: UInt64(step)) }
            let reopened = try Store.open(directory: storeDirectory, options: options(disk, clock, segmentSize: 4 << 10))
            #expect(reopened.stateView() == expected, "crash before disk operation \(step) of \(steps)")
            #expect(reopened.recoveryNotes.isEmpty, "step \(step): \(reopened.recoveryNotes)")
            // And it goes on: another snapshot, another reopen.
            try reopened.set("after", "crash")
            try reopened.snapshot()
            try reopened.close()
            let again = try Store.open(directory: storeDirectory, options: options(disk, clock, segmentSize: 4 << 10))
            #expect(try again.get("after") == "crash")
            try again.close()
        }
    }

    @Test func compactionDeletesCoveredSegmentsAndOldSnapshots() throws {
        let (store, disk, clock, _) = try preparedStore()
        let first = try #require(store.snapshotStatus.manifest?.snapshots.first)
        let segmentsBefore = store.log.segmentNames.count
        let stats = try store.snapshot()
        // Two retained: the log the older one needs stays.
        #expect(segmentsBefore >= 2 && store.log.segmentNames.count == segmentsBefore, "\(store.log.segmentNames)")
        #expect(store.log.firstLogIndex <= first + 1)
        try store.set("between", "snapshots")  // (a snapshot at the same index replaces the last)
        try store.snapshot()  // now the oldest kept is the second one: everything before it goes
        let segmentsAfter = store.log.segmentNames
        #expect(segmentsAfter.count == 1, "only the active segment is left: \(segmentsAfter)")
        try store.snapshot()
        let files = try disk.listDirectory(storeDirectory).filter { $0.hasPrefix("snapshot-") }.sorted()
        #expect(files.count == 2, "two snapshots are retained: \(files)")
        #expect(store.snapshotStatus.manifest?.snapshots.count == 2)
        try store.close()
        let reopened = try Store.open(directory: storeDirectory, options: options(disk, clock))
        #expect(reopened.log.lastIndex >= stats.header.index)
        try reopened.close()
    }

    @Test func damagedSnapshotBytesAreDetected() throws {
        let disk = SimulatedFileSystem()
        let clock = ManualClock()
        let store = try Store.open(directory: storeDirectory, options: options(disk, clock, segmentSize: 8 << 20))
        try fillEveryKind(store, clock)
        let first = try store.snapshot()
        try store.set("later", "1")
        let second = try store.snapshot()
        let expected = store.stateView()
        try store.close()

        // Every flipped bit and every truncation of the content is caught.
        let (content, _) = try SnapshotFile.content(storeDirectory.appending(second.file), fileSystem: disk)
        for offset in 0..<content.count {
            var damaged = content
            damaged[offset] ^= 0x10
            #expect(throws: SnapshotFormat.DecodeError.self) { try damaged.withUnsafeBytes { try SnapshotFormat.decode($0) } }
        }
        for length in 0..<content.count {
            #expect(throws: SnapshotFormat.DecodeError.self) { try Array(content[0..<length]).withUnsafeBytes { try SnapshotFormat.decode($0) } }
        }

        // The frame's own checksum (XXH32, the 4 bytes before the size frame) damaged: a load
        // (which checks the content's CRC32C instead) still reads the state; a check does not.
        let path = storeDirectory.appending(second.file)
        let intact = disk.contents(path)!
        var badFrameChecksum = intact
        badFrameChecksum[intact.count - SnapshotFormat.sizeFrameBytes - 2] ^= 0x04
        disk.setContents(path, badFrameChecksum)
        #expect(try SnapshotFile.read(path, fileSystem: disk).0 == expected)
        #expect {
            try SnapshotFile.read(path, fileSystem: disk, frameChecksum: true)
        } throws: { error in
            guard case .compression(let file, let lz4) = error as? SnapshotError else { return false }
            return file == second.file && lz4.message.lowercased().contains("checksum")
        }
        // Without its size frame the file is decompressed whole first, which checks the XXH32.
        disk.setContents(path, Array(badFrameChecksum.dropLast(SnapshotFormat.sizeFrameBytes)))
        #expect(throws: SnapshotError.self) { try SnapshotFile.read(path, fileSystem: disk) }
        disk.setContents(path, intact)

        // A damaged newest snapshot: the previous one plus the log (all still in one segment).
        var file = disk.contents(path)!
        file[file.count / 2] ^= 0x01
        disk.setContents(path, file)
        let fallback = try Store.open(directory: storeDirectory, options: options(disk, clock, segmentSize: 8 << 20))
        #expect(fallback.stateView() == expected)
        #expect(fallback.recoveryNotes.count == 3)
        #expect(fallback.recoveryNotes.first?.contains(second.file) == true)
        #expect(fallback.recoveryNotes[1] == "recovered from \(first.file) and the log after it")
        #expect(fallback.recoveryNotes.last == "set aside \(second.file).damaged")
        try fallback.close()
    }

    /// A damaged newest snapshot, with compaction at work: the previous snapshot's log is still
    /// there, so the store opens to the same state; the damaged file is set aside (renamed, not
    /// deleted) and leaves the manifest, so it no longer counts as a retained snapshot.
    @Test func aDamagedNewestSnapshotFallsBackToThePreviousOne() throws {
        let (store, disk, clock, _) = try preparedStore()
        let first = try #require(store.snapshotStatus.manifest?.snapshots.first)
        let second = try store.snapshot()
        try store.set("after", "second")
        let expected = store.stateView()
        try store.close()
        let path = storeDirectory.appending(second.file)
        var file = disk.contents(path)!
        file[file.count - 3] ^= 0x40
        disk.setContents(path, file)

        let reopened = try Store.open(directory: storeDirectory, options: options(disk, clock, segmentSize: 4 << 10))
        #expect(reopened.stateView() == expected)
        #expect(reopened.recoveryNotes.contains { $0.contains(second.file) && $0.contains("unusable") }, "\(reopened.recoveryNotes)")
        #expect(reopened.snapshotStatus.manifest?.snapshots == [first])
        #expect(disk.fileExists(storeDirectory.appending(second.file + ".damaged")) && !disk.fileExists(path))
        let third = try reopened.snapshot()
        #expect(reopened.snapshotStatus.manifest?.snapshots == [third.header.index, first])
        try reopened.close()
        let again = try Store.open(directory: storeDirectory, options: options(disk, clock, segmentSize: 4 << 10))
        #expect(again.stateView() == expected && again.recoveryNotes.isEmpty, "\(again.recoveryNotes)")
        #expect(disk.fileExists(storeDirectory.appending(second.file + ".damaged")), "a damaged snapshot is never deleted")
        try again.close()
    }

    @Test func aDamagedSnapshotWithoutItsLogIsAClearError() throws {
        let (store, disk, clock, _) = try preparedStore()
        let stats = try store.snapshot()  // compacts behind the older one
        let older = try #require(store.snapshotStatus.manifest?.snapshots.last)
        try store.close()
        // Both retained snapshots damaged: the log before the older one is gone.
        for name in [stats.file, SnapshotFormat.fileName(index: older)] {
            let path = storeDirectory.appending(name)
            var file = disk.contents(path)!
            file[file.count - 3] ^= 0x40
            disk.setContents(path, file)
        }
        do {
            _ = try Store.open(directory: storeDirectory, options: options(disk, clock, segmentSize: 4 << 10))
            Issue.record("opened a store whose snapshots are damaged and whose log is compacted")
        } catch {
            guard case .unrecoverable(let reason) = error else { Issue.record("unexpected \(error)"); return }
            #expect(reason.contains(stats.file) && reason.contains(SnapshotFormat.fileName(index: older)) && reason.contains("starts at"), "\(reason)")
        }
        #expect(disk.fileExists(storeDirectory.appending(stats.file)), "nothing is set aside when the store cannot open")
        // A damaged manifest names itself.
        disk.setContents(storeDirectory.appending(Manifest.fileName), Array("CAIRNMAN garbage".utf8))
        #expect(throws: StoreError.self) { try Store.open(directory: storeDirectory, options: options(disk, clock, segmentSize: 4 << 10)) }
    }

    @Test func snapshotsTakeThemselvesAfterEnoughTxns() throws {
        let disk = SimulatedFileSystem()
        var settings = options(disk, ManualClock(), policy: .no)
        settings.snapshotEveryTxns = 100
        let store = try Store.open(directory: storeDirectory, options: settings)
        // Bounded: at most 20 000 writes and 5 s.
        let started = monotonicNanoseconds()
        var written = 0
        while store.snapshotStatus.taken < 2 && written < 20_000 && monotonicNanoseconds() - started < 5_000_000_000 {
            try store.set(Bytes("k\(written % 250)"), "v")
            written += 1
            if written % 100 == 0 { usleep(1000) }
        }
        #expect(store.snapshotStatus.taken >= 2)
        #expect(store.snapshotStatus.lastError == nil)
        try store.close()
        let reopened = try Store.open(directory: storeDirectory, options: settings)
        #expect(reopened.dbsize() == min(written, 250))
        try reopened.close()
    }

    @Test func theStockLZ4ToolDecompressesASnapshot() throws {
        let tool = ["/usr/bin/lz4", "/usr/local/bin/lz4"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let tool else {
            print("skipping: the lz4 tool is not installed (apt-get install lz4)")
            return
        }
        let directory = FilePath(NSTemporaryDirectory()).appending("cairn-lz4-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(atPath: directory.string) }
        let clock = ManualClock()
        let store = try Store.open(directory: directory, options: StoreOptions(fsyncPolicy: .no, clock: clock, activeExpiry: false))
        try fillEveryKind(store, clock)
        for i in 0..<5000 { try store.set(Bytes("key:\(i)"), Bytes("value \(i * 7919 % 10007)")) }
        let stats = try store.snapshot()
        try store.close()
        let snapshotPath = directory.appending(stats.file)
        let output = directory.appending("decompressed")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = ["-d", "-f", "-q", snapshotPath.string, output.string]
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let decompressed = try [UInt8](Data(contentsOf: URL(fileURLWithPath: output.string)))
        let (content, _) = try SnapshotFile.content(snapshotPath, fileSystem: PosixFileSystem())
        #expect(decompressed == content)
        #expect(Array(decompressed.prefix(8)) == Array("CAIRNSNP".utf8))
    }

    /// The file ends with a skippable LZ4 frame giving the content's size (what lets a reader
    /// decompress and decode at once); a file without it still reads, and one that lies is a
    /// clear error, by `read` and by `content` (`cairn check`).
    @Test func theSizeFrameIsWrittenCheckedAndOptional() throws {
        let disk = SimulatedFileSystem()
        let clock = ManualClock()
        let store = try Store.open(directory: storeDirectory, options: options(disk, clock, policy: .no, segmentSize: 8 << 20))
        try fillEveryKind(store, clock)
        // Records larger than the decoder's look-ahead, so some are parsed again as bytes arrive.
        try store.set("big", Bytes([UInt8](repeating: 0x61, count: 700_000)))
        _ = try store.execute([.push("long", (0..<40_000).map { Bytes("element \($0)") }, left: false, onlyIfExists: false)])
        for i in 0..<3000 { try store.set(Bytes("key:\(i)"), Bytes("value \(i)")) }
        let stats = try store.snapshot()
        let expected = store.stateView()
        try store.close()
        let path = storeDirectory.appending(stats.file)
        let file = disk.contents(path)!
        let (content, _) = try SnapshotFile.content(path, fileSystem: disk)
        func sizeFrame(_ size: UInt64) -> [UInt8] { withUnsafeBytes(of: size.littleEndian) { LZ4Frame.skippableFrame(nibble: 0xC, payload: Array($0)) } }
        #expect(Array(file.suffix(16)) == sizeFrame(UInt64(content.count)))
        #expect(try SnapshotFile.read(path, fileSystem: disk).0 == expected)

        // Written before the size frame existed: read whole, the same state.
        let frame = Array(file.dropLast(16))
        disk.setContents(path, frame)
        #expect(try SnapshotFile.read(path, fileSystem: disk).0 == expected)
        #expect(try SnapshotFile.content(path, fileSystem: disk).content == content)

        // Another skippable frame between the two is passed over, as any LZ4 reader does.
        disk.setContents(path, frame + LZ4Frame.skippableFrame(nibble: 3, payload: [1, 2, 3]) + sizeFrame(UInt64(content.count)))
        #expect(try SnapshotFile.read(path, fileSystem: disk).0 == expected)
        #expect(try SnapshotFile.content(path, fileSystem: disk).content == content)

        for lie in [UInt64(content.count + 1), UInt64(content.count - 1), UInt64(file.count) * 1000, UInt64.max] {
            disk.setContents(path, frame + sizeFrame(lie))
            for attempt in [{ _ = try SnapshotFile.read(path, fileSystem: disk) }, { _ = try SnapshotFile.content(path, fileSystem: disk) }] {
                do {
                    try attempt()
                    Issue.record("a size frame of \(lie) bytes for \(content.count) was believed")
                } catch let error as SnapshotError {
                    guard case .compression(let name, _) = error else { Issue.record("unexpected \(error)"); continue }
                    #expect(name == stats.file)
                }
            }
        }
    }

    /// A file larger than the read ring (a few pieces) is read on a thread of its own, round the
    /// ring, while another decompresses, this one decodes the keys and a fourth the znodes: the
    /// same state. A read that fails
    /// partway is a disk error naming the file; damage past the first ring and a truncated file
    /// are errors too; every thread is stopped before the buffers go (no hang, no crash).
    @Test func aLargeSnapshotLoadsThroughFourThreadsAndErrorsStopThem() throws {
        let disk = SimulatedFileSystem()
        let clock = ManualClock()
        let store = try Store.open(directory: storeDirectory, options: options(disk, clock, policy: .no, segmentSize: 32 << 20))
        var rng = SplitMix64(seed: 11)
        // Random bytes do not compress: the file is about 12.6 MB.
        for i in 0..<6 { try store.set(Bytes("blob:\(i)"), Bytes((0..<(2 << 20)).map { _ in UInt8(truncatingIfNeeded: rng.next()) })) }
        for i in 0..<5000 { try store.set(Bytes("key:\(i)"), Bytes("value \(i)")) }
        // Enough znodes that they are decoded on a thread of their own (``TreeJob``), which
        // must stop too when the read or the decompression fails.
        _ = try store.execute((0..<TreeJob.threadFrom).map { .createNode(path: "/n\($0)", data: Bytes([1]), kind: .persistent, sequential: false, ttl: 0, owner: 0) })
        let stats = try store.snapshot()
        let expected = store.stateView()
        try store.close()
        let path = storeDirectory.appending(stats.file)
        #expect(stats.fileBytes > SnapshotFile.readRingBytes + SnapshotFile.readPiece)
        #expect(try SnapshotFile.read(path, fileSystem: disk).0 == expected)
        // The third read of the file fails (the size frame, then two pieces, are read first).
        disk.inject(.init(.read, pathContains: stats.file, errno: .ioError, skip: 2, count: 1))
        do {
            _ = try SnapshotFile.read(path, fileSystem: disk)
            Issue.record("a failed read went unnoticed")
        } catch {
            guard case .disk(let failure) = error else { Issue.record("unexpected \(error)"); return }
            #expect(failure.path.string.hasSuffix(stats.file) && failure.errno == .ioError)
        }
        disk.clearFaults()
        #expect(try SnapshotFile.read(path, fileSystem: disk).0 == expected)

        let good = disk.contents(path)!
        // A byte of a block's data in the second round of the ring: LZ4's block checksum (or
        // the content's) catches it.
        var damaged = good
        damaged[SnapshotFile.readRingBytes + SnapshotFile.readPiece / 2] ^= 0x40
        disk.setContents(path, damaged)
        do {
            _ = try SnapshotFile.read(path, fileSystem: disk)
            Issue.record("damage past the first ring went unnoticed")
        } catch {
            switch error {
            case .compression(let file, _), .content(let file, _): #expect(file == stats.file)
            default: Issue.record("unexpected \(error)")
            }
        }
        // Cut in the second round of the ring, the size frame put back after the cut.
        let sizeFrame = Array(good.suffix(SnapshotFormat.sizeFrameBytes))
        disk.setContents(path, Array(good.prefix(SnapshotFile.readRingBytes + 3 * SnapshotFile.readPiece / 2)) + sizeFrame)
        #expect(throws: SnapshotError.self) { _ = try SnapshotFile.read(path, fileSystem: disk) }
        disk.setContents(path, good)
        #expect(try SnapshotFile.read(path, fileSystem: disk).0 == expected)
    }

    /// Seeds for Fuzz/Corpus/snapshot: `CAIRN_WRITE_SNAPSHOT_SEEDS=$PWD/Fuzz/Corpus/snapshot swift test --filter writeSeedsWhenAsked`.
    @Test func writeSeedsWhenAsked() throws {
        guard let folder = ProcessInfo.processInfo.environment["CAIRN_WRITE_SNAPSHOT_SEEDS"] else { return }
        let disk = SimulatedFileSystem()
        let clock = ManualClock()
        let store = try Store.open(directory: storeDirectory, options: options(disk, clock))
        try fillEveryKind(store, clock)
        let stats = try store.snapshot()
        try store.close()
        let (content, _) = try SnapshotFile.content(storeDirectory.appending(stats.file), fileSystem: disk)
        _ = FileManager.default.createFile(atPath: "\(folder)/content", contents: Data(content))
        let frame = disk.contents(storeDirectory.appending(stats.file))!
        _ = FileManager.default.createFile(atPath: "\(folder)/frame", contents: Data(frame))
        // Only the frame's XXH32 damaged: a load reads it, a checked read does not.
        var badChecksum = frame
        badChecksum[frame.count - SnapshotFormat.sizeFrameBytes - 2] ^= 0x04
        _ = FileManager.default.createFile(atPath: "\(folder)/frame-bad-xxh32", contents: Data(badChecksum))
    }
}
