import Foundation
import Cairn
import CairnStorage
import CairnTesting
import Testing

@Suite struct TxnCodecTests {
    static let operations: [Cairn.Operation] = [
        .set("k", "v", condition: .ifAbsent, expiry: .at(1_700_000_000_123), returnOld: true),
        .set(Bytes([0, 255]), Bytes([]), condition: .always, expiry: .keep, returnOld: false),
        .set("k", "v", condition: .ifPresent, expiry: .clear, returnOld: false),
        .setMany(keys: ["a", "b"], values: ["1", "2"], onlyIfNoneExist: true),
        .delete(["a", "b", "c"]),
        .incrementBy("n", Int64.min),
        .incrementBy("n", Int64.max),
        .incrementByFloat("f", -0.1),
        .append("s", "tail"),
        .getDelete("g"),
        .getExpire("g", .at(-5)),
        .expire("e", at: 42, condition: .ifLess),
        .persist("p"),
        .rename("a", to: "b", onlyIfAbsent: true),
        .flushAll,
        .push("l", ["x", "y"], left: true, onlyIfExists: false),
        .pop("l", count: 3, left: false),
        .pop("l", count: nil, left: true),
        .listRemove("l", count: -2, value: "x"),
        .listTrim("l", start: -3, stop: 7),
        .hashSet("h", fields: ["f"], values: ["v"]),
        .hashDelete("h", fields: ["f", "g"]),
        .hashIncrementBy("h", field: "n", -9),
        .compareAndDelete("lock", token: "t"),
        .expireKeys(["a", Bytes([0])]),
        .expireNodes(["/t", "/c/ü"]),
        .createNode(path: "/app", data: "v", kind: .persistent, sequential: false, ttl: 0, owner: 0),
        .createNode(path: "/q/n-", data: "", kind: .ephemeral, sequential: true, ttl: 0, owner: 7,
                    acl: [ACLEntry(perms: 31, scheme: "digest", id: "u:h"), ACLEntry(perms: 1, scheme: "world", id: "anyone")]),
        .createNode(path: "/t", data: "x", kind: .ttl, sequential: false, ttl: 60_000, owner: 0),
        .deleteNode(path: "/app", version: -1),
        .setNodeData(path: "/app", data: "w", version: 3),
        .setNodeData(path: "/app", data: "", version: -1, nullData: true),
        .createNode(path: "/n", data: "", kind: .persistent, sequential: false, ttl: 0, owner: 0, nullData: true),
        .createNode(path: "/n2", data: "", kind: .persistent, sequential: false, ttl: 0, owner: 0,
                    acl: [ACLEntry(perms: 1, scheme: "world", id: "anyone")], nullData: true),
        .checkNode(path: "/app", version: 0),
        .setNodeACL(path: "/app", acl: [ACLEntry(perms: 1, scheme: "ip", id: "10.0.0.0/8")], version: -1),
        .multi([.checkNode(path: "/a", version: 1), .createNode(path: "/a/b", data: "", kind: .container, sequential: false, ttl: 0, owner: 0)]),
        .createSession(timeout: 30_000),
        .closeSession(Int64.max),
        .inDatabase(3, .set("k", "v", condition: .always, expiry: .at(5), returnOld: false)),
        .inDatabase(15, .expireKeys(["a"])),
    ]

    @Test func everyOperationRoundTrips() throws {
        for operation in Self.operations {
            let txn = Txn(time: 1_700_000_000_000, operations: [operation])
            #expect(try TxnCodec.decode(TxnCodec.encode(txn)) == txn, "\(operation)")
        }
        let all = Txn(time: -1, operations: Self.operations)
        #expect(try TxnCodec.decode(TxnCodec.encode(all)) == all)
    }

    /// The store encodes a one-operation txn without making its array: the bytes must be the
    /// same, or replay would read something else than what was applied.
    @Test func aSingleOperationEncodesAsItsOneOperationTxn() throws {
        var single: [UInt8] = [9, 9, 9]  // reused buffers start dirty
        for operation in Self.operations {
            TxnCodec.encode(time: -42, operation, into: &single)
            #expect(single == TxnCodec.encode(Txn(time: -42, operations: [operation])), "\(operation)")
        }
    }

    /// A batch's operations are encoded lent from their array: the same bytes as the txn's,
    /// and the array as it was (every operation moved back where it was).
    @Test func operationsLentFromTheirArrayEncodeAsTheirTxn() {
        var operations = Self.operations
        var lent: [UInt8] = [9, 9, 9]  // reused buffers start dirty
        TxnCodec.encode(time: 77, lending: &operations, into: &lent)
        #expect(lent == TxnCodec.encode(Txn(time: 77, operations: Self.operations)))
        #expect(operations == Self.operations)
        var empty: [Cairn.Operation] = []
        TxnCodec.encode(time: 1, lending: &empty, into: &lent)
        #expect(lent == TxnCodec.encode(Txn(time: 1, operations: [])))
    }

