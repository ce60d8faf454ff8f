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
    private static func readHeader(_ reader: inout TxnCodec.Reader, contentBytes: Int) throws(DecodeError) -> Header {
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
    /// database, and once the last key is read their tables are built on another thread while
    /// the znodes are decoded here.
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
        var state = StoreState()
        var keyTables: [KeyTableBuilder?] = Array(repeating: nil, count: StoreState.databaseCount)
        // Database 0's builder held apart: taking it out of the array per key retained it.
        // (Reserved up to a million keys: the count comes from the file; beyond, the builder grows.)
        let keys0 = KeyTableBuilder(capacity: min(header.keys, 1 << 20))
        keyTables[0] = keys0
        var building: [(db: Int, job: BuildJob)] = []
        defer { for (_, job) in building { _ = job.result() } }
        var keys = 0, nodes = 0, sessions = 0
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
            if visible < total && start + lookahead > visible {
                visible = source.available(min(total, start + lookahead))
                reader.bytes = bytes(visible)
            }
            let record = try parse(&reader, visible: &visible, source)
            var isKey = false
            if case .key = record { isKey = true }
            if !isKey && building.isEmpty {
                // The keys are all read: their tables are built on another core meanwhile.
                for db in keyTables.indices { if let builder = keyTables[db] { building.append((db, BuildJob(builder))) } }
                keyTables = []
            }
            // (Consumed: the key and value move into the table without a retain and a release each.)
            switch consume record {
            case .key(let db, let key, let entry):
                guard building.isEmpty else { throw .malformed("a key record after the znodes and sessions", offset: start) }
                if db == 0 {
                    keys0.append(key, entry, origin: start)
                } else {
                    if keyTables[db] == nil { keyTables[db] = KeyTableBuilder() }
                    keyTables[db]!.append(key, entry, origin: start)
                }
                keys += 1
            case .node(let path, let node):
                guard path == "/" || (try? ZPath.validate(path)) != nil else { throw .malformed("invalid znode path \"\(path)\"", offset: start) }
                if path != "/" { childrenOf[ZPath.parent(path), default: []].append(ZPath.name(path)) }
                if node.kind == .ephemeral { ephemeralsOf[node.stat.ephemeralOwner, default: []].append(path) }
                guard nodeTable.updateValue(node, forKey: path) == nil else { throw .malformed("znode \(path) appears twice", offset: start) }
                nodes += 1
            case .nodeACL(let path, let acl):
                guard !acl.isEmpty, aclTable.updateValue((acl, start), forKey: path) == nil else { throw .malformed("ACL of znode \(path) is empty or appears twice", offset: start) }
            case .nodeNullData(let path):
                guard nullData.updateValue(start, forKey: path) == nil else { throw .malformed("null data of znode \(path) appears twice", offset: start) }
            case .session(let id, let timeout):
                guard sessionTable.updateValue(Session(timeout: timeout), forKey: id) == nil else { throw .malformed("session \(id) appears twice", offset: start) }
                sessions += 1
            case .end:
                break records
            }
        }
        let checksummed = reader.offset
        if visible < total { visible = source.available(total) }
        guard visible == total else { throw .malformed("truncated", offset: visible) }
        let content = bytes(total)
        guard total - checksummed >= 4 else { throw .malformed("truncated checksum", offset: checksummed) }
        let stored = UInt32(littleEndian: content.loadUnaligned(fromByteOffset: checksummed, as: UInt32.self))
        guard total == checksummed + 4 else { throw .malformed("unexpected bytes after the checksum", offset: checksummed + 4) }
        let computed = source.checksum() ?? CRC32C.checksum(UnsafeRawBufferPointer(rebasing: content[0..<checksummed]))
        guard stored == computed else { throw .checksumMismatch(stored: stored, computed: computed) }
        guard keys == header.keys else { throw .countMismatch("keys", header: header.keys, found: keys) }
        guard nodes == header.nodes else { throw .countMismatch("znodes", header: header.nodes, found: nodes) }
        guard sessions == header.sessions else { throw .countMismatch("sessions", header: header.sessions, found: sessions) }

        // What is derived: children, numChildren, and each session's ephemerals, set once per
        // parent and session.
        guard nodeTable.index(forKey: "/") != nil else { throw .malformed("the root znode is missing", offset: checksummed) }
        for (parent, names) in childrenOf where nodeTable.index(forKey: parent) == nil {
            throw .malformed("znode \(parent == "/" ? "" : parent)/\(names[0]) has no parent \(parent)", offset: checksummed)
        }
        for (owner, paths) in ephemeralsOf where sessionTable.index(forKey: owner) == nil {
            throw .malformed("ephemeral znode \(paths[0]) belongs to session \(owner), which is not open", offset: checksummed)
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
            guard nodeTable[path] != nil else { throw .malformed("ACL for znode \(path), which is not in the snapshot", offset: entry.offset) }
            nodeTable[path]!.acl = entry.acl
        }
        for (path, offset) in nullData {
            guard let node = nodeTable[path], node.data.isEmpty else { throw .malformed("null data for znode \(path), which is not in the snapshot or has data", offset: offset) }
            nodeTable[path]!.dataIsNull = true
        }
        state.tree.nodes = nodeTable
        state.tree.sessions = sessionTable

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

    init(_ builder: KeyTableBuilder) {
        let build: @Sendable () -> Void = { [self] in
            do throws(KeyTableBuilder.DuplicateKey) { outcome = .success(try builder.build()) } catch { outcome = .failure(error) }
            finished.raise()
        }
        if builder.count < Self.threadFrom { build() } else { startThread(name: "cairn-snapshot-build", build) }
    }

    func result() -> Result<KeyTable, KeyTableBuilder.DuplicateKey> {
        finished.wait()
        return outcome!
    }
}
