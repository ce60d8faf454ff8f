import Cairn
import CairnStorage
import CairnTesting
import Testing

/// Random operation sequences: what survives close/reopen and crashes.
@Suite struct StorePropertyTests {
    static func randomOperation(_ rng: inout SplitMix64, now: Int64) -> Operation {
        let key = Bytes("k\(rng.next() % 12)")
        let other = Bytes("k\(rng.next() % 12)")
        let value = Bytes("v\(rng.next() % 1000)")
        let node = "/n\(rng.next() % 4)" + (rng.next() % 2 == 0 ? "/c\(rng.next() % 3)" : "")
        // Session ids are the indexes of createSession txns: small owners hit some of them.
        let session = Int64(rng.next() % 40)
        switch rng.next() % 23 {
        case 14: return .createNode(path: node, data: value, kind: [.persistent, .ephemeral, .container, .ttl][Int(rng.next() % 4)],
                                    sequential: rng.next() % 3 == 0, ttl: 1 + Int64(rng.next() % 3000), owner: session)
        case 19: return .createSession(timeout: 1000)
        case 20: return .closeSession(session)
        case 21: return .expireKeys([key, other])
        case 22: return .expireNodes([node, "/n\(rng.next() % 4)"])
        case 15: return .setNodeData(path: node, data: value, version: rng.next() % 2 == 0 ? -1 : Int32(rng.next() % 3))
        case 16: return .deleteNode(path: node, version: -1)
        case 17: return .multi([.checkNode(path: "/n0", version: -1), .createNode(path: node, data: value, kind: .persistent, sequential: false, ttl: 0, owner: 0)])
        case 0: return .set(key, value, condition: [.always, .ifAbsent, .ifPresent][Int(rng.next() % 3)],
                            expiry: rng.next() % 3 == 0 ? .at(now + Int64(rng.next() % 5000)) : .clear, returnOld: rng.next() % 2 == 0)
        case 1: return .incrementBy(key, Int64(rng.next() % 100) - 50)
        case 2: return .delete([key, other])
        case 3: return .append(key, value)
        case 4: return .expire(key, at: now + Int64(rng.next() % 4000) - 500, condition: .always)
        case 5: return .persist(key)
        case 6: return .rename(key, to: other, onlyIfAbsent: rng.next() % 2 == 0)
        case 7: return .push(key, [value, other], left: rng.next() % 2 == 0, onlyIfExists: false)
        case 8: return .pop(key, count: rng.next() % 2 == 0 ? nil : Int64(rng.next() % 3), left: rng.next() % 2 == 0)
        case 9: return .hashSet(key, fields: [value], values: [other])
        case 10: return .hashIncrementBy(key, field: "n", Int64(rng.next() % 9))
        case 11: return .listTrim(key, start: Int64(rng.next() % 3), stop: -1)
        case 12: return .incrementByFloat(key, 0.5)
        default: return .setMany(keys: [key, other], values: [value, value], onlyIfNoneExist: rng.next() % 2 == 0)
        }
    }

    @Test(arguments: [FsyncPolicy.always, .no])
    func theStateSurvivesCloseAndReopen(policy: FsyncPolicy) throws {
        for seed in UInt64(1)...20 {
            var rng = SplitMix64(seed: seed)
            let (store, disk, clock) = try makeStore(policy)
            for _ in 0..<300 {
                let batch = (0..<Int(rng.next() % 3 + 1)).map { _ in Self.randomOperation(&rng, now: clock.nowMilliseconds()) }
                _ = try store.execute(batch)
                clock.advance(milliseconds: Int64(rng.next() % 50))
            }
            let before = store.readView().keyspace
            try store.close()
            let reopened = try reopen(disk, clock: clock, policy: policy)
            #expect(reopened.readView().keyspace == before, "seed \(seed)")
            try reopened.close()
        }
    }

