import Cairn
import CairnStorage
import CairnTesting
import SystemPackage
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The expiry wheel wired into the store: key TTLs, sessions, TTL and container znodes, all
/// driven by a manual clock and ``Store/expireDue()``, so every test is exact to the millisecond.
@Suite struct ExpiryTests {
    /// The txns in the log after `index`, decoded.
    func txns(_ disk: SimulatedFileSystem, after index: UInt64 = 0) throws -> [Txn] {
        var found: [Txn] = []
        let log = try Log.open(directory: storeDirectory, options: LogOptions(fsyncPolicy: .no, segmentSize: 64 << 10), fileSystem: disk) { record in
            if record.index > index { found.append(try TxnCodec.decode(Array(record.payload))) }
        }
        try log.close()
        return found
    }

    @Test func aKeyExpiresAtItsMillisecondThroughALoggedTxn() throws {
        let (store, disk, clock) = try makeStore(.always)
        try store.set("session-token", "abc", expiry: .milliseconds(100))
        #expect(store.pendingTimers.keys == 1)
        clock.advance(milliseconds: 99)
        #expect(try store.expireDue() == 0)
        #expect(store.pttl("session-token") == 1)
        #expect(store.stateView().keyspace.entries["session-token"] != nil)
        clock.advance(milliseconds: 1)
        #expect(try store.get("session-token") == nil, "lazily hidden before its expire txn")
        #expect(store.pttl("session-token") == -2)
        #expect(try store.expireDue() == 1)
        #expect(store.stateView().keyspace.entries["session-token"] == nil, "removed from the state")
        #expect(store.pendingTimers.keys == 0)
        let logged = store.log.lastIndex
        try store.close()
        #expect(try txns(disk, after: logged - 1).map(\.operations) == [[.expireKeys(["session-token"])]])

        // Replay never consults the clock: reopened an hour *earlier*, the key is still gone.
        clock.advance(milliseconds: -3_600_000)
        let reopened = try reopen(disk, clock: clock)
        #expect(reopened.stateView().keyspace.entries["session-token"] == nil)
        try reopened.close()
    }

    @Test func everyExpiryOptionMovesOrCancelsTheTimer() throws {
        let (store, _, clock) = try makeStore(.no)
        try store.set("a", "1", expiry: .milliseconds(100))
        _ = try store.expire("a", .milliseconds(500))                      // moved later
        try store.set("b", "1", expiry: .milliseconds(100))
        try store.persist("b")                                            // cancelled
        try store.set("c", "1", expiry: .milliseconds(100))
        try store.set("c", "2")                                           // a plain SET clears it
        try store.set("d", "1", expiry: .milliseconds(100))
        try store.del("d")                                                // gone with the key
        try store.set("e", "1", expiry: .milliseconds(300))
        _ = try store.getex("e", expiry: .milliseconds(50))               // moved earlier
        try store.set("f", "1", expiry: .milliseconds(100))
        try store.set("f", "2", condition: .always, expiry: .keep)     // KEEPTTL keeps it
        try store.set("g", "1", expiry: .milliseconds(100))
        try store.rename("g", "h")                                        // follows the rename
        #expect(store.pendingTimers.keys == 4)
        clock.advance(milliseconds: 50)
        #expect(try store.expireDue() == 1)
        #expect(store.exists("e") == 0)
        clock.advance(milliseconds: 50)
        #expect(try store.expireDue() == 2)
        #expect(store.exists("f", "h") == 0)
        #expect(store.exists("a", "b", "c") == 3)
        clock.advance(milliseconds: 400)
        #expect(try store.expireDue() == 1)
        #expect(store.exists("a") == 0 && store.pendingTimers.keys == 0)
        try store.set("x", "1", expiry: .milliseconds(100))
        try store.flushall()
        #expect(store.pendingTimers.keys == 0, "FLUSHALL cancels every key timer")
        try store.close()
    }

