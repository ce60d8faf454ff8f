import CairnStorage

/// The binary form of a ``Txn``: the payload of a log record.
///
/// | field      | encoding                                                   |
/// |------------|------------------------------------------------------------|
/// | version    | 1 byte, currently 1                                        |
/// | time       | zigzag varint, milliseconds since the Unix epoch           |
/// | count      | varint, number of operations (at most 1 << 20)             |
/// | operations | each: 1 tag byte, then its fields in declaration order     |
///
/// Fields: byte strings as varint length + bytes; integers as zigzag varints; a `Double` as
/// 8 bytes little-endian; a flag or enum as 1 byte; a list as varint count + items; an
/// ``ExpiryChange`` as 1 byte (0 clear, 1 keep, 2 at) followed, for `at`, by the time.
/// Decoding checks every length against the bytes left and rejects unknown tags and versions
/// and overlong varints, so the encoding is canonical: bytes that decode re-encode to themselves.
public enum TxnCodec {
    public static let version: UInt8 = 1
    public static let maxOperations = 1 << 20
    /// The most entries one znode ACL may have (ZooKeeper sets none; a bound keeps decoding safe).
    public static let maxACLEntries = 1024

    public enum DecodeError: Error, Sendable, Equatable, CustomStringConvertible {
        case unsupportedVersion(UInt8)
        case truncated(offset: Int)
        case malformedVarint(offset: Int)
        case unknownTag(UInt8, offset: Int)
        case invalidValue(String, offset: Int)
        case trailingBytes(offset: Int)

        public var description: String {
            switch self {
            case .unsupportedVersion(let v): return "txn format version \(v) is not supported (this build reads \(TxnCodec.version))"
            case .truncated(let offset): return "txn truncated at byte \(offset)"
            case .malformedVarint(let offset): return "malformed varint at byte \(offset)"
            case .unknownTag(let tag, let offset): return "unknown operation tag \(tag) at byte \(offset)"
            case .invalidValue(let what, let offset): return "invalid \(what) at byte \(offset)"
            case .trailingBytes(let offset): return "unexpected bytes after the txn at byte \(offset)"
            }
        }
    }

    // MARK: Encoding

    public static func encode(_ txn: Txn, into out: inout [UInt8]) {
        putHeader(time: txn.time, operationCount: txn.operations.count, &out)
        // In place: a for-in loop would copy (retain) each operation's payload.
        txn.operations.withUnsafeBufferPointer { operations in
            for i in operations.indices { encode(operations[i], &out) }
        }
    }

    /// Encodes the txn of `operations` decided at `time`: the same bytes as
    /// `encode(Txn(time: time, operations: operations), into:)`, each operation lent from the
    /// array rather than copied (see ``Swift/Array/lendEach(_:)``).
    public static func encode(time: Int64, lending operations: inout [Operation], into out: inout [UInt8]) {
        putHeader(time: time, operationCount: operations.count, &out)
        operations.lendEach { operation in encode(operation, &out) }
    }

    /// Encodes the txn of one operation decided at `time`: the same bytes as
    /// `encode(Txn(time: time, operations: [operation]), into:)`, without making the array.
    public static func encode(time: Int64, _ operation: Operation, into out: inout [UInt8]) {
        putHeader(time: time, operationCount: 1, &out)
        encode(operation, &out)
    }

    private static func putHeader(time: Int64, operationCount: Int, _ out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        out.append(version)
        putSigned(time, &out)
        putUnsigned(UInt64(operationCount), &out)
    }

    public static func encode(_ txn: Txn) -> [UInt8] {
        var out: [UInt8] = []
        encode(txn, into: &out)
        return out
    }

