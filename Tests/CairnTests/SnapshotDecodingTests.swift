@testable import Cairn
import CairnStorage
import CairnTesting
import Testing

/// Decoding content while it arrives (a snapshot decompressed on another thread as it is read).
@Suite struct SnapshotDecodingTests {
    /// A state with records of every kind, one longer than the decoder's look-ahead. `large`:
    /// enough keys and znodes that the znodes are decoded on a thread of their own.
    func sample(large: Bool = false) throws -> (StoreState, [UInt8]) {
        let store = try Store.open(directory: storeDirectory, options: StoreOptions(fsyncPolicy: .no, clock: ManualClock(), fileSystem: SimulatedFileSystem(), activeExpiry: false))
        defer { try? store.close() }
        let keys = large ? TreeJob.threadFrom + 100 : 2000
        for i in 0..<keys { try store.set(Bytes("key:\(i)"), Bytes("value \(i)")) }
        if large {
            _ = try store.rpush("list", "a", "b", "c")
            _ = try store.execute((0..<TreeJob.threadFrom).map { .createNode(path: "/n\($0)", data: "d", kind: .persistent, sequential: false, ttl: 0, owner: 0) })
        }
        try store.set("big", Bytes([UInt8](repeating: 0x62, count: 600_000)))
        _ = try store.execute([.inDatabase(3, .set("three", "3", condition: .always, expiry: .clear, returnOld: false))])
        _ = try store.hset("hash", [("f", "v")])
        try store.create("/a", data: "x")
        try store.create("/a/b", data: "y")
        let session = try store.createSession(timeout: 10_000)
        try store.create("/a/e", kind: .ephemeral, session: session)
        let state = store.stateView()
        var content: [UInt8] = []
        let header = SnapshotFormat.Header(index: 1, time: 0, keys: state.keyCount, nodes: state.tree.count, sessions: state.tree.sessions.count)
        try SnapshotFormat.encode(state, header: header) { content.append(contentsOf: $0) }
        return (state, content)
    }

    @Test(arguments: [1, 7, 4096, 300_000], [false, true])
    func contentArrivingInStepsDecodesToTheSameState(step: Int, large: Bool) throws {
        let (state, content) = try sample(large: large)
        // (Asked from two threads when the znodes are decoded on their own.)
        let lock = Lock()
        var arrived = 0
        var asked = 0
        let decoded = try content.withUnsafeBytes { raw in
            try SnapshotFormat.decode(SnapshotContentSource(base: raw.baseAddress!, total: raw.count, available: { wanted in
                lock.withLock {
                    // Never more than asked for, never less than a step more (a producer that keeps up).
                    asked += 1
                    arrived = min(raw.count, max(arrived + step, min(wanted, arrived + 1 << 20)))
                    return arrived
                }
            }, checksum: { nil })).1
        }
        #expect(decoded == state)
        #expect(lock.withLock { asked } > 1, "the decoder asked for more bytes as it went")
    }

    /// Where the keys end is found by their lengths alone: the offset of the first znode
    /// record, past keys of every value type and database.
    @Test func theEndOfTheKeysIsFoundWithoutDecodingThem() throws {
        let (state, content) = try sample(large: true)
        var out = ContentWriter(chunkSize: 1 << 20)
        var keysOnly: [UInt8] = []
        let sink = ContentWriter.reading { keysOnly.append(contentsOf: $0) }
        let header = SnapshotFormat.Header(index: 1, time: 0, keys: state.keyCount, nodes: state.tree.count, sessions: state.tree.sessions.count)
        SnapshotFormat.encodeHeader(header, into: &out)
        for db in 0..<StoreState.databaseCount { try SnapshotFormat.encodeKeys(state.keyspace(db).entries, db: db, into: &out, sink) }
        try out.flush(force: true, sink)
        try content.withUnsafeBytes { raw in
            var reader = TxnCodec.Reader(bytes: raw)
            _ = try SnapshotFormat.readHeader(&reader, contentBytes: raw.count)
            #expect(SnapshotFormat.endOfKeys(raw, from: reader.offset) == keysOnly.count)
            #expect(raw[keysOnly.count] == SnapshotFormat.nodeTag)
            // Cut inside the keys: no answer rather than a wrong one.
            #expect(SnapshotFormat.endOfKeys(UnsafeRawBufferPointer(rebasing: raw[0..<keysOnly.count - 3]), from: reader.offset) == nil)
        }
    }

