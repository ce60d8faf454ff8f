import CairnStorage
import HashTreeCollections

/// The content of a snapshot file: the whole state at one committed index. On disk it is the
/// content of one LZ4 frame (`snapshot-<index, 20 digits>.lz4`; `lz4 -d` decompresses it).
///
/// | part    | encoding                                                                     |
/// |---------|------------------------------------------------------------------------------|
/// | magic   | 8 bytes `CAIRNSNP`                                                           |
/// | version | 1 byte, currently 1                                                          |
/// | header  | varints: index, term, time (zigzag, ms), key count, znode count, session count |
/// | records | each: 1 tag byte, then its fields (below), in any order                      |
/// | end     | tag 0, then the CRC32C of every content byte before it (including the tag), 4 bytes little-endian |
///
/// Records (fields encoded as in ``TxnCodec``: varints, zigzag for signed, length-prefixed bytes):
///
/// | tag | record  | fields                                                                  |
/// |-----|---------|-------------------------------------------------------------------------|
/// | 1   | key     | key, expiresAt, version (txn index), type (0 string, 1 list, 2 hash), then the string; or a count and the elements; or a count and field, value pairs |
/// | 2   | znode   | path, data, kind, ttl, czxid, mzxid, ctime, mtime, version, cversion, aversion, ephemeralOwner, pzxid |
/// | 3   | session | id, timeout                                                             |
/// | 4   | key of database 1-15 | database, then the fields of a key record           |
/// | 5   | znode ACL | path, entry count, then each entry's perms, scheme, id (only for a znode whose ACL is not `world:anyone` with all permissions) |
/// | 6   | znode null data | path (only for a znode whose data is ZooKeeper's null: empty, read as null) |
///
/// What can be derived is not stored: a znode's children (from the paths), `dataLength`,
/// `numChildren`, and each session's ephemerals (from the owners). Timers are not stored either:
/// key deadlines, TTL znodes and sessions are in the state, and the wheel is rebuilt from it.
/// Decoding checks the magic, version, every length, the counts against the header, that every
/// znode's parent exists and every ephemeral's session is open, and the checksum.
public enum SnapshotFormat {
    /// The first 8 bytes of every snapshot's content.
    public static let magic: [UInt8] = Array("CAIRNSNP".utf8)
    /// The content format this build writes and reads.
    public static let version: UInt8 = 1

    /// What the header says about a snapshot.
    public struct Header: Sendable, Equatable {
        /// The index of the last txn the snapshot includes.
        public var index: UInt64
        /// The Raft term of that txn (0 without replication).
        public var term: UInt64
        /// When it was taken (ms since the Unix epoch), for people; recovery does not use it.
        public var time: Int64
        /// Keys in every database.
        public var keys: Int
        /// Znodes, the root included.
        public var nodes: Int
        /// Open sessions.
        public var sessions: Int

        public init(index: UInt64, term: UInt64 = 0, time: Int64, keys: Int, nodes: Int, sessions: Int) {
            self.index = index
            self.term = term
            self.time = time
            self.keys = keys
            self.nodes = nodes
            self.sessions = sessions
        }
    }

    /// Why content is not a valid snapshot; offsets are into the decompressed content.
    public enum DecodeError: Error, Sendable, Equatable, CustomStringConvertible {
        case notASnapshot
        case unsupportedVersion(UInt8)
        case malformed(String, offset: Int)
        case countMismatch(String, header: Int, found: Int)
        case checksumMismatch(stored: UInt32, computed: UInt32)

        public var description: String {
            switch self {
            case .notASnapshot: return "not a Cairn snapshot (bad magic)"
            case .unsupportedVersion(let v): return "snapshot format version \(v) is not supported (this build reads \(SnapshotFormat.version))"
            case .malformed(let what, let offset): return "\(what) at content byte \(offset)"
            case .countMismatch(let kind, let header, let found): return "the header promises \(header) \(kind) but the snapshot holds \(found)"
            case .checksumMismatch(let stored, let computed):
                return "content checksum mismatch: stored \(String(stored, radix: 16)), computed \(String(computed, radix: 16))"
            }
        }
    }

    static let keyTag: UInt8 = 1
    static let nodeTag: UInt8 = 2
    static let sessionTag: UInt8 = 3
    static let databaseKeyTag: UInt8 = 4
    static let nodeACLTag: UInt8 = 5
    static let nodeNullDataTag: UInt8 = 6
    static let endTag: UInt8 = 0

