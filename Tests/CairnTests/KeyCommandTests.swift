import Cairn
import CairnTesting
import Testing

@Suite struct KeyCommandTests {
    @Test func delExistsTypeDbsize() throws {
        let (store, _, _) = try makeStore()
        try store.set("a", "1")
        try store.lpush("b", "x")
        try store.hset("c", [("f", "v")])
        #expect(store.exists("a", "a", "b", "zzz") == 3, "a key named twice counts twice")
        #expect(store.type("a") == "string" && store.type("b") == "list" && store.type("c") == "hash")
        #expect(store.dbsize() == 3)
        #expect(try store.del("a", "b", "zzz") == 2)
        #expect(store.dbsize() == 1)
        try store.flushall()
        #expect(store.dbsize() == 0)
        try store.close()
    }

    @Test func rename() throws {
        let (store, _, _) = try makeStore()
        #expect(throws: KVError.noSuchKey) { try store.rename("missing", "x") }
        try store.set("a", "1", expiry: .seconds(50))
        try store.rename("a", "b")
        #expect(try store.get("b") == "1" && store.exists("a") == 0)
        #expect(store.pttl("b") == 50_000, "the deadline moves with the key")
        try store.set("c", "2")
        #expect(try store.renamenx("b", "c") == false)
        #expect(try store.renamenx("b", "d"))
        try store.rename("d", "d")
        #expect(try store.get("d") == "1")
        try store.close()
    }

    @Test func keysWithPatterns() throws {
        let (store, _, _) = try makeStore()
        for key in ["hello", "hallo", "hxllo", "hllo", "heeeello", "hbllo", "h*llo", "other"] { try store.set(Bytes(key), "1") }
        #expect(store.keys("h?llo") == ["h*llo", "hallo", "hbllo", "hello", "hxllo"], "? matches the * in a key too")
        #expect(store.keys("h*llo") == ["h*llo", "hallo", "hbllo", "heeeello", "hello", "hllo", "hxllo"])
        #expect(store.keys("h[ae]llo") == ["hallo", "hello"])
        #expect(store.keys("h[^e]llo") == ["h*llo", "hallo", "hbllo", "hxllo"])
        #expect(store.keys("h[a-b]llo") == ["hallo", "hbllo"])
        #expect(store.keys("h\\*llo") == ["h*llo"])
        #expect(store.keys().count == 8)
        try store.close()
    }

    @Test func scanVisitsEveryKeyOnceWhenNothingChanges() throws {
        let (store, _, _) = try makeStore(.no)
        for i in 0..<500 { try store.set(Bytes("key:\(i)"), "v") }
        var seen: [Bytes] = []
        var cursor: UInt64 = 0
        var steps = 0
        repeat {
            let step = store.scan(cursor: cursor, count: 37)
            seen.append(contentsOf: step.keys)
            cursor = step.cursor
            steps += 1
        } while cursor != 0 && steps < 1000
        #expect(seen.count == 500 && Set(seen).count == 500)
        #expect(steps > 5)
        let matched = store.scan(cursor: 0, match: "key:1*", count: 10_000).keys
        #expect(matched.count == 111)
        try store.close()
    }

    /// Later steps of a scan use the pass its first step sorted (O(log n + count) each), and
    /// a step whose pass is gone (here: a new store on the same directory) still goes on from
    /// its position, missing nothing.
    @Test func scanStepsContinueFromTheirPassOrRebuildIt() throws {
        let (store, disk, clock) = try makeStore(.no)
        for i in 0..<400 { try store.set(Bytes("key:\(i)"), "v") }
        var seen: [Bytes] = []
        var step = store.scan(cursor: 0, count: 50)
        seen += step.keys
        #expect(store.scanPassesKept == 1 && step.cursor >> 48 != 0, "a pass was kept: cursor \(step.cursor)")
        step = store.scan(cursor: step.cursor, count: 50)
        seen += step.keys
        #expect(store.scanPassesKept == 1, "the second step used the same pass")
        try store.close()

        let reopened = try reopen(disk, clock: clock, policy: .no)
        var cursor = step.cursor
        var steps = 0
        repeat {
            let next = reopened.scan(cursor: cursor, count: 50)
            seen += next.keys
            cursor = next.cursor
            steps += 1
        } while cursor != 0 && steps < 100
        #expect(seen.count == 400 && Set(seen).count == 400, "every key once: \(seen.count), \(Set(seen).count) distinct")
        #expect(reopened.scanPassesKept == 1)
        // A cursor past every key, and an empty database.
        #expect(reopened.scan(cursor: (UInt64(1) << 48) - 1, count: 10).cursor == 0)
        let empty = reopened.scan(cursor: 0, db: 5)
        #expect(empty.cursor == 0 && empty.keys.isEmpty)
        try reopened.close()
    }

    @Test func scanReturnsKeysPresentThroughoutDespiteChanges() throws {
        let (store, _, _) = try makeStore(.no)
        for i in 0..<300 { try store.set(Bytes("stay:\(i)"), "v") }
        var seen = Set<Bytes>()
        var cursor: UInt64 = 0
        var round = 0
        repeat {
            let step = store.scan(cursor: cursor, count: 20)
            seen.formUnion(step.keys)
            cursor = step.cursor
            try store.set(Bytes("new:\(round)"), "v")  // the keyspace changes between steps
            if round < 100 { _ = try store.del(Bytes("new:\(round / 2)")) }
            round += 1
        } while cursor != 0 && round < 10_000
        for i in 0..<300 { #expect(seen.contains(Bytes("stay:\(i)"))) }
        try store.close()
    }

    @Test func expireConditionsAndPersist() throws {
        let (store, _, clock) = try makeStore()
        #expect(try store.expire("missing", .seconds(10)) == false)
        try store.set("k", "v")
        #expect(try store.expire("k", .seconds(10), condition: .ifHasExpiry) == false)
        #expect(try store.expire("k", .seconds(10), condition: .ifGreater) == false, "no deadline counts as infinite")
        #expect(try store.expire("k", .seconds(10), condition: .ifNoExpiry))
        #expect(try store.expire("k", .seconds(20), condition: .ifNoExpiry) == false)
        #expect(try store.expire("k", .seconds(5), condition: .ifGreater) == false)
        #expect(try store.expire("k", .seconds(20), condition: .ifGreater))
        #expect(try store.expire("k", .seconds(30), condition: .ifLess) == false)
        #expect(try store.expire("k", .milliseconds(1500), condition: .ifLess))
        #expect(store.pttl("k") == 1500)
        #expect(try store.persist("k"))
        #expect(try store.persist("k") == false)
        #expect(store.pttl("k") == -1)
        #expect(try store.expire("k", .unixMilliseconds(clock.nowMilliseconds() + 7)))
        #expect(store.pttl("k") == 7)
        #expect(try store.expire("k", .seconds(-1)), "a deadline in the past deletes the key")
        #expect(store.exists("k") == 0)
        try store.close()
    }
}
