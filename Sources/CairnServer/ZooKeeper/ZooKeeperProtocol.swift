import Cairn

/// ZooKeeper's operation codes (`ZooDefs.OpCode`), as the request header carries them.
public enum ZKOpCode: Int32, Sendable {
    case notification = 0, create = 1, delete = 2, exists = 3, getData = 4, setData = 5, getACL = 6, setACL = 7
    case getChildren = 8, sync = 9, ping = 11, getChildren2 = 12, check = 13, multi = 14, create2 = 15
    case reconfig = 16, checkWatches = 17, removeWatches = 18, createContainer = 19, deleteContainer = 20
    case createTTL = 21, multiRead = 22, auth = 100, setWatches = 101, sasl = 102, getEphemerals = 103
    case getAllChildrenNumber = 104, setWatches2 = 105, addWatch = 106, whoAmI = 107
    case createSession = -10, closeSession = -11, error = -1
}

/// An ACL entry as the protocol carries it: the store's ``ACLEntry``.
public typealias ZKACL = ACLEntry

/// The first frame of a connection (no request header). Newer clients append `readOnly`.
public struct ZKConnectRequest: Sendable, Equatable {
    public var protocolVersion: Int32
    public var lastZxidSeen: Int64
    public var timeout: Int32
    public var sessionID: Int64
    public var password: [UInt8]
    public var readOnly: Bool?
}

/// The answer to it.
public struct ZKConnectResponse: Sendable, Equatable {
    public var protocolVersion: Int32 = 0
    public var timeout: Int32
    public var sessionID: Int64
    public var password: [UInt8]
    public var readOnly = false

    public init(timeout: Int32, sessionID: Int64, password: [UInt8], readOnly: Bool = false) {
        self.timeout = timeout
        self.sessionID = sessionID
        self.password = password
        self.readOnly = readOnly
    }

    public func encode(into out: inout JuteWriter) {
        out.int(protocolVersion)
        out.int(timeout)
        out.long(sessionID)
        out.buffer(password)
        out.boolean(readOnly)
    }
}

/// What a client asks, decoded from one frame after the connect.
/// Not `indirect`: `multi` nests through an array, which boxes already, and an indirect enum
/// would allocate a box for every request.
public enum ZKRequest: Sendable, Equatable {
    /// create, create2, createContainer, createTTL (`ttl` only for the last). Data nil is
    /// ZooKeeper's null data (a length of -1), which a client reads back as null.
    case create(path: String, data: [UInt8]?, acl: [ZKACL], flags: Int32, ttl: Int64?)
    case delete(path: String, version: Int32)
    case exists(path: String, watch: Bool)
    case getData(path: String, watch: Bool)
    case setData(path: String, data: [UInt8]?, version: Int32)
    case getACL(path: String)
    case setACL(path: String, acl: [ZKACL], version: Int32)
    /// getChildren and getChildren2.
    case getChildren(path: String, watch: Bool)
    case sync(path: String)
    case ping
    case check(path: String, version: Int32)
    /// multi and multiRead: the operations with their op codes.
    case multi([(ZKOpCode, ZKRequest)])
    case auth(type: Int32, scheme: String, auth: [UInt8])
    /// setWatches (the last two empty) and setWatches2.
    case setWatches(relativeZxid: Int64, data: [String], exist: [String], child: [String], persistent: [String], persistentRecursive: [String])
    case getEphemerals(prefix: String)
    case getAllChildrenNumber(path: String)
    case addWatch(path: String, mode: Int32)
    case checkWatches(path: String, type: Int32)
    case removeWatches(path: String, type: Int32)
    case closeSession
    case whoAmI

    public static func == (lhs: ZKRequest, rhs: ZKRequest) -> Bool { "\(lhs)" == "\(rhs)" }
}

/// Frames and records of the ZooKeeper client protocol (`zookeeper.jute` in apache/zookeeper).
public enum ZKCodec {
    /// `jute.maxbuffer`'s default: the largest frame a client may send (1 MiB - 1).
    public static let defaultMaxFrame = 0xFFFFF

    public enum Frame: Equatable {
        /// A whole frame's payload, and the bytes it used (length prefix included).
        case frame([UInt8], consumed: Int)
        case needMore
        /// The length prefix is negative or above the limit: close the connection.
        case invalidLength(Int32)
    }