    /// `snapshot-<index, 20 digits>.lz4`.
    public static func fileName(index: UInt64) -> String {
        let digits = String(index)
        return "snapshot-" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".lz4"
    }

    /// The index a snapshot file name carries, or nil for any other name.
    public static func index(fromFileName name: String) -> UInt64? {
        guard name.hasPrefix("snapshot-"), name.hasSuffix(".lz4"), name.count == 9 + 20 + 4 else { return nil }
        return UInt64(name.dropFirst(9).dropLast(4))
    }

    // MARK: Encoding

    /// Serialises `state` and hands the content to `sink` in chunks of about `chunkSize` bytes
    /// (each valid only during the call).
    public static func encode(
        _ state: StoreState, header: Header, chunkSize: Int = 1 << 20,
        sink: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        precondition(header.keys == state.keyCount && header.nodes == state.tree.count && header.sessions == state.tree.sessions.count,
                     "the header's counts must be the state's")
        var out = ContentWriter(chunkSize: chunkSize)
        try withoutActuallyEscaping(sink) { sink in try encodeContent(state, header: header, into: &out, ContentWriter.reading(sink)) }
    }

    /// The whole content, handed to `sink` chunk by chunk: the header, every record, the end
    /// tag and the checksum.
    static func encodeContent(_ state: StoreState, header: Header, into out: inout ContentWriter, _ sink: ContentWriter.Sink) throws {
        encodeHeader(header, into: &out)
        for db in 0..<StoreState.databaseCount { try encodeKeys(state.keyspace(db).entries, db: db, into: &out, sink) }
        try encodeNodes(state.tree.nodes, into: &out, sink)
        encodeSessions(state.tree.sessions, into: &out)
        out.byte(endTag)
        let crc = out.checksumBuffered()
        withUnsafeBytes(of: crc.littleEndian) { out.raw(Array($0)) }
        try out.flush(force: true, sink)
    }

    static func encodeHeader(_ header: Header, into out: inout ContentWriter) {
        out.raw(magic)
        out.byte(version)
        out.unsigned(header.index)
        out.unsigned(header.term)
        out.signed(header.time)
        out.unsigned(UInt64(header.keys))
        out.unsigned(UInt64(header.nodes))
        out.unsigned(UInt64(header.sessions))
    }

    static func encodeKeys(
        _ entries: KeyTable, db: Int, into out: inout ContentWriter, _ sink: ContentWriter.Sink
    ) rethrows {
        // In place, with the objects ahead prefetched (see `KeyTable.forEachItem`).
        try entries.forEachItem { item in
            if db == 0 {
                out.byte(keyTag)
            } else {
                out.byte(databaseKeyTag)
                out.unsigned(UInt64(db))
            }
            out.bytes(item.pointee.key)
            out.signed(item.pointee.entry.expiresAt)
            out.unsigned(item.pointee.entry.version)
            switch item.pointee.entry.value {
            case .string(let bytes):
                out.byte(0)
                out.bytes(bytes)
            case .list(let list):
                out.byte(1)
                out.unsigned(UInt64(list.count))
                for element in list { out.bytes(element) }
            case .hash(let hash):
                out.byte(2)
                out.unsigned(UInt64(hash.count))
                for (field, value) in hash {
                    out.bytes(field)
                    out.bytes(value)
                }
            }
            try out.flush(sink)
        }
    }

    static func encodeNodes(
        _ nodes: TreeDictionary<String, ZNode>, into out: inout ContentWriter, _ sink: ContentWriter.Sink
    ) rethrows {
        for (path, node) in nodes {
            out.byte(nodeTag)
            out.string(path)
            out.bytes(node.data)
            out.byte(node.kind.rawValue)
            out.signed(node.ttl)
            let stat = node.stat
            out.signed(stat.czxid)
            out.signed(stat.mzxid)
            out.signed(stat.ctime)
            out.signed(stat.mtime)
            out.signed(Int64(stat.version))
            out.signed(Int64(stat.cversion))
            out.signed(Int64(stat.aversion))
            out.signed(stat.ephemeralOwner)
            out.signed(stat.pzxid)
            if node.dataIsNull {
                out.byte(nodeNullDataTag)
                out.string(path)
            }
            if !node.acl.isEmpty {
                out.byte(nodeACLTag)
                out.string(path)
                out.unsigned(UInt64(node.acl.count))
                for entry in node.acl {
                    out.signed(Int64(entry.perms))
                    out.string(entry.scheme)
                    out.string(entry.id)
                }
            }
            try out.flush(sink)
        }
    }

