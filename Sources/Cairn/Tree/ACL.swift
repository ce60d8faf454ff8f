/// One entry of a znode's access control list (ZooKeeper's `ACL`): the permissions granted to
/// an identity, named by a scheme (`world:anyone`, `digest:user:base64(sha1(user:password))`,
/// `ip:10.0.0.0/8`, `auth:` …).
///
/// The store keeps ACLs and versions them (`aversion`); a server checks them, since only it
/// knows who a client has authenticated as.
///
/// ```swift
/// let acl = [ACLEntry(perms: ACLEntry.read, scheme: "world", id: "anyone"),
///            ACLEntry(perms: ACLEntry.all, scheme: "digest", id: "admin:x8Ei5ZSq…=")]
/// try store.createNode("/config", data: "v1", acl: acl)
/// ```
public struct ACLEntry: Sendable, Hashable {
    public var perms: Int32
    public var scheme: String
    public var id: String

    public init(perms: Int32, scheme: String, id: String) {
        self.perms = perms
        self.scheme = scheme
        self.id = id
    }

    // ZooKeeper's `ZooDefs.Perms` bits.
    public static let read: Int32 = 1
    public static let write: Int32 = 2
    public static let create: Int32 = 4
    public static let delete: Int32 = 8
    public static let admin: Int32 = 16
    public static let all: Int32 = 31

    /// `world:anyone` with every permission.
    public static let open = ACLEntry(perms: all, scheme: "world", id: "anyone")
    /// ZooKeeper's `OPEN_ACL_UNSAFE` (``open`` alone): every znode's ACL unless its creator
    /// chose another.
    public static let openUnsafe = [open]

    /// How a znode stores its ACL: the open ACL as the empty list (so the common case costs
    /// nothing per node), any other as given.
    public static func stored(_ acl: [ACLEntry]) -> [ACLEntry] { acl == openUnsafe ? [] : acl }
}

extension ZNode {
    /// The node's ACL as a client sees it (the empty stored list is ``ACLEntry/openUnsafe``).
    public var accessList: [ACLEntry] { acl.isEmpty ? ACLEntry.openUnsafe : acl }
}
