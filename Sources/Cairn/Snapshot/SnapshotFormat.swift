import CairnStorage
import HashTreeCollections

/// The content of a snapshot file: the whole state at one committed index. On disk
/// (`snapshot-<index, 20 digits>.lz4`) it is one LZ4 frame of the content, then a skippable
/// frame with the content's size, which `lz4 -d` passes over:
///
/// | part          | bytes                                                                   |
/// |---------------|-------------------------------------------------------------------------|
/// | content frame | an LZ4 frame (4 MiB linked blocks, content checksum) of the content below |
/// | size frame    | magic 0x184D2A5C, length 8 (both 4 bytes little-endian), the content's size (8 bytes little-endian) |
///
/// The size lets a reader allocate the content once and decode it while it is still being
/// decompressed; a file without the size frame (written before it existed) is read whole first.
///
/// The content:
///
/// | part    | encoding                                                                     |
/// |---------|------------------------------------------------------------------------------|
/// | magic   | 8 bytes `CAIRNSNP`                                                           |
/// | version | 1 byte, currently 1                                                          |
/// | header  | varints: index, term, time (zigzag, ms), key count, znode count, session count |
/// | records | each: 1 tag byte, then its fields (below); the key records (tags 1 and 4) first, then the others; each group in any order |
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

    /// The skippable frame's magic number is `LZ4Frame.skippableMagic.lowerBound` + this.
    static let sizeFrameNibble: UInt32 = 0xC
    static let sizeFrameBytes = 16

    /// The skippable frame that ends a snapshot file, giving the content's size.
    static func sizeFrame(contentBytes: Int) -> [UInt8] {
        withUnsafeBytes(of: UInt64(contentBytes).littleEndian) { LZ4Frame.skippableFrame(nibble: sizeFrameNibble, payload: Array($0)) }
    }

    /// The content's size from the size frame that ends `file`, or nil for a file without one.
    static func contentSize(file: UnsafeRawBufferPointer) -> Int? {
        guard file.count >= sizeFrameBytes else { return nil }
        let start = file.count - sizeFrameBytes
        let magic = UInt32(littleEndian: file.loadUnaligned(fromByteOffset: start, as: UInt32.self))
        let length = UInt32(littleEndian: file.loadUnaligned(fromByteOffset: start + 4, as: UInt32.self))
        let size = UInt64(littleEndian: file.loadUnaligned(fromByteOffset: start + 8, as: UInt64.self))
        guard magic == LZ4Frame.skippableMagic.lowerBound + sizeFrameNibble, length == 8 else { return nil }
        // (A size beyond any buffer is still a size frame: one that lies, which readers reject.)
        return Int(clamping: size)
    }

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

    /// Runs a reader step, turning its error into a snapshot decode error at the same offset.
    static func wrap<T>(_ body: () throws(TxnCodec.DecodeError) -> T) throws(DecodeError) -> T {
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