    static func encodeSessions(_ sessions: TreeDictionary<Int64, Session>, into out: inout ContentWriter) {
        for (id, session) in sessions {
            out.byte(sessionTag)
            out.signed(id)
            out.signed(session.timeout)
        }
    }

    // MARK: Decoding

    /// Reads only the header (for `cairn inspect` and choosing a snapshot).
    public static func decodeHeader(_ content: UnsafeRawBufferPointer) throws(DecodeError) -> Header {
        var reader = TxnCodec.Reader(bytes: content)
        return try readHeader(&reader)
    }

    private static func readHeader(_ reader: inout TxnCodec.Reader) throws(DecodeError) -> Header {
        guard reader.bytes.count >= magic.count + 1, magic.indices.allSatisfy({ reader.bytes[$0] == magic[$0] }) else { throw .notASnapshot }
        reader.offset = magic.count
        let format = reader.bytes[reader.offset]
        reader.offset += 1
        guard format == version else { throw .unsupportedVersion(format) }
        return try wrap { () throws(TxnCodec.DecodeError) -> Header in
            let index = try reader.unsigned()
            let term = try reader.unsigned()
            let time = try reader.signed()
            // Each record takes at least two bytes: a count above that is a lie, not an allocation.
            let limit = UInt64(reader.bytes.count / 2)
            let keys = try reader.unsigned(), nodes = try reader.unsigned(), sessions = try reader.unsigned()
            guard keys <= limit, nodes <= limit, sessions <= limit else { throw .invalidValue("record count", offset: reader.offset) }
            return Header(index: index, term: term, time: time, keys: Int(keys), nodes: Int(nodes), sessions: Int(sessions))
        }
    }

