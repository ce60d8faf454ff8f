import Cairn
import CairnStorage
import CairnTesting
import Testing

/// Strings and counters, compared with Redis 7's documented behaviour.
@Suite struct StringCommandTests {
    @Test func setAndGetAreBinarySafe() throws {
        let (store, _, _) = try makeStore()
        let key = Bytes([0, 1, 2, 255])
        let value = Bytes([255, 0, 10, 13])
        try store.set(key, value)
        #expect(try store.get(key) == value)
        #expect(try store.get("absent") == nil)
        try store.close()
    }

    @Test func setConditions() throws {
        let (store, _, _) = try makeStore()
        #expect(try store.set("k", "1", condition: .ifPresent) == false, "XX on a missing key does nothing")
        #expect(try store.get("k") == nil)
        #expect(try store.set("k", "1", condition: .ifAbsent))
        #expect(try store.set("k", "2", condition: .ifAbsent) == false, "NX on an existing key does nothing")
        #expect(try store.get("k") == "1")
        #expect(try store.set("k", "3", condition: .ifPresent))
        #expect(try store.get("k") == "3")
        // SET ... GET returns the old value; with NX it returns it without writing (Redis 7).
        #expect(try store.setAndGet("k", "4") == "3")
        #expect(try store.setAndGet("k", "5", condition: .ifAbsent) == "4")
        #expect(try store.get("k") == "4")
        #expect(try store.setAndGet("new", "x") == nil)
        try store.close()
    }

    @Test func setGetOnAWrongTypeFailsAndWritesNothing() throws {
        let (store, _, _) = try makeStore()
        try store.lpush("list", "a")
        #expect(throws: KVError.wrongType) { try store.setAndGet("list", "x") }
        #expect(try store.llen("list") == 1)
        try store.set("list", "plain SET overwrites any type")
        #expect(try store.get("list") == "plain SET overwrites any type")
        try store.close()
    }

    @Test func expiryOptions() throws {
        let (store, _, clock) = try makeStore()
        try store.set("ex", "v", expiry: .seconds(10))
        #expect(store.pttl("ex") == 10_000)
        #expect(store.ttl("ex") == 10)
        try store.set("px", "v", expiry: .milliseconds(1500))
        #expect(store.pttl("px") == 1500)
        try store.set("exat", "v", expiry: .unixSeconds(clock.nowMilliseconds() / 1000 + 100))
        #expect(store.ttl("exat") > 98 && store.ttl("exat") <= 100)
        try store.set("pxat", "v", expiry: .unixMilliseconds(clock.nowMilliseconds() + 42))
        #expect(store.pttl("pxat") == 42)
        // KEEPTTL keeps it; a plain SET clears it.
        try store.set("ex", "v2", expiry: .keep)
        #expect(store.pttl("ex") == 10_000)
        try store.set("ex", "v3")
        #expect(store.pttl("ex") == -1)
        #expect(store.pttl("absent") == -2)
        for bad in [Expiry.seconds(0), .seconds(-1), .milliseconds(0), .unixMilliseconds(-5), .seconds(.max)] {
            #expect(throws: KVError.invalidExpireTime(command: "set")) { try store.set("bad", "v", expiry: bad) }
        }
        #expect(KVError.invalidExpireTime(command: "set").message == "ERR invalid expire time in 'set' command")
        // A deadline already past deletes the key.
        try store.set("gone", "v", expiry: .unixMilliseconds(clock.nowMilliseconds() - 1))
        #expect(store.exists("gone") == 0)
        try store.close()
    }

    @Test func keysExpireExactlyAtTheirDeadline() throws {
        let (store, _, clock) = try makeStore()
        try store.set("k", "v", expiry: .milliseconds(100))
        clock.advance(milliseconds: 99)
        #expect(try store.get("k") == "v")
        #expect(store.pttl("k") == 1)
        clock.advance(milliseconds: 1)
        #expect(try store.get("k") == nil, "expired at its deadline")
        #expect(store.exists("k") == 0)
        #expect(store.type("k") == "none")
        // A write to an expired key starts from nothing.
        #expect(try store.incr("k") == 1)
        #expect(store.pttl("k") == -1)
        try store.close()
    }

