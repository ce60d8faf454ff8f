import Cairn
import CairnStorage
import CairnTesting
import Testing

@Suite struct ListCommandTests {
    @Test func pushesAndRanges() throws {
        let (store, _, _) = try makeStore()
        #expect(try store.lpush("l", "a", "b", "c") == 3)
        #expect(try store.lrange("l", 0, -1) == ["c", "b", "a"], "LPUSH a b c gives c b a")
        #expect(try store.rpush("l", "d", "e") == 5)
        #expect(try store.lrange("l", 0, -1) == ["c", "b", "a", "d", "e"])
        #expect(try store.lrange("l", -2, -1) == ["d", "e"])
        #expect(try store.lrange("l", 1, 100) == ["b", "a", "d", "e"])
        #expect(try store.lrange("l", 4, 2) == [])
        #expect(try store.lrange("l", -100, 0) == ["c"])
        #expect(try store.lrange("l", Int64.min, Int64.max) == ["c", "b", "a", "d", "e"], "extreme indexes clamp")
        #expect(try store.lrange("l", 0, Int64.min) == [])
        #expect(try store.lindex("l", Int64.min) == nil)
        #expect(try store.lindex("l", 0) == "c" && store.lindex("l", -1) == "e" && store.lindex("l", 5) == nil)
        #expect(try store.llen("l") == 5 && store.llen("missing") == 0)
        #expect(try store.lpushx("missing", "x") == 0 && store.exists("missing") == 0)
        #expect(try store.rpushx("l", "f") == 6)
        try store.set("s", "v")
        #expect(throws: KVError.wrongType) { try store.lpush("s", "x") }
        #expect(throws: KVError.wrongType) { try store.llen("s") }
        try store.close()
    }

    /// Under `always` a pop is applied to the head state and, once synced, to the committed
    /// state (in place, `changeList`); under `no` once.
    @Test(arguments: [FsyncPolicy.always, .no])
    func popsAsAQueue(policy: FsyncPolicy) throws {
        let (store, disk, clock) = try makeStore(policy)
        try store.rpush("q", "1", "2", "3", "4", "5")
        #expect(try store.lpop("q") == "1")
        #expect(try store.rpop("q") == "5")
        #expect(try store.lpop("q", count: 2) == ["2", "3"])
        #expect(try store.rpop("q", count: 10) == ["4"])
        #expect(store.exists("q") == 0, "an emptied list is deleted")
        #expect(try store.lpop("q") == nil)
        #expect(try store.lpop("q", count: 2) == nil, "a missing key answers a null array")
        #expect(throws: KVError.mustBePositive) { try store.lpop("q", count: -1) }
        try store.rpush("q", "x")
        #expect(try store.lpop("q", count: 0) == [])
        // Emptied by a counted pop from either end: every element in pop order, the key gone.
        try store.rpush("q", "y", "z")
        #expect(try store.rpop("q", count: 3) == ["z", "y", "x"])
        #expect(store.exists("q") == 0)
        try store.rpush("q", "a", "b", "c")
        #expect(try store.lpop("q", count: 3) == ["a", "b", "c"])
        #expect(store.exists("q") == 0)
        // Pops and pushes in between, then the same list after a reopen (replayed from the log).
        try store.rpush("q", "1", "2", "3", "4", "5", "6")
        #expect(try store.rpop("q", count: 2) == ["6", "5"])
        try store.lpush("q", "0")
        #expect(try store.lpop("q", count: 2) == ["0", "1"])
        #expect(try store.lrange("q", 0, -1) == ["2", "3", "4"])
        try store.close()
        let reopened = try reopen(disk, clock: clock, policy: policy)
        #expect(try reopened.lrange("q", 0, -1) == ["2", "3", "4"])
        try reopened.close()
    }

    @Test func lremAndLtrim() throws {
        let (store, _, _) = try makeStore()
        try store.rpush("l", "a", "b", "a", "c", "a")
        #expect(try store.lrem("l", count: 2, "a") == 2)
        #expect(try store.lrange("l", 0, -1) == ["b", "c", "a"])
        try store.rpush("l", "a", "a")
        #expect(try store.lrem("l", count: -1, "a") == 1)
        #expect(try store.lrange("l", 0, -1) == ["b", "c", "a", "a"])
        #expect(try store.lrem("l", count: 0, "a") == 2)
        #expect(try store.lrange("l", 0, -1) == ["b", "c"])
        try store.rpush("l", "d", "e", "f")
        try store.ltrim("l", 1, -2)
        #expect(try store.lrange("l", 0, -1) == ["c", "d", "e"])
        try store.ltrim("l", 5, 10)
        #expect(store.exists("l") == 0)
        try store.close()
    }
}

