import CairnStorage
import HashTreeCollections

/// Snapshot content that may still be arriving: `total` bytes at `base`, filled from the front
/// by a producer (the LZ4 decompressor on another thread) while they are decoded.
struct SnapshotContentSource {
    let base: UnsafeRawPointer
    let total: Int
    /// Waits until at least `count` bytes (at most `total`) are there and returns how many are;
    /// fewer only when no more will come (the producer failed).
    let available: (Int) -> Int
    /// The CRC32C of the content before its last 4 bytes, when the producer computed it.
    let checksum: () -> UInt32?

    /// Content that is all there.
    init(_ content: UnsafeRawBufferPointer) {
        base = content.baseAddress ?? UnsafeRawPointer(bitPattern: 16)!
        total = content.count
        available = { [total = content.count] _ in total }
        checksum = { nil }
    }

    init(base: UnsafeRawPointer, total: Int, available: @escaping (Int) -> Int, checksum: @escaping () -> UInt32?) {
        self.base = base
        self.total = total
        self.available = available
        self.checksum = checksum
    }
}

extension SnapshotFormat {
    /// Reads only the header (for `cairn inspect` and choosing a snapshot).
    public static func decodeHeader(_ content: UnsafeRawBufferPointer) throws(DecodeError) -> Header {
        var reader = TxnCodec.Reader(bytes: content)
        return try readHeader(&reader, contentBytes: content.count)
    }

    /// The header; record counts are bounded by `contentBytes` (each record takes at least two
    /// bytes: a count above that is a lie, not an allocation).
    static func readHeader(_ reader: inout TxnCodec.Reader, contentBytes: Int) throws(DecodeError) -> Header {
        guard reader.bytes.count >= magic.count + 1, magic.indices.allSatisfy({ reader.bytes[$0] == magic[$0] }) else { throw .notASnapshot }
        reader.offset = magic.count
        let format = reader.bytes[reader.offset]
        reader.offset += 1
        guard format == version else { throw .unsupportedVersion(format) }
        return try wrap { () throws(TxnCodec.DecodeError) -> Header in
            let index = try reader.unsigned()
            let term = try reader.unsigned()
            let time = try reader.signed()
            let limit = UInt64(contentBytes / 2)
            let keys = try reader.unsigned(), nodes = try reader.unsigned(), sessions = try reader.unsigned()
            guard keys <= limit, nodes <= limit, sessions <= limit else { throw .invalidValue("record count", offset: reader.offset) }
            return Header(index: index, term: term, time: time, keys: Int(keys), nodes: Int(nodes), sessions: Int(sessions))
        }
    }

    /// Decodes and verifies a whole snapshot's content into the state it holds.
    public static func decode(_ content: UnsafeRawBufferPointer) throws(DecodeError) -> (Header, StoreState) {
        try decode(SnapshotContentSource(content))
    }

    /// One record, parsed (nothing applied yet: a record cut off by the end of the bytes that
    /// have arrived is parsed again once more are there).
    private enum Record {
        case key(db: Int, Bytes, Entry)
        case node(String, ZNode)
        case nodeACL(String, [ACLEntry])
        case nodeNullData(String)
        case session(Int64, Int64)
        case end
    }

    /// Bytes ahead of a record start that the decoder waits for before parsing it (most records
    /// then parse at the first try).
    private static let lookahead = 256 << 10