    @Test func keysThatExpireDuringABatchAreAbsentToIt() throws {
        let (store, _, clock) = try makeStore(.always)
        try store.set("counter", "41", expiry: .milliseconds(10))
        try store.set("other", "x", expiry: .milliseconds(1000))
        clock.advance(milliseconds: 10)
        // No expire txn has run: the batch still judges by its own time.
        let replies = try store.execute([.incrementBy("counter", 1), .set("other", "y", condition: .ifPresent, expiry: .keep, returnOld: true)])
        #expect(replies == [.integer(1), .bulk("x")])
        #expect(store.pttl("counter") == -1, "a fresh key, no deadline")
        #expect(store.pttl("other") == 990)
        #expect(try store.expireDue() == 0, "the batch already removed the expired key; its timer went with it")
        try store.close()
    }

    @Test func aMillionStyleBulkExpiryGoesInBoundedSlices() throws {
        let disk = SimulatedFileSystem()
        let clock = ManualClock()
        let store = try Store.open(directory: storeDirectory, options: StoreOptions(
            fsyncPolicy: .no, segmentSize: 1 << 20, clock: clock, fileSystem: disk, activeExpiry: false, expirySlice: 500))
        let keys = 20_000
        let deadline = clock.nowMilliseconds() + 1000
        for batch in stride(from: 0, to: keys, by: 1000) {
            _ = try store.execute((batch..<batch + 1000).map { .set(Bytes("key:\($0)"), "v", condition: .always, expiry: .at(deadline), returnOld: false) })
        }
        try store.set("survivor", "v")
        let before = store.log.lastIndex
        clock.advance(milliseconds: 1000)
        #expect(try store.expireDue() == keys)
        #expect(store.dbsize() == 1)
        try store.close()
        let expireTxns = try txns(disk, after: before)
        var expiredKeys = 0
        for txn in expireTxns {
            guard case .expireKeys(let expired) = txn.operations.first else { Issue.record("not an expire txn: \(txn)"); continue }
            #expect(txn.operations.count == 1 && expired.count <= 500, "no txn expires more than a slice")
            expiredKeys += expired.count
        }
        #expect(expiredKeys == keys && expireTxns.count >= keys / 500)
    }

    @Test func anUntouchedSessionExpiresAndTakesItsEphemeralsAndFiresWatches() throws {
        let (store, disk, clock) = try makeStore(.always)
        try store.create("/workers")
        let session = try store.createSession(timeout: 1000)
        let other = try store.createSession(timeout: 1000)
        #expect(try store.create("/workers/w-", kind: .ephemeral, sequential: true, session: session) == "/workers/w-0000000000")
        try store.create("/leader", data: "me", kind: .ephemeral, session: session)
        try store.create("/workers/w-", kind: .ephemeral, sequential: true, session: other)
        #expect(store.ephemerals(of: session) == ["/leader", "/workers/w-0000000000"])
        let events = EventLog()
        _ = try store.exists("/leader", watch: events.handler("leader"))
        _ = try store.getChildren("/workers", watch: events.handler("workers"))

        clock.advance(milliseconds: 600)
        #expect(store.touch(session))
        clock.advance(milliseconds: 400)
        #expect(try store.expireDue() == 1, "only the untouched session expires")
        #expect(store.session(other) == nil && store.session(session) != nil)
        #expect(try store.getChildren("/workers").children == ["w-0000000000"])
        #expect(events.types == ["workers:nodeChildrenChanged:/workers"])

        clock.advance(milliseconds: 599)
        #expect(try store.expireDue() == 0)
        clock.advance(milliseconds: 1)
        let beforeClose = store.log.lastIndex
        #expect(try store.expireDue() == 1)
        #expect(store.log.lastIndex == beforeClose + 1, "a session and all its ephemerals go in one txn")
        #expect(try store.exists("/leader") == nil)
        #expect(try store.getChildren("/workers").children.isEmpty)
        #expect(events.types.contains("leader:nodeDeleted:/leader"))
        #expect(store.touch(session) == false)
        #expect(throws: TreeError.sessionExpired) { try store.create("/late", kind: .ephemeral, session: session) }
        #expect(store.pendingTimers.sessions == 0)
        try store.close()
        #expect(try txns(disk, after: beforeClose).map(\.operations) == [[.closeSession(session)]])
    }