    /// With the znodes decoded on a thread of their own, damage anywhere (the keys, where they
    /// end, the znodes, the checksum) and every cut is still an error, not a crash or a hang.
    @Test func damageIsDetectedWhenTheZnodesAreDecodedOnTheirOwnThread() throws {
        let (state, content) = try sample(large: true)
        let keysEnd = try content.withUnsafeBytes { raw in
            var reader = TxnCodec.Reader(bytes: raw)
            _ = try SnapshotFormat.readHeader(&reader, contentBytes: raw.count)
            return try #require(SnapshotFormat.endOfKeys(raw, from: reader.offset))
        }
        #expect(try content.withUnsafeBytes { try SnapshotFormat.decode($0).1 } == state)
        let spread = stride(from: 0, to: content.count, by: max(1, content.count / 40))
        let offsets = Array(spread) + Array(keysEnd - 3...keysEnd + 3) + Array(content.count - 6..<content.count)
        for offset in offsets {
            var damaged = content
            damaged[offset] ^= 0x10
            #expect(throws: SnapshotFormat.DecodeError.self, "a flipped bit at \(offset)") { try damaged.withUnsafeBytes { try SnapshotFormat.decode($0) } }
            #expect(throws: SnapshotFormat.DecodeError.self, "a cut at \(offset)") { try Array(content[0..<offset]).withUnsafeBytes { try SnapshotFormat.decode($0) } }
        }
    }

    /// A record far longer than the look-ahead is parsed again a few times as it arrives, not
    /// once per look-ahead's worth of bytes (a 100 MB value was parsed ~400 times).
    @Test func aHugeRecordIsReparsedLogarithmicallyOften() throws {
        let store = try Store.open(directory: storeDirectory, options: StoreOptions(fsyncPolicy: .no, clock: ManualClock(), fileSystem: SimulatedFileSystem(), activeExpiry: false))
        try store.set("huge", Bytes([UInt8](repeating: 0x68, count: 8 << 20)))
        let state = store.stateView()
        try store.close()
        var content: [UInt8] = []
        try SnapshotFormat.encode(state, header: SnapshotFormat.Header(index: 1, time: 0, keys: 1, nodes: state.tree.count, sessions: 0)) { content.append(contentsOf: $0) }
        var asked = 0
        let decoded = try content.withUnsafeBytes { raw in
            // Exactly what is asked for: the decoder's own waits decide how often it parses.
            try SnapshotFormat.decode(SnapshotContentSource(base: raw.baseAddress!, total: raw.count, available: { wanted in
                asked += 1
                return min(raw.count, wanted)
            }, checksum: { nil })).1
        }
        #expect(decoded == state)
        #expect(asked <= 12, "asked for more bytes \(asked) times for one 8 MiB record")
    }

    @Test func contentThatStopsArrivingIsAnErrorAtTheEndOfWhatArrived() throws {
        let (_, content) = try sample()
        let limit = content.count / 3
        #expect(throws: SnapshotFormat.DecodeError.self) {
            try content.withUnsafeBytes { raw in
                try SnapshotFormat.decode(SnapshotContentSource(base: raw.baseAddress!, total: raw.count, available: { min($0, limit) }, checksum: { nil }))
            }
        }
    }

    @Test func aKeyRecordAfterTheZnodesIsRejected() throws {
        let (state, _) = try sample()
        var out = ContentWriter(chunkSize: 1 << 20)
        var content: [UInt8] = []
        let sink = ContentWriter.reading { content.append(contentsOf: $0) }
        let header = SnapshotFormat.Header(index: 1, time: 0, keys: state.keyCount, nodes: state.tree.count, sessions: state.tree.sessions.count)
        SnapshotFormat.encodeHeader(header, into: &out)
        try SnapshotFormat.encodeNodes(state.tree.nodes, into: &out, sink)
        for db in 0..<StoreState.databaseCount { try SnapshotFormat.encodeKeys(state.keyspace(db).entries, db: db, into: &out, sink) }
        SnapshotFormat.encodeSessions(state.tree.sessions, into: &out)
        out.byte(SnapshotFormat.endTag)
        let crc = out.checksumBuffered()
        withUnsafeBytes(of: crc.littleEndian) { out.raw(Array($0)) }
        try out.flush(force: true, sink)
        #expect {
            try content.withUnsafeBytes { try SnapshotFormat.decode($0) }
        } throws: { error in
            guard case .malformed(let what, _) = error as? SnapshotFormat.DecodeError else { return false }
            return what.contains("a key record after the znodes")
        }
    }
}