    /// Decodes content as it arrives (see ``SnapshotContentSource``): keys are gathered per
    /// database, and once the last key is read their tables are built on another thread. The
    /// znodes and sessions that follow the keys are decoded on a third thread meanwhile, from
    /// where it finds the keys end (see ``TreeJob``).
    static func decode(_ source: SnapshotContentSource) throws(DecodeError) -> (Header, StoreState) {
        let total = source.total
        var visible = source.available(min(total, lookahead))
        func bytes(_ count: Int) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: source.base, count: count) }
        guard total >= magic.count + 1 + 5 else {
            throw visible >= magic.count && magic.indices.allSatisfy({ bytes(visible)[$0] == magic[$0] })
                ? .malformed("truncated", offset: total) : .notASnapshot
        }
        var reader = TxnCodec.Reader(bytes: bytes(visible))
        let header: Header
        do {
            header = try readHeader(&reader, contentBytes: total)
        } catch where visible < total {
            // A header cut off by what has arrived: it is read again with everything there.
            visible = source.available(total)
            reader = TxnCodec.Reader(bytes: bytes(visible))
            header = try readHeader(&reader, contentBytes: total)
        }
        let tree = TreeJob(source, keysFrom: reader.offset, onThread: header.keys >= TreeJob.threadFrom && header.nodes + header.sessions >= TreeJob.threadFrom)
        // The other threads are done with the content before it is freed, whatever happens here.
        defer { tree.wait() }
        var state = StoreState()
        var keyTables: [KeyTableBuilder?] = Array(repeating: nil, count: StoreState.databaseCount)
        // Database 0's builder held apart: taking it out of the array per key retained it.
        // (Reserved up to a million keys: the count comes from the file; beyond, the builder grows.)
        let keys0 = KeyTableBuilder(capacity: min(header.keys, 1 << 20))
        keyTables[0] = keys0
        var building: [(db: Int, job: BuildJob)] = []
        defer { for (_, job) in building { _ = job.result() } }
        var keys = 0
        let keysEnd: Int
        records: while true {
            let start = reader.offset
            if visible < total && start + lookahead > visible {
                visible = source.available(min(total, start + lookahead))
                reader.bytes = bytes(visible)
            }
            let record = try parse(&reader, visible: &visible, source)
            // (Consumed: the key and value move into the table without a retain and a release each.)
            switch consume record {
            case .key(let db, let key, let entry):
                if db == 0 {
                    keys0.append(key, entry, origin: start)
                } else {
                    if keyTables[db] == nil { keyTables[db] = KeyTableBuilder() }
                    keyTables[db]!.append(key, entry, origin: start)
                }
                keys += 1
            case .node, .nodeACL, .nodeNullData, .session, .end:
                keysEnd = start
                break records
            }
        }
        // The keys are all read: their tables are built on another core meanwhile.
        for db in keyTables.indices { if let builder = keyTables[db] { building.append((db, BuildJob(builder))) } }
        keyTables = []
        let section = try tree.section(from: keysEnd)
        let checksummed = section.end
        if visible < total { visible = source.available(total) }
        guard visible == total else { throw .malformed("truncated", offset: visible) }
        let content = bytes(total)
        guard total - checksummed >= 4 else { throw .malformed("truncated checksum", offset: checksummed) }
        let stored = UInt32(littleEndian: content.loadUnaligned(fromByteOffset: checksummed, as: UInt32.self))
        guard total == checksummed + 4 else { throw .malformed("unexpected bytes after the checksum", offset: checksummed + 4) }
        let computed = source.checksum() ?? CRC32C.checksum(UnsafeRawBufferPointer(rebasing: content[0..<checksummed]))
        guard stored == computed else { throw .checksumMismatch(stored: stored, computed: computed) }
        guard keys == header.keys else { throw .countMismatch("keys", header: header.keys, found: keys) }
        guard section.nodeCount == header.nodes else { throw .countMismatch("znodes", header: header.nodes, found: section.nodeCount) }
        guard section.sessionCount == header.sessions else { throw .countMismatch("sessions", header: header.sessions, found: section.sessionCount) }
        if let inconsistency = section.inconsistency { throw inconsistency }
        state.tree.nodes = section.nodes
        state.tree.sessions = section.sessions

        for (db, job) in building {
            switch job.result() {
            case .success(let table):
                var keyspace = Keyspace()
                keyspace.entries = table
                if db == 0 { state.keyspace = keyspace } else { state.databases[db] = keyspace }
            case .failure(let error):
                throw .malformed("key \"\(error.key)\" of database \(db) appears twice (first at content byte \(error.firstOrigin))", offset: error.secondOrigin)
            }
        }
        return (header, state)
    }

    /// The znodes and sessions of a snapshot (every record after the keys, up to the end
    /// record), with what is derived from them: each parent's children and each session's
    /// ephemerals.
    struct TreeSection {
        var nodes = TreeDictionary<String, ZNode>()
        var sessions = TreeDictionary<Int64, Session>()
        var nodeCount = 0, sessionCount = 0
        /// Where the end record ends (the content's checksum follows).
        var end = 0
        /// Records that parse but do not fit together (a znode without its parent, ...): reported
        /// only once the checksum and counts are found right, as a damaged file explains them.
        var inconsistency: DecodeError?
    }

    /// Decodes the records from `start` (the first that is not a key) to the end record.
    static func decodeTree(_ source: SnapshotContentSource, from start: Int) throws(DecodeError) -> TreeSection {
        var visible = source.available(source.total)
        var reader = TxnCodec.Reader(bytes: UnsafeRawBufferPointer(start: source.base, count: visible))
        reader.offset = start
        var section = TreeSection()
        var nodeTable = TreeDictionary<String, ZNode>()
        var sessionTable = TreeDictionary<Int64, Session>()
        var aclTable: [String: (acl: [ACLEntry], offset: Int)] = [:]
        var nullData: [String: Int] = [:]
        // What is derived (each parent's children, each session's ephemerals) is gathered as the
        // znodes are read, while each is at hand: a second walk of the node table waits for a
        // cache miss per znode.
        var childrenOf: [String: [String]] = [:]
        var ephemeralsOf: [Int64: [String]] = [:]
        records: while true {
            let start = reader.offset
            let record = try parse(&reader, visible: &visible, source)
            switch consume record {
            case .key:
                throw .malformed("a key record after the znodes and sessions", offset: start)
            case .node(let path, let node):
                guard path == "/" || (try? ZPath.validate(path)) != nil else { throw .malformed("invalid znode path \"\(path)\"", offset: start) }
                if path != "/" { childrenOf[ZPath.parent(path), default: []].append(ZPath.name(path)) }
                if node.kind == .ephemeral { ephemeralsOf[node.stat.ephemeralOwner, default: []].append(path) }
                guard nodeTable.updateValue(node, forKey: path) == nil else { throw .malformed("znode \(path) appears twice", offset: start) }
                section.nodeCount += 1
            case .nodeACL(let path, let acl):
                guard !acl.isEmpty, aclTable.updateValue((acl, start), forKey: path) == nil else { throw .malformed("ACL of znode \(path) is empty or appears twice", offset: start) }
            case .nodeNullData(let path):
                guard nullData.updateValue(start, forKey: path) == nil else { throw .malformed("null data of znode \(path) appears twice", offset: start) }
            case .session(let id, let timeout):
                guard sessionTable.updateValue(Session(timeout: timeout), forKey: id) == nil else { throw .malformed("session \(id) appears twice", offset: start) }
                section.sessionCount += 1
            case .end:
                break records
            }
        }
        section.end = reader.offset
        let end = section.end
        func inconsistent(_ error: DecodeError) -> TreeSection {
            section.inconsistency = error
            return section
        }
        // What is derived: children, numChildren, and each session's ephemerals, set once per
        // parent and session.
        guard nodeTable.index(forKey: "/") != nil else { return inconsistent(.malformed("the root znode is missing", offset: end)) }
        for (parent, names) in childrenOf where nodeTable.index(forKey: parent) == nil {
            return inconsistent(.malformed("znode \(parent == "/" ? "" : parent)/\(names[0]) has no parent \(parent)", offset: end))
        }
        for (owner, paths) in ephemeralsOf where sessionTable.index(forKey: owner) == nil {
            return inconsistent(.malformed("ephemeral znode \(paths[0]) belongs to session \(owner), which is not open", offset: end))
        }
        func adopt(_ parent: inout ZNode, _ names: [String]) {
            parent.children = TreeSet(names)
            parent.stat.numChildren = Int32(parent.children.count)  // (not stored: derived here)
        }
        for (parent, names) in childrenOf { adopt(&nodeTable[parent]!, names) }
        for (owner, paths) in ephemeralsOf {
            sessionTable[owner]!.ephemerals = TreeSet(paths)
        }
        for (path, entry) in aclTable {
            guard nodeTable[path] != nil else { return inconsistent(.malformed("ACL for znode \(path), which is not in the snapshot", offset: entry.offset)) }
            nodeTable[path]!.acl = entry.acl
        }
        for (path, offset) in nullData {
            guard let node = nodeTable[path], node.data.isEmpty else {
                return inconsistent(.malformed("null data for znode \(path), which is not in the snapshot or has data", offset: offset))
            }
            nodeTable[path]!.dataIsNull = true
        }
        section.nodes = nodeTable
        section.sessions = sessionTable
        return section
    }

    /// Where the key records from `offset` on end (the offset of the first record that is not a
    /// key), reading only their lengths; nil when they do not parse. Mirrors the key case of
    /// ``record(_:start:)``: a wrong answer only wastes ``TreeJob``'s work, as the decoder
    /// checks it against where its own parse of the keys ended.
    static func endOfKeys(_ content: UnsafeRawBufferPointer, from offset: Int) -> Int? {
        var reader = TxnCodec.Reader(bytes: content)
        reader.offset = offset
        do throws(TxnCodec.DecodeError) {
            while true {
                let start = reader.offset
                let tag = try reader.byte()
                guard tag == keyTag || tag == databaseKeyTag else { return start }
                if tag == databaseKeyTag { _ = try reader.unsigned() }
                try reader.skipData()      // the key
                _ = try reader.unsigned()  // expiry
                _ = try reader.unsigned()  // version
                switch try reader.byte() {
                case 0: try reader.skipData()
                case 1: for _ in 0..<(try reader.count(limit: Int.max)) { try reader.skipData() }
                case 2: for _ in 0..<(try reader.count(limit: Int.max)) { try reader.skipData(); try reader.skipData() }
                default: return nil
                }
            }
        } catch {
            return nil
        }
    }

    /// Parses the record at the reader's offset; a record cut off by the end of the bytes there
    /// (or that looks wrong there) is parsed again once more bytes are there, until none come.
    private static func parse(
        _ reader: inout TxnCodec.Reader, visible: inout Int, _ source: SnapshotContentSource
    ) throws(DecodeError) -> Record {
        let start = reader.offset
        while true {
            do {
                return try record(&reader, start: start)
            } catch {
                // The wait grows with the record, so a record of n bytes is parsed O(log n) times.
                let wanted = visible + max(lookahead, visible - start)
                let more = visible < source.total ? source.available(min(source.total, wanted)) : visible
                guard more > visible else { throw error }
                visible = more
                reader.bytes = UnsafeRawBufferPointer(start: source.base, count: visible)
                reader.offset = start
            }
        }
    }

    /// Parses the record at `start` (its tag included).
    private static func record(_ reader: inout TxnCodec.Reader, start: Int) throws(DecodeError) -> Record {
        let tag = try wrap { () throws(TxnCodec.DecodeError) -> UInt8 in try reader.byte() }
        switch tag {
        case endTag:
            return .end
        case keyTag, databaseKeyTag:
            var db = 0
            if tag == databaseKeyTag {
                let number = try wrap { () throws(TxnCodec.DecodeError) -> UInt64 in try reader.unsigned() }
                guard number >= 1 && number < UInt64(StoreState.databaseCount) else { throw .malformed("invalid database \(number)", offset: start) }
                db = Int(number)
            }
            return try wrap { () throws(TxnCodec.DecodeError) -> Record in
                let key = try reader.data()
                let expiresAt = try reader.signed()
                let version = try reader.unsigned()
                let typeOffset = reader.offset
                let value: Value
                switch try reader.byte() {
                case 0: value = .string(try reader.data())
                case 1: value = .list(PersistentList(try reader.list()))
                case 2:
                    let count = try reader.count(limit: Int.max)
                    var hash = TreeDictionary<Bytes, Bytes>()
                    for _ in 0..<count { hash[try reader.data()] = try reader.data() }
                    guard hash.count == count else { throw .invalidValue("hash with a repeated field", offset: typeOffset) }
                    value = .hash(hash)
                default: throw .invalidValue("value type", offset: typeOffset)
                }
                return .key(db: db, key, Entry(value: value, expiresAt: expiresAt, version: version))
            }
        case nodeTag:
            return try wrap { () throws(TxnCodec.DecodeError) -> Record in
                let path = try reader.string()
                let data = try reader.data()
                let kind = try reader.raw(NodeKind.self, "node kind")
                let ttl = try reader.signed()
                var stat = Stat()
                stat.czxid = try reader.signed()
                stat.mzxid = try reader.signed()
                stat.ctime = try reader.signed()
                stat.mtime = try reader.signed()
                stat.version = try reader.version()
                stat.cversion = try reader.version()
                stat.aversion = try reader.version()
                stat.ephemeralOwner = try reader.signed()
                stat.pzxid = try reader.signed()
                stat.dataLength = Int32(clamping: data.count)
                return .node(path, ZNode(data: data, stat: stat, kind: kind, ttl: ttl))
            }
        case nodeACLTag:
            return try wrap { () throws(TxnCodec.DecodeError) -> Record in .nodeACL(try reader.string(), try reader.acl()) }
        case nodeNullDataTag:
            return try wrap { () throws(TxnCodec.DecodeError) -> Record in .nodeNullData(try reader.string()) }
        case sessionTag:
            return try wrap { () throws(TxnCodec.DecodeError) -> Record in .session(try reader.signed(), try reader.signed()) }
        default:
            throw .malformed("unknown record tag \(tag)", offset: start)
        }
    }
}

