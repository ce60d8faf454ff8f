/// The ZooKeeper-style znode API (ZooKeeper 3.8 semantics; errors are ``TreeError`` with its
/// codes). Writes block until committed under the fsync policy; reads answer from the committed
/// tree at once.
///
/// ```swift
/// try store.create("/app", data: "config")
/// let lock = try store.create("/app/lock-", kind: .ephemeral, sequential: true, session: 0x1234)
/// // "/app/lock-0000000000"
/// let (data, stat) = try store.getData("/app")
/// try store.setData("/app", data: "v2", version: stat.version)   // BadVersion if it moved on
/// ```
extension Store {
    func treeReply(_ reply: Reply) throws -> Reply {
        if case .treeError(let error) = reply { throw error }
        return reply
    }

    /// `create`: returns the path created (with the sequential suffix, if any) and its Stat.
    /// `acl` defaults to ``ACLEntry/openUnsafe``; an empty list is InvalidACL.
    @discardableResult
    public func createNode(
        _ path: String, data: Bytes = Bytes([]), kind: NodeKind = .persistent, sequential: Bool = false,
        ttl: Int64 = 0, session: Int64 = 0, acl: [ACLEntry] = ACLEntry.openUnsafe
    ) throws -> (path: String, stat: Stat) {
        try ZPath.validate(path, sequential: sequential)
        guard !acl.isEmpty else { throw TreeError.invalidACL }
        let reply = try treeReply(run(.createNode(path: path, data: data, kind: kind, sequential: sequential, ttl: ttl, owner: session, acl: ACLEntry.stored(acl))))
        guard case .created(let created, let stat) = reply else { preconditionFailure("create answered \(reply)") }
        return (created, stat)
    }

    /// `create`, returning only the path.
    @discardableResult
    public func create(_ path: String, data: Bytes = Bytes([]), kind: NodeKind = .persistent, sequential: Bool = false, ttl: Int64 = 0, session: Int64 = 0) throws -> String {
        try createNode(path, data: data, kind: kind, sequential: sequential, ttl: ttl, session: session).path
    }

    /// `setACL` with an expected `aversion` (-1: any); returns the new Stat. The store keeps
    /// ACLs; checking a client's rights against them is the server's part.
    @discardableResult
    public func setACL(_ path: String, acl: [ACLEntry], version: Int32 = -1) throws -> Stat {
        try ZPath.validate(path)
        let reply = try treeReply(run(.setNodeACL(path: path, acl: acl, version: version)))
        guard case .stat(let stat) = reply else { preconditionFailure("setACL answered \(reply)") }
        return stat
    }

    /// `getACL`: the node's ACL and Stat; NoNode when absent.
    public func getACL(_ path: String) throws -> (acl: [ACLEntry], stat: Stat) {
        try ZPath.validate(path)
        guard let node = stateView().tree.nodes[path] else { throw TreeError.noNode }
        return (node.accessList, node.stat)
    }

    /// `delete` with an expected version (-1: any).
    public func delete(_ path: String, version: Int32 = -1) throws {
        try ZPath.validate(path)
        _ = try treeReply(run(.deleteNode(path: path, version: version)))
    }

    /// `setData` with an expected version (-1: any); returns the new Stat.
    @discardableResult
    public func setData(_ path: String, data: Bytes, version: Int32 = -1) throws -> Stat {
        try ZPath.validate(path)
        let reply = try treeReply(run(.setNodeData(path: path, data: data, version: version)))
        guard case .stat(let stat) = reply else { preconditionFailure("setData answered \(reply)") }
        return stat
    }

    /// Async `setData`.
    @discardableResult
    public func setData(_ path: String, data: Bytes, version: Int32 = -1) async throws -> Stat {
        try ZPath.validate(path)
        let reply = try treeReply(await run(.setNodeData(path: path, data: data, version: version)))
        guard case .stat(let stat) = reply else { preconditionFailure("setData answered \(reply)") }
        return stat
    }

    /// Async `create`.
    @discardableResult
    public func create(_ path: String, data: Bytes = Bytes([]), kind: NodeKind = .persistent, sequential: Bool = false, ttl: Int64 = 0, session: Int64 = 0) async throws -> String {
        try ZPath.validate(path, sequential: sequential)
        let reply = try treeReply(await run(.createNode(path: path, data: data, kind: kind, sequential: sequential, ttl: ttl, owner: session)))
        guard case .created(let created, _) = reply else { preconditionFailure("create answered \(reply)") }
        return created
    }

    /// `exists`: the node's Stat, or nil.
    public func exists(_ path: String) throws -> Stat? {
        try ZPath.validate(path)
        return stateView().tree.nodes[path]?.stat
    }

    /// `getData`: the node's data and Stat; NoNode when absent.
    public func getData(_ path: String) throws -> (data: Bytes, stat: Stat) {
        try ZPath.validate(path)
        guard let node = stateView().tree.nodes[path] else { throw TreeError.noNode }
        return (node.data, node.stat)
    }

    /// `getChildren` (`getChildren2` with the Stat): names sorted.
    public func getChildren(_ path: String) throws -> (children: [String], stat: Stat) {
        try ZPath.validate(path)
        guard let node = stateView().tree.nodes[path] else { throw TreeError.noNode }
        return (node.children.sorted(), node.stat)
    }

    /// `multi`: check / create / delete / setData, all or none. On failure the reply is
    /// ``Reply/multiFailed(codes:)`` and nothing changed.
    public func multi(_ operations: [Operation]) throws -> Reply {
        try run(.multi(operations))
    }
}

extension Store {
    /// `exists` with a watch: a data watch when the node exists, else an exists watch that
    /// fires when it is created (ZooKeeper's rule).
    public func exists(_ path: String, watch handler: @escaping WatchHandler) throws -> Stat? {
        try ZPath.validate(path)
        return registerWatch({ $0.tree.nodes[path] == nil ? .exists : .data }, path: path, handler) { $0.tree.nodes[path]?.stat }
    }

    /// `getData` with a data watch. On NoNode no watch is set, as in ZooKeeper.
    public func getData(_ path: String, watch handler: @escaping WatchHandler) throws -> (data: Bytes, stat: Stat) {
        try ZPath.validate(path)
        return try registerWatch({ $0.tree.nodes[path] == nil ? nil : .data }, path: path, handler) { state in
            guard let node = state.tree.nodes[path] else { throw TreeError.noNode }
            return (node.data, node.stat)
        }
    }

    /// `getChildren` with a child watch. On NoNode no watch is set.
    public func getChildren(_ path: String, watch handler: @escaping WatchHandler) throws -> (children: [String], stat: Stat) {
        try ZPath.validate(path)
        return try registerWatch({ $0.tree.nodes[path] == nil ? nil : .children }, path: path, handler) { state in
            guard let node = state.tree.nodes[path] else { throw TreeError.noNode }
            return (node.children.sorted(), node.stat)
        }
    }
}
