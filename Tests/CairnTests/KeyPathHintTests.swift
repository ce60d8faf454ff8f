@testable import Cairn
import CairnStorage
import CairnTesting
import Testing

/// The store's cache hints for large keyspaces: a group commit's replay hints its keys' paths
/// in the committed trie, and a server hints a pipeline's keys before running it. Hints only
/// hint: every read and write gives what it gives without them.
@Suite struct KeyPathHintTests {
    /// More keys than the store starts hinting at, in groups decided together and committed
    /// by one wait (under `always`, each group commit replays the whole group with hints).
    static let keyCount = 20_000
    static let groupSize = 500

    @Test(arguments: [FsyncPolicy.always, .no])
    func aLargeKeyspaceIsHintedAndEveryReadAndWriteStaysRight(policy: FsyncPolicy) throws {
        let (store, disk, clock) = try makeStore(policy)
        #expect(!store.wantsKeyPathHints, "an empty keyspace is not hinted")
        var model: [Bytes: Int64] = [:]
        var rng = SplitMix64(seed: 0x41_17)
        for group in 0..<(Self.keyCount / Self.groupSize) {
            var last: Decided?
            for i in 0..<Self.groupSize {
                // Each key once, and now and then one met before again.
                let n = rng.next() % 8 == 0 ? Int(rng.next() % UInt64(group * Self.groupSize + i + 1)) : group * Self.groupSize + i
                let key = Bytes("user:\(n)")
                let (_, decided) = try store.decide(.incrementBy(key, 3))
                model[key, default: 0] += 3
                last = decided
            }
            try store.commitNow(last!)
        }
        #expect(model.count > 1 << 14, "\(model.count) keys")
        #expect(store.wantsKeyPathHints, "\(model.count) keys: lookups are hinted")

        // Hints with writes still waiting for their sync (head and committed differ under
        // `always`): of present and absent keys, more than one call takes.
        let keys = Array(model.keys)
        var pendingDecisions: [Decided] = []
        for key in keys.prefix(40) {
            pendingDecisions.append(try store.decide(.incrementBy(key, 1)).1)
            model[key]! += 1
        }
        let writes = keys.prefix(100).map { $0.storage.withUnsafeBytes(Store.keyHash) }
        let reads = (keys.suffix(20) + [Bytes("absent")]).map { $0.storage.withUnsafeBytes(Store.keyHash) }
        writes.withUnsafeBufferPointer { w in reads.withUnsafeBufferPointer { r in store.hintKeyPaths(writes: w, reads: r) } }
        #expect(store.keyHash(matchesTheTablesFor: keys[0]))
        try store.commitNow(pendingDecisions.last!)

        for (key, value) in model { #expect(try store.get(key) == Bytes("\(value)"), "key \(key)") }
        #expect(try store.get("absent") == nil)

        // Reopened, a large keyspace is hinted from the start.
        try store.close()
        let reopened = try Store.open(directory: storeDirectory, options: StoreOptions(fsyncPolicy: policy, segmentSize: 64 << 10, clock: clock, fileSystem: disk, activeExpiry: false))
        #expect(reopened.wantsKeyPathHints)
        #expect(reopened.stateView().keyspace.count == model.count)
        try reopened.close()
    }
}

extension Store {
    /// Whether ``keyHash(_:)`` of a key's bytes is the hash its table places it by.
    func keyHash(matchesTheTablesFor key: Bytes) -> Bool {
        key.storage.withUnsafeBytes(Store.keyHash) == KeyTable.hash(key)
    }
}
