@testable import Cairn
import CairnStorage
import CairnTesting
import Testing

/// Under `always`, a group commit of many txns over only a few keys (and no znode) is
/// published by making the committed state a copy of head taken before the wait (a mark);
/// any other is replayed txn by txn. Either way readers see exactly the committed txns.
@Suite struct HeadMarkTests {
    /// Decides `count` txns from `operation(i)` without waiting, then waits once for the last.
    static func batch(_ store: Store, _ count: Int, _ operation: (Int) -> Operation) throws {
        var last: Decided?
        for i in 0..<count { last = try store.decide(operation(i)).1 }
        try store.commitNow(last!)
    }

    @Test func hotKeysArePublishedByAMarkAndManyKeysByReplay() throws {
        let (store, disk, clock) = try makeStore(.always)
        defer { try? store.close() }

        // A lone txn: replayed (a mark would copy the key's path for one txn).
        let (_, first) = try store.decide(.incrementBy("hot:0", 1))
        #expect(try store.get("hot:0") == nil, "nothing is visible before its sync")
        try store.commitNow(first)
        #expect(store.publishedByMark == 0)
        // 300 increments of three counters: one mark.
        try Self.batch(store, 300) { .incrementBy(Bytes("hot:\($0 % 3)"), 1) }
        #expect(store.publishedByMark == 1)
        #expect(try store.get("hot:0") == "101" && store.get("hot:1") == "100" && store.get("hot:2") == "100")

        // 300 keys: replayed.
        try Self.batch(store, 300) { .set(Bytes("cold:\($0)"), Bytes("\($0)"), condition: .always, expiry: .clear, returnOld: false) }
        #expect(store.publishedByMark == 1, "a batch over many keys is replayed")
        for i in stride(from: 0, to: 300, by: 37) { #expect(try store.get(Bytes("cold:\(i)")) == Bytes("\(i)")) }

        // A queue: pushes and pops of one list, by mark; the list read back whole.
        try Self.batch(store, 200) { i in i % 4 == 3 ? .pop("queue", count: nil, left: false) : .push("queue", [Bytes("job\(i)")], left: true, onlyIfExists: false) }
        #expect(store.publishedByMark == 2)
        var model: [String] = []
        for i in 0..<200 { if i % 4 == 3 { model.removeLast() } else { model.insert("job\(i)", at: 0) } }
        #expect(try store.lrange("queue", 0, -1) == model.map { Bytes($0) })

        // A znode among the txns: replayed (its watches fire from the replay).
        try Self.batch(store, 10) { i in i == 5 ? .createNode(path: "/n", data: Bytes([]), kind: .persistent, sequential: false, ttl: 0, owner: 0) : .incrementBy("hot:0", 1) }
        #expect(store.publishedByMark == 2)
        #expect(try store.exists("/n") != nil && store.get("hot:0") == "110")

        // The committed state is what a replay of the log gives.
        let committed = store.stateView()
        try store.close()
        let reopened = try Store.open(directory: storeDirectory, options: StoreOptions(fsyncPolicy: .always, segmentSize: 64 << 10, clock: clock, fileSystem: disk, activeExpiry: false))
        #expect(reopened.stateView() == committed)
        try reopened.close()
    }

    /// A mark taken for a later txn than the sync reached is not used until its txn is
    /// durable; the caller's own txn is replayed meanwhile.
    @Test func aMarkBeyondTheSyncWaitsForItsTxn() throws {
        let (store, _, _) = try makeStore(.always)
        defer { try? store.close() }
        var decided: [Decided] = []
        for _ in 0..<100 { decided.append(try store.decide(.incrementBy("n", 1)).1) }
        store.markHead(covering: decided[99].index)  // the mark covers all hundred
        try store.log.sync()
        for _ in 0..<5 { decided.append(try store.decide(.incrementBy("n", 1)).1) }
        try store.commitNow(decided[50])  // durable through 100 (the sync above): the mark is used
        #expect(store.publishedByMark == 1)
        #expect(try store.get("n") == "100")
        try store.commitNow(decided[104])  // five txns on one key: replayed
        #expect(store.publishedByMark == 1)
        #expect(try store.get("n") == "105")
    }
}