/// A key table built on a thread of its own (unless small); `result()` waits for it.
private final class BuildJob: @unchecked Sendable {
    private let finished = Latch()
    private var outcome: Result<KeyTable, KeyTableBuilder.DuplicateKey>?

    /// Keys below this are built at once on the calling thread (a thread costs more).
    static let threadFrom = 4096
    /// From this many keys the build is split between two threads.
    static let twoThreadsFrom = 1 << 16

    init(_ builder: KeyTableBuilder) {
        // Once the keys are read, the decoding thread only waits: a large build takes both cores.
        let threads = builder.count >= Self.twoThreadsFrom ? 2 : 1
        let build: @Sendable () -> Void = { [self] in
            do throws(KeyTableBuilder.DuplicateKey) { outcome = .success(try builder.build(threads: threads)) } catch { outcome = .failure(error) }
            finished.raise()
        }
        if builder.count < Self.threadFrom { build() } else { startThread(name: "cairn-snapshot-build", build) }
    }

    func result() -> Result<KeyTable, KeyTableBuilder.DuplicateKey> {
        finished.wait()
        return outcome!
    }
}

/// The znodes and sessions of a snapshot, decoded on a thread of their own while the keys before
/// them are decoded on the calling thread. The thread waits for the whole content, finds where
/// the keys end by their lengths alone (``SnapshotFormat/endOfKeys(_:from:)``), and decodes from
/// there. The znodes had taken a third of the calling thread's time after the keys (100k in
/// 70 ms) while the other core was idle once decompression ended; with the key table built on
/// two threads, a fresh load of 1M keys and 100k znodes went 0.214 -> 0.165-0.185 s.
final class TreeJob: @unchecked Sendable {
    private let finished = Latch()
    private nonisolated(unsafe) let source: SnapshotContentSource
    /// Where the thread found the keys end, and what it decoded from there.
    private var guess: (start: Int, outcome: Result<SnapshotFormat.TreeSection, SnapshotFormat.DecodeError>)?

