@testable import CairnStorage
import CairnTesting
import SystemPackage
import Testing

/// Crash states on the simulated disk: for many seeds, append under each policy, crash at a
/// chosen disk operation in a chosen way, recover, and check the two promises:
/// (a) under `always`, every acknowledged record is present, and under every policy every
///     record a `sync()` returned for;
/// (b) under every policy, what is recovered is exactly a prefix of what was appended.
@Suite struct CrashTests {
    struct Outcome {
        var recovered = 0
        var acknowledged = 0
    }

    /// One seeded crash state, single-threaded so that the seed reproduces it exactly.
    static func runSeed(_ seed: UInt64, policy: FsyncPolicy, mode: SimulatedFileSystem.CrashMode) throws -> Outcome {
        var rng = SplitMix64(seed: seed)
        let disk = SimulatedFileSystem()
        let options = LogOptions(fsyncPolicy: policy, segmentSize: 4096, everysecInterval: .seconds(3600))
        var appended: [[UInt8]] = []  // by index - 1: everything handed to the log
        var acknowledged = 0          // highest index whose append returned
        var synced = 0                // highest index a sync() that returned covered
        let log = try Log.open(directory: dataDirectory, options: options, fileSystem: disk)
        disk.scheduleCrash(afterOperations: Int.random(in: 1...120, using: &rng), mode: mode, seed: rng.next())
        appending: for _ in 0..<200 {
            // Batches of submits and one wait: group commits of several records.
            let batch = Int.random(in: 1...6, using: &rng)
            var last: UInt64 = 0
            for _ in 0..<batch {
                let bytes = payload(Int(rng.next() % 10_000), size: Int.random(in: 0...700, using: &rng))
                do {
                    last = try withBytes(bytes) { (raw) throws(LogError) -> UInt64 in try log.submit(raw) }
                } catch { break appending }
                #expect(Int(last) == appended.count + 1)
                appended.append(bytes)
                // A segment filled by this record is sealed by the flusher, after the record's
                // write (the writer holds the lock until then): waiting here keeps the order
                // of disk operations, and so the crash a seed picks, the same on every run.
                log.waitUntilSealed()
            }
            do { try log.waitForCommit(last) } catch { break appending }
            acknowledged = Int(last)
            if Int.random(in: 0..<10, using: &rng) == 0 {  // an everysec tick
                do { try log.sync() } catch { break appending }
                synced = appended.count
            }
        }
        try? log.close()
        if !disk.hasCrashed { disk.crash(mode, seed: rng.next()) }

        var recovered: [[UInt8]] = []
        let reopened = try Log.open(directory: dataDirectory, options: options, fileSystem: disk) { record in
            #expect(record.index == UInt64(recovered.count + 1), "seed \(seed): gap or reorder at \(record.index)")
            recovered.append(Array(record.payload))
        }
        // (b) a prefix, with nothing invented
        #expect(recovered.count <= appended.count, "seed \(seed): \(recovered.count) recovered but only \(appended.count) appended")
        for (i, bytes) in recovered.enumerated() where i < appended.count && bytes != appended[i] {
            Issue.record("seed \(seed) \(policy) \(mode): index \(i + 1) differs from what was appended")
            break
        }
        // (a) nothing acknowledged lost under always, nothing synced lost under any policy
        #expect(recovered.count >= synced, "seed \(seed) \(policy) \(mode): synced \(synced), recovered \(recovered.count)")
        if policy == .always {
            #expect(recovered.count >= acknowledged, "seed \(seed) \(mode): acknowledged \(acknowledged), recovered \(recovered.count)")
        }
        // The recovered log takes new appends after the cut, and they survive a clean reopen.
        let next = try reopened.append([0xC0, 0xDE])
        #expect(next == UInt64(recovered.count + 1))
        try reopened.close()
        var count = 0
        let again = try Log.open(directory: dataDirectory, options: options, fileSystem: disk) { _ in count += 1 }
        #expect(again.recovery.problem == nil, "seed \(seed): a second recovery found \(String(describing: again.recovery.problem))")
        try again.close()
        #expect(count == recovered.count + 1)
        return Outcome(recovered: recovered.count, acknowledged: acknowledged)
    }

    static let modes: [SimulatedFileSystem.CrashMode] = [.processKill, .dropUnsynced, .tornWrite, .zeroFilledWrite, .reorderedPages]