    /// Splits the next frame off the bytes received so far.
    public static func nextFrame(_ bytes: [UInt8], maxFrame: Int = defaultMaxFrame) -> Frame {
        guard bytes.count >= 4 else { return .needMore }
        var reader = JuteReader(Array(bytes[0..<4]))
        let length = (try? reader.int()) ?? -1
        guard length >= 0, Int(length) <= maxFrame else { return .invalidLength(length) }
        guard bytes.count >= 4 + Int(length) else { return .needMore }
        return .frame(Array(bytes[4..<4 + Int(length)]), consumed: 4 + Int(length))
    }

    public static func connectRequest(_ payload: [UInt8]) throws(JuteError) -> ZKConnectRequest {
        var reader = JuteReader(payload)
        let request = ZKConnectRequest(
            protocolVersion: try reader.int(), lastZxidSeen: try reader.long(), timeout: try reader.int(),
            sessionID: try reader.long(), password: try reader.buffer() ?? [],
            readOnly: reader.remaining > 0 ? try reader.boolean() : nil)
        try reader.end()
        return request
    }

    /// A request frame: its header (xid, op code) and the request.
    public static func request(_ payload: [UInt8]) throws(JuteError) -> (xid: Int32, op: ZKOpCode, request: ZKRequest) {
        var reader = JuteReader(payload)
        let xid = try reader.int()
        let start = reader.offset
        let type = try reader.int()
        guard let op = ZKOpCode(rawValue: type) else { throw JuteError(reason: "unknown op code \(type)", offset: start) }
        let request = try body(op, &reader, nested: false)
        try reader.end()
        return (xid, op, request)
    }

    static func acl(_ reader: inout JuteReader) throws(JuteError) -> ZKACL {
        let perms = try reader.int()
        return ZKACL(perms: perms, scheme: try reader.string() ?? "", id: try reader.string() ?? "")
    }

    static func strings(_ reader: inout JuteReader) throws(JuteError) -> [String] {
        try reader.vector(minimumItemSize: 4) { (r: inout JuteReader) throws(JuteError) -> String in try r.string() ?? "" } ?? []
    }

    private static func body(_ op: ZKOpCode, _ reader: inout JuteReader, nested: Bool) throws(JuteError) -> ZKRequest {
        switch op {
        case .create, .create2, .createContainer, .createTTL:
            let path = try reader.path()
            let data = try reader.buffer()
            let acls = try reader.vector(minimumItemSize: 12) { (r: inout JuteReader) throws(JuteError) -> ZKACL in try ZKCodec.acl(&r) } ?? []
            let flags = try reader.int()
            let ttl: Int64? = op == .createTTL ? try reader.long() : nil
            return .create(path: path, data: data, acl: acls, flags: flags, ttl: ttl)
        case .delete, .deleteContainer: return .delete(path: try reader.path(), version: op == .delete ? try reader.int() : -1)
        case .exists: return .exists(path: try reader.path(), watch: try reader.boolean())
        case .getData: return .getData(path: try reader.path(), watch: try reader.boolean())
        case .setData: return .setData(path: try reader.path(), data: try reader.buffer(), version: try reader.int())
        case .getACL: return .getACL(path: try reader.path())
        case .setACL:
            let path = try reader.path()
            let acls = try reader.vector(minimumItemSize: 12) { (r: inout JuteReader) throws(JuteError) -> ZKACL in try ZKCodec.acl(&r) } ?? []
            return .setACL(path: path, acl: acls, version: try reader.int())
        case .getChildren, .getChildren2: return .getChildren(path: try reader.path(), watch: try reader.boolean())
        case .sync: return .sync(path: try reader.path())
        case .ping: return .ping
        case .check: return .check(path: try reader.path(), version: try reader.int())
        case .multi, .multiRead:
            guard !nested else { throw JuteError(reason: "a multi inside a multi", offset: reader.offset) }
            var operations: [(ZKOpCode, ZKRequest)] = []
            while true {
                let start = reader.offset
                let type = try reader.int()
                let done = try reader.boolean()
                _ = try reader.int()  // err, unused in requests
                if done { break }
                guard operations.count < 10_000 else { throw JuteError(reason: "too many operations in a multi", offset: start) }
                guard let inner = ZKOpCode(rawValue: type) else { throw JuteError(reason: "unknown op code \(type) in a multi", offset: start) }
                operations.append((inner, try body(inner, &reader, nested: true)))
            }
            return .multi(operations)
        case .auth: return .auth(type: try reader.int(), scheme: try reader.string() ?? "", auth: try reader.buffer() ?? [])
        case .setWatches, .setWatches2:
            let zxid = try reader.long()
            let data = try strings(&reader), exist = try strings(&reader), child = try strings(&reader)
            let persistent = op == .setWatches2 ? try strings(&reader) : []
            let recursive = op == .setWatches2 ? try strings(&reader) : []
            return .setWatches(relativeZxid: zxid, data: data, exist: exist, child: child, persistent: persistent, persistentRecursive: recursive)
        case .getEphemerals: return .getEphemerals(prefix: try reader.path())
        case .getAllChildrenNumber: return .getAllChildrenNumber(path: try reader.path())
        case .addWatch: return .addWatch(path: try reader.path(), mode: try reader.int())
        case .checkWatches: return .checkWatches(path: try reader.path(), type: try reader.int())
        case .removeWatches: return .removeWatches(path: try reader.path(), type: try reader.int())
        case .closeSession: return .closeSession
        case .whoAmI: return .whoAmI
        case .notification, .reconfig, .sasl, .createSession, .error:
            throw JuteError(reason: "op code \(op.rawValue) is not a client request", offset: reader.offset)
        }
    }