    @Test func closingASessionDeletesItsEphemeralsAtOnce() throws {
        let (store, _, _) = try makeStore(.always)
        let session = try store.createSession(timeout: 30_000)
        try store.create("/lock", kind: .ephemeral, session: session)
        #expect(try store.closeSession(session))
        #expect(try store.exists("/lock") == nil)
        #expect(try store.closeSession(session) == false)
        #expect(store.pendingTimers.sessions == 0)
        #expect(throws: TreeError.badArguments) { try store.createSession(timeout: 0) }
        try store.close()
    }

    @Test func aTTLNodeGoesWhenUnmodifiedForItsTTLAndChildless() throws {
        let (store, _, clock) = try makeStore(.no)
        try store.create("/t", kind: .ttl, ttl: 1000)
        clock.advance(milliseconds: 500)
        try store.setData("/t", data: "touched")       // its TTL starts again
        clock.advance(milliseconds: 1000)
        #expect(try store.expireDue() == 0, "exactly its TTL since the change: ZooKeeper waits for more")
        #expect(try store.exists("/t") != nil)
        clock.advance(milliseconds: 1)
        #expect(try store.expireDue() == 1)
        #expect(try store.exists("/t") == nil)

        try store.create("/parent", kind: .ttl, ttl: 100)
        try store.create("/parent/child")
        clock.advance(milliseconds: 500)
        #expect(try store.expireDue() == 1)
        #expect(try store.exists("/parent") != nil, "a TTL node with children stays")
        try store.delete("/parent/child")
        #expect(try store.expireDue() == 1)
        #expect(try store.exists("/parent") == nil, "once childless and past its TTL, it goes")
        try store.close()
    }

    @Test func aContainerGoesWhenItsLastChildGoes() throws {
        let (store, _, _) = try makeStore(.always)
        try store.create("/never-used", kind: .container)
        try store.create("/election", kind: .container)
        let session = try store.createSession(timeout: 1000)
        try store.create("/election/n-", kind: .ephemeral, sequential: true, session: session)
        try store.create("/election/n-", kind: .ephemeral, sequential: true, session: session)
        try store.delete("/election/n-0000000000")
        #expect(try store.expireDue() == 0)
        #expect(try store.exists("/election") != nil)
        try store.closeSession(session)                // takes the last child
        #expect(try store.expireDue() == 1)
        #expect(try store.exists("/election") == nil)
        #expect(try store.exists("/never-used") != nil, "a container that never had a child stays")
        try store.close()
    }

    @Test func aRestartInTheMiddleRebuildsEveryTimer() throws {
        let (store, disk, clock) = try makeStore(.always)
        try store.set("short", "1", expiry: .milliseconds(100))
        try store.set("long", "1", expiry: .milliseconds(10_000))
        try store.create("/t", kind: .ttl, ttl: 5000)
        try store.create("/c", kind: .container)
        try store.create("/c/x")
        try store.delete("/c/x")                        // the container is due now, not yet expired
        let session = try store.createSession(timeout: 2000)
        try store.create("/e", kind: .ephemeral, session: session)
        clock.advance(milliseconds: 1500)
        try store.close()

        clock.advance(milliseconds: 60_000)              // down for a minute
        let reopened = try reopen(disk, clock: clock)
        #expect(reopened.pendingTimers.keys == 2 && reopened.pendingTimers.nodes == 2 && reopened.pendingTimers.sessions == 1)
        #expect(reopened.pttl("long") == -2, "expired while down: never returned")
        #expect(try reopened.expireDue() == 4, "both keys, the TTL node and the container")
        #expect(reopened.dbsize() == 0)
        #expect(try reopened.exists("/t") == nil && reopened.exists("/c") == nil)
        // The session gets a full timeout from recovery, so a client that reconnects keeps it.
        #expect(try reopened.exists("/e") != nil)
        clock.advance(milliseconds: 1999)
        #expect(try reopened.expireDue() == 0)
        #expect(reopened.touch(session))
        clock.advance(milliseconds: 1999)
        #expect(try reopened.expireDue() == 0)
        clock.advance(milliseconds: 1)
        #expect(try reopened.expireDue() == 1)
        #expect(try reopened.exists("/e") == nil)
        try reopened.close()
    }