    /// A store decides lent operations as it decides them passed as a value: the same replies,
    /// the same state, and a log that replays to it.
    @Test(arguments: [FsyncPolicy.always, .no])
    func aStoreDecidesLentOperationsAsItsOwn(policy: FsyncPolicy) throws {
        let batch: [Cairn.Operation] = [
            .set("a", "1", condition: .always, expiry: .clear, returnOld: false),
            .incrementBy("a", 41),
            .push("q", ["x", "y"], left: true, onlyIfExists: false),
            .incrementBy("q", 1),  // a wrong type: its error, and the others stand
            .set("a", "2", condition: .ifAbsent, expiry: .clear, returnOld: true),
            .inDatabase(3, .append("s", "tail")),
        ]
        let (lentStore, lentDisk, clock) = try makeStore(policy)
        var operations = batch
        let (lentReplies, decided) = try lentStore.decide(lending: &operations)
        try lentStore.commitNow(decided)
        #expect(operations == batch)
        let (valueStore, _, _) = try makeStore(policy, clock: clock)
        let (valueReplies, valueDecided) = try valueStore.decide(batch, guards: [])
        try valueStore.commitNow(valueDecided)
        #expect(lentReplies == valueReplies)
        #expect(lentReplies.count == batch.count)
        #expect(lentStore.stateView() == valueStore.stateView())
        try lentStore.close()
        try valueStore.close()
        let reopened = try reopen(lentDisk, clock: clock, policy: policy)
        #expect(reopened.stateView().keyspace == lentStore.stateView().keyspace)
        #expect(try reopened.get("a") == "42" && reopened.lrange("q", 0, -1) == ["y", "x"])
        try reopened.close()
    }

    @Test func damagedOrForeignBytesAreRejectedNotTrusted() {
        let bytes = TxnCodec.encode(Txn(time: 5, operations: Self.operations))
        for cut in 0..<bytes.count {
            #expect(throws: TxnCodec.DecodeError.self) { try TxnCodec.decode(Array(bytes[0..<cut])) }
        }
        #expect(throws: TxnCodec.DecodeError.unsupportedVersion(9)) { try TxnCodec.decode([9, 0, 0]) }
        #expect(throws: TxnCodec.DecodeError.trailingBytes(offset: bytes.count)) { try TxnCodec.decode(bytes + [0]) }
        #expect(throws: TxnCodec.DecodeError.self) { try TxnCodec.decode([1, 0, 1, 99]) }
        // Found by FuzzTxnDecoder: an overlong varint (a final zero group) is not canonical.
        #expect(throws: TxnCodec.DecodeError.malformedVarint(offset: 1)) { try TxnCodec.decode([1, 0xFF, 0xFF, 0xFE, 0x00, 0x00]) }
        // Canonical: a create with an empty ACL is written with tag 21, so tag 31 needs one.
        #expect(throws: TxnCodec.DecodeError.invalidValue("empty ACL", offset: 3)) { try TxnCodec.decode([1, 0, 1, 31, 2, 0x2F, 0x61, 0, 0, 0, 0, 0, 0]) }
        #expect((try? TxnCodec.decode([1, 0, 1, 21, 2, 0x2F, 0x61, 0, 0, 0, 0, 0]))?.operations.count == 1)
        // Null data has no bytes: tag 33 with data is not canonical.
        #expect(throws: TxnCodec.DecodeError.invalidValue("null data with bytes", offset: 3)) { try TxnCodec.decode([1, 0, 1, 33, 2, 0x2F, 0x61, 1, 0x78, 0, 0, 0, 0, 0]) }
        // A count far beyond the bytes present is refused before anything is allocated for it.
        #expect(throws: TxnCodec.DecodeError.self) { try TxnCodec.decode([1, 0, 0xFF, 0xFF, 0xFF, 0x7F]) }
        // Found by FuzzTxnDecoder (a stack overflow): a long chain of database operations, each
        // wrapping the next, is refused at the second link instead of recursing down the chain.
        let chain: [UInt8] = [1, 0, 1] + Array(repeating: [30, 1], count: 100_000).flatMap { $0 } + [7, 1, 0x6B]
        #expect(throws: TxnCodec.DecodeError.invalidValue("nested database operation", offset: 5)) { try TxnCodec.decode(chain) }
        #expect(throws: TxnCodec.DecodeError.invalidValue("nested database operation", offset: 5)) { try TxnCodec.decode([1, 0, 1, 25, 1, 30, 1, 7, 1, 0x6B]) }
        #expect((try? TxnCodec.decode([1, 0, 1, 30, 1, 7, 1, 0x6B]))?.operations == [.inDatabase(1, .getDelete("k"))])
        // Found by FuzzTxnDecoder: a logged pop with a negative count is refused, not trusted.
        var keyspace = StoreState()
        var changes = StoreState.Changes()
        _ = keyspace.apply(Txn(time: 0, operations: [.push("l", ["a"], left: true, onlyIfExists: false)]), index: 1, changes: &changes)
        #expect(keyspace.apply(Txn(time: 0, operations: [.pop("l", count: -3, left: true)]), index: 2, changes: &changes) == [.error(.mustBePositive)])
        var rng = SplitMix64(seed: 3)
        for _ in 0..<2000 {
            var mutated = bytes
            mutated[Int(rng.next() % UInt64(mutated.count))] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
            _ = try? TxnCodec.decode(mutated)  // must not crash
        }
    }
}

/// Writes the txn fuzzer's seed corpus when CAIRN_WRITE_FUZZ_SEEDS names a folder.
@Suite struct TxnSeedCorpus {
    @Test func writeSeedsWhenAsked() throws {
        guard let folder = ProcessInfo.processInfo.environment["CAIRN_WRITE_FUZZ_SEEDS"] else { return }
        for (i, operation) in TxnCodecTests.operations.enumerated() {
            let bytes = TxnCodec.encode(Txn(time: 1_700_000_000_000, operations: [operation]))
            _ = FileManager.default.createFile(atPath: "\(folder)/op-\(i)", contents: Data(bytes))
        }
        let all = TxnCodec.encode(Txn(time: 7, operations: TxnCodecTests.operations))
        _ = FileManager.default.createFile(atPath: "\(folder)/all", contents: Data(all))
    }
}