    private static func encode(_ operation: Operation, _ out: inout [UInt8]) {
        switch operation {
        case .set(let key, let value, let condition, let expiry, let returnOld):
            out.append(1); putBytes(key, &out); putBytes(value, &out)
            out.append(condition.rawValue); putExpiry(expiry, &out); out.append(returnOld ? 1 : 0)
        case .setMany(let keys, let values, let onlyIfNoneExist):
            out.append(2); putList(keys, &out); putList(values, &out); out.append(onlyIfNoneExist ? 1 : 0)
        case .delete(let keys):
            out.append(3); putList(keys, &out)
        case .incrementBy(let key, let delta):
            out.append(4); putBytes(key, &out); putSigned(delta, &out)
        case .incrementByFloat(let key, let delta):
            out.append(5); putBytes(key, &out); putDouble(delta, &out)
        case .append(let key, let value):
            out.append(6); putBytes(key, &out); putBytes(value, &out)
        case .getDelete(let key):
            out.append(7); putBytes(key, &out)
        case .getExpire(let key, let expiry):
            out.append(8); putBytes(key, &out); putExpiry(expiry, &out)
        case .expire(let key, let at, let condition):
            out.append(9); putBytes(key, &out); putSigned(at, &out); out.append(condition.rawValue)
        case .persist(let key):
            out.append(10); putBytes(key, &out)
        case .rename(let source, let destination, let onlyIfAbsent):
            out.append(11); putBytes(source, &out); putBytes(destination, &out); out.append(onlyIfAbsent ? 1 : 0)
        case .flushAll:
            out.append(12)
        case .push(let key, let values, let left, let onlyIfExists):
            out.append(13); putBytes(key, &out); putList(values, &out); out.append(left ? 1 : 0); out.append(onlyIfExists ? 1 : 0)
        case .pop(let key, let count, let left):
            out.append(14); putBytes(key, &out)
            if let count { out.append(1); putSigned(count, &out) } else { out.append(0) }
            out.append(left ? 1 : 0)
        case .listRemove(let key, let count, let value):
            out.append(15); putBytes(key, &out); putSigned(count, &out); putBytes(value, &out)
        case .listTrim(let key, let start, let stop):
            out.append(16); putBytes(key, &out); putSigned(start, &out); putSigned(stop, &out)
        case .hashSet(let key, let fields, let values):
            out.append(17); putBytes(key, &out); putList(fields, &out); putList(values, &out)
        case .hashDelete(let key, let fields):
            out.append(18); putBytes(key, &out); putList(fields, &out)
        case .hashIncrementBy(let key, let field, let delta):
            out.append(19); putBytes(key, &out); putBytes(field, &out); putSigned(delta, &out)
        case .compareAndDelete(let key, let token):
            out.append(20); putBytes(key, &out); putBytes(token, &out)
        case .createNode(let path, let data, let kind, let sequential, let ttl, let owner, let acl, let nullData):
            // Tag 31 is tag 21 with an ACL after the fields: the open ACL costs nothing. Tag 33
            // is null data: tag 31's fields (no data bytes, the ACL list possibly empty).
            let null = nullData && data.isEmpty
            out.append(null ? 33 : acl.isEmpty ? 21 : 31); putString(path, &out); putBytes(data, &out); out.append(kind.rawValue)
            out.append(sequential ? 1 : 0); putSigned(ttl, &out); putSigned(owner, &out)
            if null || !acl.isEmpty { putACL(acl, &out) }
        case .setNodeACL(let path, let acl, let version):
            out.append(32); putString(path, &out); putACL(acl, &out); putSigned(Int64(version), &out)
        case .deleteNode(let path, let version):
            out.append(22); putString(path, &out); putSigned(Int64(version), &out)
        case .setNodeData(let path, let data, let version, let nullData):
            if nullData && data.isEmpty {
                out.append(34); putString(path, &out); putSigned(Int64(version), &out)  // null data
            } else {
                out.append(23); putString(path, &out); putBytes(data, &out); putSigned(Int64(version), &out)
            }
        case .checkNode(let path, let version):
            out.append(24); putString(path, &out); putSigned(Int64(version), &out)
        case .multi(let operations):
            out.append(25); putUnsigned(UInt64(operations.count), &out)
            for operation in operations { encode(operation, &out) }
        case .expireKeys(let keys):
            out.append(26); putList(keys, &out)
        case .expireNodes(let paths):
            out.append(27); putUnsigned(UInt64(paths.count), &out)
            for path in paths { putString(path, &out) }
        case .createSession(let timeout):
            out.append(28); putSigned(timeout, &out)
        case .closeSession(let session):
            out.append(29); putSigned(session, &out)
        case .inDatabase(let db, let operation):
            out.append(30); putUnsigned(UInt64(db), &out)
            encode(operation, &out)
        }
    }

    static func putACL(_ acl: [ACLEntry], _ out: inout [UInt8]) {
        putUnsigned(UInt64(acl.count), &out)
        for entry in acl {
            putSigned(Int64(entry.perms), &out); putString(entry.scheme, &out); putString(entry.id, &out)
        }
    }

    static func putString(_ string: String, _ out: inout [UInt8]) {
        putBytes(Bytes(string), &out)
    }

    @inline(__always) static func putUnsigned(_ value: UInt64, _ out: inout [UInt8]) {
        var v = value
        while v >= 0x80 { out.append(UInt8(truncatingIfNeeded: v) | 0x80); v >>= 7 }
        out.append(UInt8(v))
    }

    @inline(__always) static func putSigned(_ value: Int64, _ out: inout [UInt8]) {
        putUnsigned(UInt64(bitPattern: (value << 1) ^ (value >> 63)), &out)
    }

    @inline(__always) static func putBytes(_ bytes: Bytes, _ out: inout [UInt8]) {
        putUnsigned(UInt64(bytes.count), &out)
        bytes.storage.withUnsafeBufferPointer { out.append(contentsOf: $0) }  // borrowed: no retain
    }