    @Test(arguments: FsyncPolicy.allCases)
    func thousandsOfSeededCrashStates(policy: FsyncPolicy) throws {
        var states = 0
        var recoveredSomething = 0
        var lostUnacknowledged = 0
        for seed in UInt64(0)..<1000 {
            let mode = Self.modes[Int(seed % UInt64(Self.modes.count))]
            let outcome = try Self.runSeed(seed &* 7919 &+ UInt64(policy.hashValue & 0xFF), policy: policy, mode: mode)
            states += 1
            if outcome.recovered > 0 { recoveredSomething += 1 }
            if outcome.recovered < outcome.acknowledged { lostUnacknowledged += 1 }
        }
        #expect(states == 1000)
        #expect(recoveredSomething > 500, "most crash states should hold some records")
        if policy == .always { #expect(lostUnacknowledged == 0) }
    }

    /// Records that fill each segment to its last byte (32 of 128 bytes in 4096) leave no
    /// preallocated zeros behind them, which is how recovery tells an unsealed segment: crashed
    /// at every kind of moment, such a log still opens and keeps every synced record.
    @Test(arguments: FsyncPolicy.allCases)
    func segmentsFilledToTheLastByteSurviveEveryCrash(policy: FsyncPolicy) throws {
        #expect(LogFormat.recordSize(payloadLength: 100) * 32 == 4096)
        for seed in UInt64(0)..<300 {
            var rng = SplitMix64(seed: seed &* 31 &+ 7)
            let disk = SimulatedFileSystem()
            let options = LogOptions(fsyncPolicy: policy, segmentSize: 4096, everysecInterval: .seconds(3600))
            let log = try Log.open(directory: dataDirectory, options: options, fileSystem: disk)
            let mode = Self.modes[Int(seed % UInt64(Self.modes.count))]
            disk.scheduleCrash(afterOperations: Int.random(in: 1...120, using: &rng), mode: mode, seed: rng.next())
            var appended = 0  // handed to the log (one whose append failed may still survive)
            var synced = 0
            appending: for _ in 0..<150 {
                appended += 1
                do { _ = try log.append([UInt8](repeating: UInt8(truncatingIfNeeded: appended - 1), count: 100)) } catch { break appending }
                log.waitUntilSealed()  // keeps the seed's order of disk operations (see runSeed)
                if Int.random(in: 0..<10, using: &rng) == 0 {
                    do { try log.sync() } catch { break appending }
                    synced = appended
                }
            }
            try? log.close()
            if !disk.hasCrashed { disk.crash(mode, seed: rng.next()) }
            var recovered = 0
            let reopened = try Log.open(directory: dataDirectory, options: options, fileSystem: disk) { record in
                #expect(record.payload.first == UInt8(truncatingIfNeeded: recovered), "seed \(seed) \(mode): record \(record.index) is not the one appended there")
                recovered += 1
            }
            try reopened.close()
            #expect(recovered >= synced && recovered <= appended, "seed \(seed) \(policy) \(mode): appended \(appended), synced \(synced), recovered \(recovered)")
        }
    }

    /// Concurrent appenders (threads) under each policy, crashed at a random disk operation.
    @Test(arguments: FsyncPolicy.allCases)
    func concurrentAppendersCrashedAtRandom(policy: FsyncPolicy) throws {
        for seed in UInt64(1)...60 {
            var rng = SplitMix64(seed: seed &* 104_729)
            let disk = SimulatedFileSystem()
            let options = LogOptions(fsyncPolicy: policy, segmentSize: 8192, everysecInterval: .milliseconds(1))
            let log = try Log.open(directory: dataDirectory, options: options, fileSystem: disk)
            disk.scheduleCrash(afterOperations: Int.random(in: 5...400, using: &rng), mode: Self.modes.randomElement(using: &rng)!, seed: rng.next())
            let acks = Lock()
            nonisolated(unsafe) var acknowledged: [LogHistoryChecker.Ack] = []
            let done = ConditionLock()
            nonisolated(unsafe) var finished = 0
            let writers = 6
            for writer in 0..<writers {
                startThread(name: "crash-writer") {
                    for sequence in UInt32(0)..<200 {
                        guard let index = try? log.append(TestRecord.payload(writer: UInt32(writer), sequence: sequence)) else { break }
                        acks.withLock { acknowledged.append(.init(writer: UInt32(writer), sequence: sequence, index: index)) }
                    }
                    done.withLock { finished += 1; done.broadcast() }
                }
            }
            done.withLock { while finished < writers { done.wait() } }
            try? log.close()
            if !disk.hasCrashed { disk.crash(.random, seed: seed) }
            var checker = LogHistoryChecker()
            let reopened = try Log.open(directory: dataDirectory, options: options, fileSystem: disk) { record in
                checker.observe(index: record.index, payload: record.payload)
            }
            try reopened.close()
            checker.check(acks: acks.withLock { acknowledged }, mustBePresent: policy == .always)
            #expect(checker.violations.isEmpty, "seed \(seed) \(policy): \(checker.violations.prefix(5))")
        }
    }
}