    @Test func msetAndMsetnx() throws {
        let (store, _, _) = try makeStore()
        try store.mset([("a", "1"), ("b", "2")])
        #expect(store.mget(["a", "b", "c"]) == ["1", "2", nil])
        #expect(try store.msetnx([("c", "3"), ("a", "x")]) == false, "one exists: none are set")
        #expect(try store.get("c") == nil)
        #expect(try store.msetnx([("c", "3"), ("d", "4")]))
        #expect(store.mget(["c", "d"]) == ["3", "4"])
        try store.lpush("l", "x")
        #expect(store.mget(["l"]) == [nil], "MGET answers nil for a non-string")
        try store.close()
    }

    /// APPEND refuses to grow a string past 512 MB (Redis's proto-max-bulk-len), with Redis's
    /// error and nothing changed or logged; up to the limit exactly it grows. On the state
    /// machine itself: through the store, the 512 MB would be held again by the simulated log.
    @Test func appendRefusesToGrowAStringPast512MB() {
        var state = StoreState()
        var changes = StoreState.Changes()
        do {
            let big = Bytes([UInt8](repeating: 0x61, count: Keyspace.maxStringLength - 1))
            #expect(state.apply(.set("s", big, condition: .always, expiry: .clear, returnOld: false), time: 0, index: 1, changes: &changes) == .ok)
        }
        changes = StoreState.Changes()  // (drops the change's reference: the string is the state's alone)
        #expect(state.apply(.append("s", "xy"), time: 0, index: 2, changes: &changes) == .error(.stringTooLong))
        #expect(changes.isEmpty, "a refused APPEND changes nothing, so nothing is logged")
        #expect(KVError.stringTooLong.description == "ERR string exceeds maximum allowed size (proto-max-bulk-len)")
        #expect(state.apply(.append("s", "x"), time: 0, index: 2, changes: &changes) == .integer(Int64(Keyspace.maxStringLength)))
    }

    @Test func appendStrlenGetdelGetex() throws {
        let (store, _, clock) = try makeStore()
        #expect(try store.append("s", "Hello") == 5)
        #expect(try store.append("s", " World") == 11)
        #expect(try store.strlen("s") == 11)
        #expect(try store.strlen("none") == 0)
        #expect(try store.getdel("s") == "Hello World")
        #expect(try store.getdel("s") == nil)
        // APPEND grows a live string and keeps its deadline; an expired one starts again, with none.
        try store.set("a", "x", expiry: .milliseconds(100))
        #expect(try store.append("a", "y") == 2 && store.get("a") == "xy" && store.pttl("a") == 100)
        clock.advance(milliseconds: 100)
        #expect(try store.append("a", "z") == 1 && store.get("a") == "z" && store.pttl("a") == -1)
        try store.lpush("l", "x")
        #expect(throws: KVError.wrongType) { try store.append("l", "y") }
        #expect(try store.lrange("l", 0, -1) == ["x"])
        try store.set("t", "v")
        #expect(try store.getex("t", expiry: .seconds(5)) == "v")
        #expect(store.pttl("t") == 5000)
        #expect(try store.getex("t") == "v")
        #expect(store.pttl("t") == 5000, "GETEX without options leaves the deadline")
        #expect(try store.getex("t", persist: true) == "v")
        #expect(store.pttl("t") == -1)
        #expect(try store.getex("t", expiry: .unixMilliseconds(clock.nowMilliseconds() - 10)) == "v")
        #expect(store.exists("t") == 0)
        try store.close()
    }

    @Test(arguments: [FsyncPolicy.always, .no])
    func counters(policy: FsyncPolicy) throws {
        let (store, _, clock) = try makeStore(policy)
        #expect(try store.incr("n") == 1)
        #expect(try store.incrby("n", 41) == 42)
        #expect(try store.decr("n") == 41)
        #expect(try store.decrby("n", 50) == -9)
        try store.set("big", "9223372036854775807")
        #expect(throws: KVError.overflow) { try store.incr("big") }
        #expect(KVError.overflow.message == "ERR increment or decrement would overflow")
        for bad in ["abc", "1.5", " 1", "01", "+1", "", "99999999999999999999"] {
            try store.set("bad", Bytes(bad))
            #expect(throws: KVError.notAnInteger, "\(bad)") { try store.incr("bad") }
        }
        #expect(KVError.notAnInteger.message == "ERR value is not an integer or out of range")
        try store.set("neg", "-0")
        #expect(throws: KVError.notAnInteger) { try store.incr("neg") }
        try store.set("min", "-9223372036854775808")
        #expect(try store.incr("min") == Int64.min + 1)
        try store.lpush("list", "x")
        #expect(throws: KVError.wrongType) { try store.incr("list") }
        // A refused increment leaves the entry as it was.
        #expect(try store.get("big") == "9223372036854775807" && store.get("bad") == "99999999999999999999")
        #expect(try store.lrange("list", 0, -1) == ["x"])
        // An expired key of another type is gone: the counter starts from nothing.
        try store.expire("list", .seconds(1))
        clock.advance(milliseconds: 1000)
        #expect(try store.incr("list") == 1 && store.pttl("list") == -1)
        try store.close()
    }