    /// Below this many keys, or znodes and sessions, the section is decoded after the keys on
    /// the calling thread (a thread costs more).
    static let threadFrom = 4096

    init(_ source: SnapshotContentSource, keysFrom: Int, onThread: Bool) {
        self.source = source
        guard onThread else { finished.raise(); return }
        nonisolated(unsafe) let source = source
        startThread(name: "cairn-snapshot-tree") { [self] in
            defer { finished.raise() }
            // (A source may hand out less than asked while more still comes: asked again until none does.)
            var visible = source.available(source.total)
            while visible < source.total {
                let more = source.available(source.total)
                if more <= visible { break }
                visible = more
            }
            guard let start = SnapshotFormat.endOfKeys(UnsafeRawBufferPointer(start: source.base, count: visible), from: keysFrom) else { return }
            guess = (start, Result { () throws(SnapshotFormat.DecodeError) in try SnapshotFormat.decodeTree(source, from: start) })
        }
    }

    /// Waits for the thread (if any) to finish.
    func wait() { finished.wait() }

    /// The section that starts at `start` (where the keys ended): the thread's when it started
    /// there, else decoded now.
    func section(from start: Int) throws(SnapshotFormat.DecodeError) -> SnapshotFormat.TreeSection {
        finished.wait()
        if let guess, guess.start == start { return try guess.outcome.get() }
        return try SnapshotFormat.decodeTree(source, from: start)
    }
}