    /// Decodes and verifies a whole snapshot's content into the state it holds.
    public static func decode(_ content: UnsafeRawBufferPointer) throws(DecodeError) -> (Header, StoreState) {
        guard content.count >= magic.count + 1 + 5 else {
            throw content.count >= magic.count && magic.indices.allSatisfy({ content[$0] == magic[$0] })
                ? .malformed("truncated", offset: content.count) : .notASnapshot
        }
        var reader = TxnCodec.Reader(bytes: content)
        let header = try readHeader(&reader)
        var state = StoreState()
        // Keys are gathered per database and each table is built at once at the end.
        var keyTables: [KeyTableBuilder?] = []
        keyTables.reserveCapacity(StoreState.databaseCount)
        keyTables.append(KeyTableBuilder(capacity: min(header.keys, 1 << 24)))
        for _ in 1..<StoreState.databaseCount { keyTables.append(nil) }
        var keys = 0, nodes = 0, sessions = 0
        var nodeTable = TreeDictionary<String, ZNode>()
        var sessionTable = TreeDictionary<Int64, Session>()
        var aclTable: [String: (acl: [ACLEntry], offset: Int)] = [:]
        var nullData: [String: Int] = [:]
        while true {
            let start = reader.offset
            let tag = try wrap { () throws(TxnCodec.DecodeError) -> UInt8 in try reader.byte() }
            if tag == endTag { break }
            switch tag {
            case keyTag, databaseKeyTag:
                var db = 0
                if tag == databaseKeyTag {
                    let number = try wrap { () throws(TxnCodec.DecodeError) -> UInt64 in try reader.unsigned() }
                    guard number >= 1 && number < UInt64(StoreState.databaseCount) else { throw .malformed("invalid database \(number)", offset: start) }
                    db = Int(number)
                }
                let (key, entry) = try wrap { () throws(TxnCodec.DecodeError) -> (Bytes, Entry) in
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
                    return (key, Entry(value: value, expiresAt: expiresAt, version: version))
                }
                if keyTables[db] == nil { keyTables[db] = KeyTableBuilder() }
                keyTables[db]!.append(key, entry, origin: start)
                keys += 1
            case nodeTag:
                let (path, node) = try wrap { () throws(TxnCodec.DecodeError) -> (String, ZNode) in
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
                    return (path, ZNode(data: data, stat: stat, kind: kind, ttl: ttl))
                }
                guard path == "/" || (try? ZPath.validate(path)) != nil else { throw .malformed("invalid znode path \"\(path)\"", offset: start) }
                guard nodeTable.updateValue(node, forKey: path) == nil else { throw .malformed("znode \(path) appears twice", offset: start) }
                nodes += 1
            case nodeACLTag:
                let (path, acl) = try wrap { () throws(TxnCodec.DecodeError) -> (String, [ACLEntry]) in (try reader.string(), try reader.acl()) }
                guard !acl.isEmpty, aclTable.updateValue((acl, start), forKey: path) == nil else { throw .malformed("ACL of znode \(path) is empty or appears twice", offset: start) }
            case nodeNullDataTag:
                let path = try wrap { () throws(TxnCodec.DecodeError) -> String in try reader.string() }
                guard nullData.updateValue(start, forKey: path) == nil else { throw .malformed("null data of znode \(path) appears twice", offset: start) }
            case sessionTag:
                let (id, timeout) = try wrap { () throws(TxnCodec.DecodeError) -> (Int64, Int64) in (try reader.signed(), try reader.signed()) }
                guard sessionTable.updateValue(Session(timeout: timeout), forKey: id) == nil else { throw .malformed("session \(id) appears twice", offset: start) }
                sessions += 1
            default:
                throw .malformed("unknown record tag \(tag)", offset: start)
            }
        }
        let checksummed = reader.offset
        guard content.count - checksummed >= 4 else { throw .malformed("truncated checksum", offset: checksummed) }
        let stored = UInt32(littleEndian: content.loadUnaligned(fromByteOffset: checksummed, as: UInt32.self))
        guard content.count == checksummed + 4 else { throw .malformed("unexpected bytes after the checksum", offset: checksummed + 4) }
        let computed = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: content[0..<checksummed]))
        guard stored == computed else { throw .checksumMismatch(stored: stored, computed: computed) }
        guard keys == header.keys else { throw .countMismatch("keys", header: header.keys, found: keys) }
        guard nodes == header.nodes else { throw .countMismatch("znodes", header: header.nodes, found: nodes) }
        guard sessions == header.sessions else { throw .countMismatch("sessions", header: header.sessions, found: sessions) }

        for db in 0..<StoreState.databaseCount {
            guard let builder = keyTables[db] else { continue }
            do {
                var keyspace = Keyspace()
                keyspace.entries = try builder.build()
                if db == 0 { state.keyspace = keyspace } else { state.databases[db] = keyspace }
            } catch {
                throw .malformed("key \"\(error.key)\" of database \(db) appears twice (first at content byte \(error.firstOrigin))", offset: error.secondOrigin)
            }
        }

        // What is derived: children, numChildren, and each session's ephemerals. Gathered in a
        // first pass that only reads the node table, then set once per parent: changing the
        // table while iterating it would copy the trie's paths the iterator still holds.
        guard nodeTable.index(forKey: "/") != nil else { throw .malformed("the root znode is missing", offset: checksummed) }
        var childrenOf: [String: [String]] = [:]
        var ephemeralsOf: [Int64: [String]] = [:]
        for (path, node) in nodeTable where path != "/" {
            let parent = ZPath.parent(path)
            guard nodeTable.index(forKey: parent) != nil else { throw .malformed("znode \(path) has no parent \(parent)", offset: checksummed) }
            childrenOf[parent, default: []].append(ZPath.name(path))
            if node.kind == .ephemeral {
                guard sessionTable.index(forKey: node.stat.ephemeralOwner) != nil else {
                    throw .malformed("ephemeral znode \(path) belongs to session \(node.stat.ephemeralOwner), which is not open", offset: checksummed)
                }
                ephemeralsOf[node.stat.ephemeralOwner, default: []].append(path)
            }
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
        return (header, state)
    }

    /// Runs a reader step, turning its error into a snapshot decode error at the same offset.
    private static func wrap<T>(_ body: () throws(TxnCodec.DecodeError) -> T) throws(DecodeError) -> T {
        do { return try body() } catch {
            switch error {
            case .truncated(let offset): throw .malformed("truncated", offset: offset)
            case .malformedVarint(let offset): throw .malformed("malformed varint", offset: offset)
            case .invalidValue(let what, let offset): throw .malformed("invalid \(what)", offset: offset)
            case .unknownTag(let tag, let offset): throw .malformed("unknown tag \(tag)", offset: offset)
            case .trailingBytes(let offset): throw .malformed("unexpected bytes", offset: offset)
            case .unsupportedVersion(let v): throw .unsupportedVersion(v)
            }
        }
    }
}
