import HashTreeCollections

/// ZooKeeper's `Stat`: every field of a znode's metadata, with zxids taken from txn indexes.
public struct Stat: Sendable, Equatable {
    public var czxid: Int64 = 0
    public var mzxid: Int64 = 0
    public var ctime: Int64 = 0
    public var mtime: Int64 = 0
    public var version: Int32 = 0
    public var cversion: Int32 = 0
    public var aversion: Int32 = 0
    public var ephemeralOwner: Int64 = 0
    public var dataLength: Int32 = 0
    public var numChildren: Int32 = 0
    public var pzxid: Int64 = 0

    public init() {}
}

/// How a znode lives: ZooKeeper's create modes (the sequential flag is separate).
public enum NodeKind: UInt8, Sendable, Equatable {
    case persistent = 0
    case ephemeral = 1
    /// Deleted once its last child goes (by the expiry wheel).
    case container = 2
    /// Persistent, but deleted when unmodified for its TTL and childless (by the expiry wheel).
    case ttl = 3
}

/// A znode: data, Stat, and the names of its children (a persistent set: O(1) copies).
///
/// A value type whose fields live in one copy-on-write box: a slot of the tree's trie then holds
/// a path and one reference (24 bytes instead of 144), so inserting, removing and copying trie
/// nodes moves a sixth of the bytes and retains two references per slot instead of five. A
/// change to a znode whose box is shared (with a reader's view, or with the other of the head
/// and committed states) copies the box first.
public struct ZNode: Sendable, Equatable {
    private final class Fields: @unchecked Sendable {  // mutated only when uniquely referenced
        var data: Bytes
        var stat: Stat
        var kind: NodeKind
        var ttl: Int64
        var children: TreeSet<String>
        var acl: [ACLEntry]
        var dataIsNull: Bool

        init(data: Bytes, stat: Stat, kind: NodeKind, ttl: Int64, children: TreeSet<String>, acl: [ACLEntry], dataIsNull: Bool) {
            self.data = data
            self.stat = stat
            self.kind = kind
            self.ttl = ttl
            self.children = children
            self.acl = acl
            self.dataIsNull = dataIsNull
        }

        func copy() -> Fields {
            Fields(data: data, stat: stat, kind: kind, ttl: ttl, children: children, acl: acl, dataIsNull: dataIsNull)
        }
    }

    private var fields: Fields

    public init(data: Bytes, stat: Stat, kind: NodeKind, ttl: Int64 = 0, acl: [ACLEntry] = []) {
        fields = Fields(data: data, stat: stat, kind: kind, ttl: ttl, children: [], acl: ACLEntry.stored(acl), dataIsNull: false)
    }

    @inline(__always) private mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&fields) { fields = fields.copy() }
    }

    public var data: Bytes {
        get { fields.data }
        set { makeUnique(); fields.data = newValue }
        _modify { makeUnique(); yield &fields.data }
    }

    public var stat: Stat {
        get { fields.stat }
        set { makeUnique(); fields.stat = newValue }
        _modify { makeUnique(); yield &fields.stat }
    }

    public var kind: NodeKind {
        get { fields.kind }
        set { makeUnique(); fields.kind = newValue }
    }

    /// For ``NodeKind/ttl``: milliseconds.
    public var ttl: Int64 {
        get { fields.ttl }
        set { makeUnique(); fields.ttl = newValue }
    }

    public var children: TreeSet<String> {
        get { fields.children }
        set { makeUnique(); fields.children = newValue }
        _modify { makeUnique(); yield &fields.children }
    }

    /// The access control list as stored: empty for ``ACLEntry/openUnsafe`` (see ``accessList``).
    public var acl: [ACLEntry] {
        get { fields.acl }
        set { makeUnique(); fields.acl = newValue }
        _modify { makeUnique(); yield &fields.acl }
    }

    /// ZooKeeper's null data (a create or setData without data): `data` is empty and a client
    /// reads null rather than an empty array.
    public var dataIsNull: Bool {
        get { fields.dataIsNull }
        set { makeUnique(); fields.dataIsNull = newValue }
    }

    public static func == (lhs: ZNode, rhs: ZNode) -> Bool {
        if lhs.fields === rhs.fields { return true }
        let (l, r) = (lhs.fields, rhs.fields)
        return l.data == r.data && l.stat == r.stat && l.kind == r.kind && l.ttl == r.ttl
            && l.children == r.children && l.acl == r.acl && l.dataIsNull == r.dataIsNull
    }
}

/// ZooKeeper's error codes for tree operations (the values its wire protocol carries).
public enum TreeError: Int32, Error, Sendable, Equatable, CustomStringConvertible {
    case runtimeInconsistency = -2
    case unimplemented = -6
    case badArguments = -8
    case invalidACL = -114
    /// Authentication (`addauth`) failed: a server closes the connection after answering it.
    case authFailed = -115
    /// `checkWatches` / `removeWatches` found no such watch.
    case noWatcher = -121
    case noNode = -101
    /// The client's identities lack the permission the node's ACL asks (checked by a server).
    case noAuth = -102
    case badVersion = -103
    case noChildrenForEphemerals = -108
    case nodeExists = -110
    case notEmpty = -111
    /// The session is not open (it expired or was closed): ephemeral nodes need a live one.
    case sessionExpired = -112

    public var description: String {
        switch self {
        case .runtimeInconsistency: return "RuntimeInconsistency"
        case .badArguments: return "BadArguments"
        case .invalidACL: return "InvalidACL"
        case .unimplemented: return "Unimplemented"
        case .noAuth: return "NoAuth"
        case .authFailed: return "AuthFailed"
        case .noWatcher: return "NoWatcher"
        case .noNode: return "NoNode"
        case .badVersion: return "BadVersion"
        case .noChildrenForEphemerals: return "NoChildrenForEphemerals"
        case .nodeExists: return "NodeExists"
        case .notEmpty: return "NotEmpty"
        case .sessionExpired: return "SessionExpired"
        }
    }
}