    static func putList(_ list: [Bytes], _ out: inout [UInt8]) {
        putUnsigned(UInt64(list.count), &out)
        for item in list { putBytes(item, &out) }
    }

    static func putDouble(_ value: Double, _ out: inout [UInt8]) {
        withUnsafeBytes(of: value.bitPattern.littleEndian) { out.append(contentsOf: $0) }
    }

    static func putExpiry(_ expiry: ExpiryChange, _ out: inout [UInt8]) {
        switch expiry {
        case .clear: out.append(0)
        case .keep: out.append(1)
        case .at(let time): out.append(2); putSigned(time, &out)
        }
    }

    // MARK: Decoding

    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(DecodeError) -> Txn {
        var reader = Reader(bytes: bytes)
        let format = try reader.byte()
        guard format == version else { throw .unsupportedVersion(format) }
        let time = try reader.signed()
        let count = try reader.count(limit: maxOperations)
        var operations: [Operation] = []
        operations.reserveCapacity(min(count, 1024))
        for _ in 0..<count { operations.append(try reader.operation()) }
        guard reader.offset == bytes.count else { throw .trailingBytes(offset: reader.offset) }
        return Txn(time: time, operations: operations)
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> Txn {
        try withBytes(bytes) { (raw) throws(DecodeError) -> Txn in try decode(raw) }
    }

    struct Reader {
        var bytes: UnsafeRawBufferPointer
        var offset = 0

        mutating func byte() throws(DecodeError) -> UInt8 {
            guard offset < bytes.count else { throw .truncated(offset: offset) }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func flag() throws(DecodeError) -> Bool {
            let start = offset
            switch try byte() {
            case 0: return false
            case 1: return true
            default: throw .invalidValue("flag", offset: start)
            }
        }

        mutating func unsigned() throws(DecodeError) -> UInt64 {
            let start = offset
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                let b = try byte()
                if shift == 63 && b > 1 { throw .malformedVarint(offset: start) }
                result |= UInt64(b & 0x7F) << shift
                if b & 0x80 == 0 {
                    // Canonical only: a final zero group after others is an overlong encoding.
                    if b == 0 && shift > 0 { throw .malformedVarint(offset: start) }
                    return result
                }
                shift += 7
                if shift > 63 { throw .malformedVarint(offset: start) }
            }
        }

        mutating func signed() throws(DecodeError) -> Int64 {
            let raw = try unsigned()
            return Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
        }

        /// A count that cannot exceed the bytes left (each item takes at least one byte).
        mutating func count(limit: Int) throws(DecodeError) -> Int {
            let start = offset
            let value = try unsigned()
            guard value <= UInt64(min(limit, bytes.count - offset)) else { throw .invalidValue("count", offset: start) }
            return Int(value)
        }

        mutating func data() throws(DecodeError) -> Bytes {
            let start = offset
            let length = try unsigned()
            guard length <= UInt64(bytes.count - offset) else { throw .truncated(offset: start) }
            let end = offset + Int(length)
            defer { offset = end }
            return Bytes(UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
        }

        /// Passes over a length-prefixed byte string.
        mutating func skipData() throws(DecodeError) {
            let start = offset
            let length = try unsigned()
            guard length <= UInt64(bytes.count - offset) else { throw .truncated(offset: start) }
            offset += Int(length)
        }

        mutating func list() throws(DecodeError) -> [Bytes] {
            let count = try count(limit: Int.max)
            var items: [Bytes] = []
            items.reserveCapacity(count)
            for _ in 0..<count { items.append(try data()) }
            return items
        }

        mutating func double() throws(DecodeError) -> Double {
            guard bytes.count - offset >= 8 else { throw .truncated(offset: offset) }
            let raw = bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            offset += 8
            return Double(bitPattern: UInt64(littleEndian: raw))
        }

        mutating func expiry() throws(DecodeError) -> ExpiryChange {
            let start = offset
            switch try byte() {
            case 0: return .clear
            case 1: return .keep
            case 2: return .at(try signed())
            default: throw .invalidValue("expiry", offset: start)
            }
        }

        mutating func raw<T: RawRepresentable>(_ type: T.Type, _ what: String) throws(DecodeError) -> T where T.RawValue == UInt8 {
            let start = offset
            guard let value = T(rawValue: try byte()) else { throw .invalidValue(what, offset: start) }
            return value
        }

        mutating func string() throws(DecodeError) -> String {
            let start = offset
            let bytes = try data()
            guard let text = String(validating: bytes.storage, as: UTF8.self) else { throw .invalidValue("UTF-8 path", offset: start) }
            return text
        }

        mutating func acl() throws(DecodeError) -> [ACLEntry] {
            let count = try count(limit: maxACLEntries)
            var acl: [ACLEntry] = []
            for _ in 0..<count {
                let start = offset
                guard let perms = Int32(exactly: try signed()) else { throw .invalidValue("ACL permissions", offset: start) }
                acl.append(ACLEntry(perms: perms, scheme: try string(), id: try string()))
            }
            return acl
        }

        mutating func version() throws(DecodeError) -> Int32 {
            let start = offset
            guard let value = Int32(exactly: try signed()) else { throw .invalidValue("version", offset: start) }
            return value
        }

        mutating func operation(nested: Bool = false) throws(DecodeError) -> Operation {
            let start = offset
            let tag = try byte()
            switch tag {
            case 1:
                return .set(try data(), try data(), condition: try raw(SetCondition.self, "set condition"),
                            expiry: try expiry(), returnOld: try flag())
            case 2:
                let keys = try list()
                let values = try list()
                guard keys.count == values.count else { throw .invalidValue("key/value counts", offset: start) }
                return .setMany(keys: keys, values: values, onlyIfNoneExist: try flag())
            case 3: return .delete(try list())
            case 4: return .incrementBy(try data(), try signed())
            case 5: return .incrementByFloat(try data(), try double())
            case 6: return .append(try data(), try data())
            case 7: return .getDelete(try data())
            case 8: return .getExpire(try data(), try expiry())
            case 9: return .expire(try data(), at: try signed(), condition: try raw(ExpireCondition.self, "expire condition"))
            case 10: return .persist(try data())
            case 11: return .rename(try data(), to: try data(), onlyIfAbsent: try flag())
            case 12: return .flushAll
            case 13: return .push(try data(), try list(), left: try flag(), onlyIfExists: try flag())
            case 14:
                let key = try data()
                let count: Int64? = try flag() ? try signed() : nil
                return .pop(key, count: count, left: try flag())
            case 15: return .listRemove(try data(), count: try signed(), value: try data())
            case 16: return .listTrim(try data(), start: try signed(), stop: try signed())
            case 17:
                let key = try data()
                let fields = try list()
                let values = try list()
                guard fields.count == values.count else { throw .invalidValue("field/value counts", offset: start) }
                return .hashSet(key, fields: fields, values: values)
            case 18: return .hashDelete(try data(), fields: try list())
            case 19: return .hashIncrementBy(try data(), field: try data(), try signed())
            case 20: return .compareAndDelete(try data(), token: try data())
            case 21, 31, 33:
                let created = Operation.createNode(
                    path: try string(), data: try data(), kind: try raw(NodeKind.self, "node kind"),
                    sequential: try flag(), ttl: try signed(), owner: try signed(), acl: tag == 21 ? [] : try acl(), nullData: tag == 33)
                // Canonical: an empty ACL is written with tag 21, null data (no bytes) with 33.
                if case .createNode(_, let data, _, _, _, _, let acl, _) = created {
                    if tag == 31 && acl.isEmpty { throw .invalidValue("empty ACL", offset: start) }
                    if tag == 33 && !data.isEmpty { throw .invalidValue("null data with bytes", offset: start) }
                }
                return created
            case 32: return .setNodeACL(path: try string(), acl: try acl(), version: try version())
            case 34: return .setNodeData(path: try string(), data: Bytes([]), version: try version(), nullData: true)
            case 22: return .deleteNode(path: try string(), version: try version())
            case 23: return .setNodeData(path: try string(), data: try data(), version: try version())
            case 24: return .checkNode(path: try string(), version: try version())
            case 25:
                // One level only: a multi inside a multi is refused, which also bounds recursion.
                guard !nested else { throw .invalidValue("nested multi", offset: start) }
                let count = try count(limit: maxOperations)
                var operations: [Operation] = []
                for _ in 0..<count { operations.append(try operation(nested: true)) }
                return .multi(operations)
            case 26: return .expireKeys(try list())
            case 27:
                let count = try count(limit: Int.max)
                var paths: [String] = []
                paths.reserveCapacity(count)
                for _ in 0..<count { paths.append(try string()) }
                return .expireNodes(paths)
            case 28: return .createSession(timeout: try signed())
            case 29: return .closeSession(try signed())
            case 30:
                // A key-value operation of database 1-15: no tree operation, no nesting. Refused
                // before decoding what it wraps, so a chain of these cannot recurse without bound.
                guard !nested else { throw .invalidValue("nested database operation", offset: start) }
                let db = try unsigned()
                guard db < UInt64(StoreState.databaseCount) else { throw .invalidValue("database", offset: start) }
                let inner = try operation(nested: true)
                if inner.isTreeOperation { throw .invalidValue("database operation", offset: start) }
                if case .inDatabase = inner { throw .invalidValue("nested database operation", offset: start) }
                return .inDatabase(Int(db), inner)
            default: throw .unknownTag(tag, offset: start)
            }
        }
    }
}