    /// Replay and the crash drill's model apply txns at any time, 0 included: a counter that
    /// does not exist counts from 0 then too (a placeholder entry once looked "live" at time 0).
    @Test(arguments: [Int64(0), 1, 1_700_000_000_000])
    func countersStartFromNothingAtAnyTime(time: Int64) throws {
        var state = StoreState()
        var changes = StoreState.Changes()
        #expect(state.apply(Txn(time: time, operations: [.incrementBy("c", 5)]), index: 1, changes: &changes) == [.integer(5)])
        #expect(state.apply(Txn(time: time, operations: [.incrementBy("c", -7)]), index: 2, changes: &changes) == [.integer(-2)])
        #expect(state.keyspace.entries["c"] == Entry(value: .string("-2"), version: 2))
    }

    /// INCR rewrites a counter's bytes in place: a shorter number leaves nothing of the longer
    /// one behind, and a view taken before the increment keeps what it saw.
    @Test(arguments: [FsyncPolicy.always, .no])
    func countersRewriteTheirBytesInPlace(policy: FsyncPolicy) throws {
        let (store, _, _) = try makeStore(policy)
        try store.set("n", "1000")
        let before = store.readView().keyspace
        #expect(try store.decr("n") == 999)
        #expect(try store.get("n") == "999")
        #expect(before.entries["n"]?.value == .string("1000"))
        #expect(try store.decrby("n", 1009) == -10 && store.get("n") == "-10")
        #expect(try store.incr("n") == -9 && store.get("n") == "-9")
        #expect(try store.incrby("n", 9) == 0 && store.get("n") == "0")
        try store.set("min", "-9223372036854775807")
        #expect(try store.decr("min") == Int64.min && store.get("min") == "-9223372036854775808")
        try store.close()
    }

    @Test func decimalsAreSpelledAsStringsSpellThem() {
        var values: [Int64] = [0, 1, 9, 10, 99, 100, -1, -9, -10, Int64.max, Int64.min, Int64.min + 1]
        var random = SplitMix64(seed: 7)
        for _ in 0..<1000 { values.append(Int64(bitPattern: random.next()) >> Int64(random.next() % 63)) }
        for value in values {
            var out: [UInt8] = [0x41]  // appended after what is there
            RedisNumbers.appendDecimal(value, to: &out)
            #expect(out == [0x41] + Array(String(value).utf8), "\(value)")
            #expect(RedisNumbers.format(value) == Bytes(String(value)))
        }
    }

    @Test func countersKeepTheirDeadline() throws {
        let (store, _, _) = try makeStore()
        try store.set("n", "1", expiry: .seconds(100))
        try store.incr("n")
        #expect(store.pttl("n") == 100_000)
        try store.close()
    }

    @Test func incrbyfloat() throws {
        let (store, _, _) = try makeStore()
        try store.set("f", "10.50")
        #expect(try store.incrbyfloat("f", 0.1) == "10.6")
        #expect(try store.incrbyfloat("f", -5) == "5.6")
        try store.set("e", "5.0e3")
        #expect(try store.incrbyfloat("e", 2.0e2) == "5200")
        #expect(try store.incrbyfloat("new", 3) == "3")
        try store.set("x", "abc")
        #expect(throws: KVError.notAFloat) { try store.incrbyfloat("x", 1) }
        try store.set("huge", "1.7e308")
        #expect(throws: KVError.nanOrInfinity) { try store.incrbyfloat("huge", 1.7e308) }
        #expect(try store.get("x") == "abc" && store.get("huge") == "1.7e308", "refused: left as they were")
        try store.close()
    }
}