@Suite struct HashCommandTests {
    /// Under `always` a field change is applied to the head state and the whole hash put into
    /// the committed state as it commits; under `no` it changes the one state in place.
    @Test(arguments: [FsyncPolicy.always, .no])
    func fieldsAndCounters(policy: FsyncPolicy) throws {
        let (store, disk, clock) = try makeStore(policy)
        #expect(try store.hset("h", [("a", "1"), ("b", "2")]) == 2)
        #expect(try store.hset("h", [("a", "10"), ("c", "3")]) == 1, "only new fields count")
        #expect(try store.hget("h", "a") == "10" && store.hget("h", "zz") == nil)
        #expect(try store.hlen("h") == 3)
        #expect(try store.hgetall("h").map { [$0.0, $0.1] } == [["a", "10"], ["b", "2"], ["c", "3"]])
        #expect(try store.hincrby("h", "a", 5) == 15)
        #expect(try store.hincrby("h", "new", -2) == -2)
        try store.hset("h", [("text", "abc")])
        #expect(throws: KVError.hashValueNotInteger) { try store.hincrby("h", "text", 1) }
        #expect(try store.hdel("h", "a", "b", "c", "new", "text", "zz") == 5)
        #expect(store.exists("h") == 0, "an emptied hash is deleted")
        try store.set("s", "v")
        #expect(throws: KVError.wrongType) { try store.hget("s", "a") }
        #expect(throws: KVError.wrongType) { try store.hset("s", [("a", "1")]) }
        #expect(throws: KVError.wrongType) { try store.hdel("s", "a") }
        #expect(throws: KVError.wrongType) { try store.hincrby("s", "a", 1) }
        // A counter in a hash that does not exist yet makes it.
        #expect(try store.hincrby("g", "n", 7) == 7 && store.hget("g", "n") == "7")
        // A field named twice is removed once; a delete that finds nothing changes nothing.
        try store.hset("g", [("x", "1"), ("y", "2")])
        let version = store.liveEntry("g")?.version
        #expect(try store.hdel("g", "zz", "zz") == 0)
        #expect(store.liveEntry("g")?.version == version, "nothing removed: the version stays")
        #expect(try store.hdel("g", "x", "x", "zz") == 1)
        #expect(store.liveEntry("g")?.version != version)
        #expect(try store.hgetall("g").map { [$0.0, $0.1] } == [["n", "7"], ["y", "2"]])
        let before = store.liveEntry("g")
        try store.close()
        let reopened = try reopen(disk, clock: clock, policy: policy)
        #expect(reopened.liveEntry("g") == before, "replayed to the same fields and version")
        try reopened.close()
    }
}

@Suite struct LockAndTransactionTests {
    @Test func locksAreReleasedOnlyByTheirHolder() throws {
        let (store, _, clock) = try makeStore()
        #expect(try store.acquireLock("lock", token: "A", ttlMilliseconds: 1000))
        #expect(try store.acquireLock("lock", token: "B", ttlMilliseconds: 1000) == false)
        #expect(try store.releaseLock("lock", token: "B") == false, "B does not hold it")
        #expect(try store.get("lock") == "A")
        #expect(try store.releaseLock("lock", token: "A"))
        #expect(try store.acquireLock("lock", token: "B", ttlMilliseconds: 1000))
        clock.advance(milliseconds: 1000)
        #expect(try store.acquireLock("lock", token: "C", ttlMilliseconds: 1000), "an expired lock can be taken")
        #expect(try store.releaseLock("lock", token: "B") == false)
        try store.close()
    }

    @Test func aBatchIsOneTxnWithPerOperationReplies() throws {
        let (store, _, _) = try makeStore()
        try store.set("s", "text")
        let before = store.log.lastIndex
        let replies = try store.execute([
            .incrementBy("counter", 5),
            .incrementBy("s", 1),  // fails; the others still apply, as in Redis's EXEC
            .set("k", "v", condition: .always, expiry: .clear, returnOld: false),
        ])
        #expect(replies == [.integer(5), .error(.notAnInteger), .ok])
        #expect(store.log.lastIndex == before + 1, "one txn for the whole batch")
        #expect(try store.get("counter") == "5" && store.get("k") == "v")
        try store.close()
    }

    @Test func aGuardedBatchDoesNotRunWhenAWatchedKeyChanged() throws {
        let (store, _, _) = try makeStore()
        try store.set("watched", "1")
        let versions = store.versions(["watched", "absent"])
        try store.set("watched", "2")  // another client writes
        let aborted = try store.execute([.incrementBy("watched", 1)], guards: versions)
        #expect(aborted == nil)
        #expect(try store.get("watched") == "2")
        let fresh = store.versions(["watched", "absent"])
        #expect(try store.execute([.incrementBy("watched", 1)], guards: fresh) == [.integer(3)])
        try store.close()
    }

    @Test func guardsAreCheckedInTheirOwnDatabase() throws {
        let (store, _, _) = try makeStore()
        _ = try store.execute([.inDatabase(1, .set("k", "one", condition: .always, expiry: .clear, returnOld: false))])
        let guards = store.versions(["k"], db: 1) + store.versions(["k"], db: 2)
        #expect(guards.map(\.db) == [1, 2] && guards[0].version != nil && guards[1].version == nil)
        try store.set("k", "zero")  // database 0: not guarded
        #expect(try store.execute([.set("ran", "1", condition: .always, expiry: .clear, returnOld: false)], guards: guards) == [.ok])
        _ = try store.execute([.inDatabase(2, .set("k", "two", condition: .always, expiry: .clear, returnOld: false))])
        #expect(try store.execute([.set("ran", "2", condition: .always, expiry: .clear, returnOld: false)], guards: guards) == nil)
        #expect(try store.get("ran") == "1")
        try store.close()
    }

    @Test func aWriteThatChangesNothingIsNotLogged() throws {
        let (store, _, _) = try makeStore()
        let before = store.log.lastIndex
        #expect(try store.del("nothing") == 0)
        #expect(throws: KVError.noSuchKey) { try store.rename("nothing", "x") }
        #expect(try store.set("k", "v", condition: .ifPresent) == false)
        #expect(store.log.lastIndex == before)
        try store.close()
    }
}