    @Test func theBackgroundExpirerFiresOnItsOwn() throws {
        let store = try Store.open(directory: storeDirectory, options: StoreOptions(fsyncPolicy: .always, fileSystem: SimulatedFileSystem()))
        try store.set("soon", "1", expiry: .milliseconds(20))
        let session = try store.createSession(timeout: 30)
        try store.create("/e", kind: .ephemeral, session: session)
        let started = monotonicNanoseconds()
        // Bounded: 5 s at most, in 5 ms steps.
        while (store.stateView().keyspace.count > 0 || store.session(session) != nil) && monotonicNanoseconds() - started < 5_000_000_000 {
            usleep(5000)
        }
        #expect(store.stateView().keyspace.count == 0, "the expire txn ran without being asked")
        #expect(store.session(session) == nil)
        #expect(try store.exists("/e") == nil)
        try store.close()
    }

    @Test func keysOfOtherDatabasesExpireInTheirOwnDatabase() throws {
        let (store, disk, clock) = try makeStore(.always)
        let deadline = clock.nowMilliseconds() + 50
        _ = try store.execute([.inDatabase(4, .set("k", "db4", condition: .always, expiry: .at(deadline), returnOld: false))])
        try store.set("k", "db0", expiry: .milliseconds(100))
        #expect(store.pendingTimers.keys == 2)
        clock.advance(milliseconds: 50)
        #expect(try store.expireDue() == 1)
        #expect(store.stateView().keyspace(4).count == 0 && store.stateView().databases.isEmpty, "an emptied database is absent")
        #expect(try store.get("k") == "db0")
        try store.close()
        let reopened = try reopen(disk, clock: clock)
        #expect(reopened.stateView().keyspace(4).count == 0)
        #expect(try reopened.get("k") == "db0")
        try reopened.close()
    }
}

/// Under `no` a txn is applied to the committed state in place and keeps only the changes
/// that move timers (``KeyspaceChanges``): a timer started and cancelled within one txn, or a
/// key's timer cancelled by a plain SET, must still leave no timer behind.
@Suite struct ExpiryInPlaceTests {
    @Test func timersStartedAndCancelledInOneTxnLeaveNone() throws {
        let (store, _, clock) = try makeStore(.no)
        let timed = Operation.set("k", "1", condition: .always, expiry: .at(clock.nowMilliseconds() + 100), returnOld: false)
        let plain = Operation.set("k", "2", condition: .always, expiry: .clear, returnOld: false)
        try store.commitNow(try store.decide([timed, plain, .inDatabase(2, timed), .inDatabase(2, plain)], guards: []).1)
        #expect(store.pendingTimers.keys == 0)
        try store.set("j", "1", expiry: .milliseconds(100))
        try store.set("j", "2")
        #expect(store.pendingTimers.keys == 0)
        clock.advance(milliseconds: 200)
        #expect(try store.expireDue() == 0)
        #expect(try store.get("k") == "2" && store.get("j") == "2")
        #expect(store.stateView().keyspace(2).entries["k"]?.expiresAt == 0)
        try store.close()
    }
}