    // MARK: Writing replies

    /// `ReplyHeader`: xid, zxid, err (0 or one of ``TreeError``'s codes).
    public static func replyHeader(xid: Int32, zxid: Int64, err: Int32, into out: inout JuteWriter) {
        out.int(xid)
        out.long(zxid)
        out.int(err)
    }

    /// `Stat`, field by field as ZooKeeper orders them. Container and TTL nodes show an
    /// ephemeralOwner of 0, as ZooKeeper shows them (the store keeps their kind there).
    public static func stat(_ stat: Stat, into out: inout JuteWriter) {
        out.long(stat.czxid)
        out.long(stat.mzxid)
        out.long(stat.ctime)
        out.long(stat.mtime)
        out.int(stat.version)
        out.int(stat.cversion)
        out.int(stat.aversion)
        out.long(stat.clientEphemeralOwner)
        out.int(stat.dataLength)
        out.int(stat.numChildren)
        out.long(stat.pzxid)
    }

    /// `WatcherEvent` (sent with xid -1): type, keeper state (3: connected), path.
    public static func watcherEvent(type: Int32, state: Int32 = 3, path: String, into out: inout JuteWriter) {
        out.int(type)
        out.int(state)
        out.string(path)
    }

    public static func acl(_ acl: ZKACL, into out: inout JuteWriter) {
        out.int(acl.perms)
        out.string(acl.scheme)
        out.string(acl.id)
    }

    /// Writes a request as a client would (tests, tools): header and body, unframed.
    public static func encode(xid: Int32, op: ZKOpCode, _ request: ZKRequest, into out: inout JuteWriter) {
        out.int(xid)
        out.int(op.rawValue)
        encodeBody(op, request, into: &out)
    }

    static func encodeBody(_ op: ZKOpCode, _ request: ZKRequest, into out: inout JuteWriter) {
        switch request {
        case .create(let path, let data, let acls, let flags, let ttl):
            out.string(path); out.buffer(data); out.vector(acls) { w, a in acl(a, into: &w) }; out.int(flags)
            if let ttl { out.long(ttl) }
        case .delete(let path, let version):
            out.string(path)
            if op == .delete { out.int(version) }
        case .exists(let path, let watch), .getData(let path, let watch), .getChildren(let path, let watch):
            out.string(path); out.boolean(watch)
        case .setData(let path, let data, let version): out.string(path); out.buffer(data); out.int(version)
        case .getACL(let path), .sync(let path), .getAllChildrenNumber(let path): out.string(path)
        case .getEphemerals(let prefix): out.string(prefix)
        case .setACL(let path, let acls, let version): out.string(path); out.vector(acls) { w, a in acl(a, into: &w) }; out.int(version)
        case .check(let path, let version): out.string(path); out.int(version)
        case .multi(let operations):
            for (inner, request) in operations {
                out.int(inner.rawValue); out.boolean(false); out.int(-1)
                encodeBody(inner, request, into: &out)
            }
            out.int(-1); out.boolean(true); out.int(-1)
        case .auth(let type, let scheme, let auth): out.int(type); out.string(scheme); out.buffer(auth)
        case .setWatches(let zxid, let data, let exist, let child, let persistent, let recursive):
            out.long(zxid)
            for list in [data, exist, child] + (op == .setWatches2 ? [persistent, recursive] : []) { out.vector(list) { w, s in w.string(s) } }
        case .addWatch(let path, let mode): out.string(path); out.int(mode)
        case .checkWatches(let path, let type), .removeWatches(let path, let type): out.string(path); out.int(type)
        case .ping, .closeSession, .whoAmI: break
        }
    }
}