    /// The crash drill's property on the simulated disk, at every kind of crash point.
    @Test(arguments: FsyncPolicy.allCases)
    func aCrashRecoversThePrefixOfAcknowledgedTxns(policy: FsyncPolicy) throws {
        let modes: [SimulatedFileSystem.CrashMode] = [.dropUnsynced, .tornWrite, .zeroFilledWrite, .reorderedPages, .processKill]
        for seed in UInt64(1)...150 {
            var rng = SplitMix64(seed: seed &* 31)
            let (store, disk, clock) = try makeStore(policy)
            // states[k]: the state after the k-th logged txn, from a model that applies each
            // txn before the store runs it, so that a txn in flight at the crash (logged, maybe
            // written, never acknowledged) has its state too. Copies are O(1).
            var model = StoreState()
            var states: [StoreState] = [model]
            var acknowledged = 0
            disk.scheduleCrash(afterOperations: Int(rng.next() % 200) + 1, mode: modes[Int(seed) % modes.count], seed: seed)
            for _ in 0..<200 {
                let batch = [Self.randomOperation(&rng, now: clock.nowMilliseconds())]
                var next = model
                var changes = StoreState.Changes()
                _ = next.apply(Txn(time: clock.nowMilliseconds(), operations: batch), index: UInt64(states.count), changes: &changes)
                let logs = !changes.isEmpty
                guard (try? store.execute(batch)) != nil else {
                    if logs { states.append(next) }
                    break
                }
                if logs {
                    model = next
                    states.append(model)
                    acknowledged = states.count - 1
                }
                #expect(store.stateView() == model, "seed \(seed): the store and the model disagree")
                clock.advance(milliseconds: Int64(rng.next() % 20))
            }
            try? store.close()
            if !disk.hasCrashed { disk.crash(.dropUnsynced, seed: seed) }
            let recovered = try reopen(disk, clock: clock, policy: policy)
            let state = recovered.stateView()
            let recoveredCount = Int(recovered.log.lastIndex)
            try recovered.close()
            #expect(recoveredCount < states.count, "seed \(seed): more txns recovered than were logged")
            guard recoveredCount < states.count else { continue }
            #expect(state == states[recoveredCount], "seed \(seed): the recovered state is not the state after txn \(recoveredCount)")
            if policy == .always {
                #expect(recoveredCount >= acknowledged, "seed \(seed): acknowledged \(acknowledged), recovered \(recoveredCount)")
            }
        }
    }

    @Test func concurrentWritersAndReaders() async throws {
        let (store, _, _) = try makeStore(.always)
        let writers = 16
        let increments = 100
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<writers {
                group.addTask { for _ in 0..<increments { try await store.incrby("counter", 1) } }
            }
            // Readers: the committed counter never goes backwards.
            for _ in 0..<2 {
                group.addTask {
                    var last: Int64 = 0
                    for _ in 0..<2000 {
                        let value = try store.get("counter").flatMap { Int64($0.string) } ?? 0
                        #expect(value >= last)
                        last = value
                        await Task.yield()
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try store.get("counter") == Bytes("\(writers * increments)"))
        #expect(store.log.stats.meanBatchSize > 1, "concurrent writers share syncs")
        try store.close()
    }

    /// A full disk when the log needs its next segment: under `no` and `everysec` a write is
    /// visible once applied, so the room is made before the txn is applied. The refused write
    /// is never seen, the store stops, and a reopen finds exactly the acknowledged writes.
    @Test(arguments: [FsyncPolicy.no, .everysec, .always])
    func aFullDiskRefusesTheWriteBeforeAnyoneSeesIt(policy: FsyncPolicy) throws {
        let disk = SimulatedFileSystem()
        let clock = ManualClock()
        let store = try Store.open(directory: storeDirectory, options: StoreOptions(
            fsyncPolicy: policy, segmentSize: 8 << 10, clock: clock, fileSystem: disk, activeExpiry: false))
        disk.capacity = disk.usedBytes + (12 << 10)  // the first segment and a bit: no room for a third
        var acknowledged = 0
        var refused: Bytes?
        let value = Bytes(String(repeating: "v", count: 300))
        for i in 0..<200 {
            let key = Bytes("key\(i)")
            do {
                try store.set(key, value)
                acknowledged += 1
            } catch {
                refused = key
                guard case .log(.writerFailed(let cause)) = error as? StoreError, cause.isOutOfSpace else {
                    Issue.record("expected ENOSPC from the log, got \(error)")
                    return
                }
                break
            }
        }
        let key = try #require(refused, "the disk never filled")
        #expect(try store.get(key) == nil, "a refused write is not visible")
        #expect(try store.get(Bytes("key\(acknowledged - 1)")) == value)
        #expect(throws: StoreError.self) { try store.set("after", "x") }  // the store has stopped
        try? store.close()
        disk.capacity = nil
        let reopened = try reopen(disk, clock: clock, policy: policy)
        #expect(reopened.stateView().keyCount == acknowledged)
        #expect(try reopened.get(key) == nil)
        try reopened.close()
    }

    @Test func readersNeverSeeAWriteBeforeItsSync() throws {
        // The sync of the second write fails: its value must never become visible.
        let disk = SimulatedFileSystem()
        let (store, _, _) = try makeStore(.always, disk: disk)
        try store.set("k", "durable")
        disk.inject(.init(.sync, pathContains: ".seg", errno: .ioError, count: 1))
        #expect(throws: StoreError.self) { try store.set("k", "lost") }
        #expect(try store.get("k") == "durable")
        try? store.close()
    }
}
