import HashTreeCollections

/// The znode tree: znodes by full path in a persistent map (O(1) copies), the root always there.
public struct ZTree: Sendable, Equatable {
    public internal(set) var nodes: TreeDictionary<String, ZNode>
    /// Open sessions by id (the index of the txn that opened each).
    public internal(set) var sessions: TreeDictionary<Int64, Session> = [:]

    public init() {
        nodes = ["/": ZNode(data: Bytes([]), stat: Stat(), kind: .persistent)]
    }

    public var count: Int { nodes.count }
}

/// One change an operation made to the tree, replayed by assignment on the committed state.
public enum TreeChange: Sendable {
    case put(String, ZNode)
    case remove(String)
    /// A parent's Stat after a child was added or removed, and that child's name: applied in
    /// place, so the parent's set of children is never copied whole.
    case childAdded(parent: String, name: String, stat: Stat)
    case childRemoved(parent: String, name: String, stat: Stat)
    /// What watchers are told once the txn commits (no effect on the state).
    case event(WatchEvent)
    case sessionOpened(Int64, timeout: Int64)
    case sessionClosed(Int64)
    case ephemeralAdded(owner: Int64, path: String)
    case ephemeralRemoved(owner: Int64, path: String)
}

/// What the ephemeralOwner field holds for kinds that have no session (ZooKeeper's encoding).
enum EphemeralOwner {
    static let container = Int64.min
    static func ttl(_ milliseconds: Int64) -> Int64 { Int64(bitPattern: 0xFF00_0000_0000_0000) | (milliseconds & 0x00FF_FFFF_FFFF_FFFF) }
    static let maxTTL: Int64 = 0x00FF_FFFF_FFFF_FFFF

    /// The TTL a TTL node's owner field encodes, or nil for other kinds.
    static func ttlValue(_ owner: Int64) -> Int64? {
        owner != container && UInt64(bitPattern: owner) >> 56 == 0xFF ? owner & maxTTL : nil
    }
}

extension Stat {
    /// `ephemeralOwner` as ZooKeeper shows it to clients: the owning session, or 0 for every
    /// node without one (container and TTL nodes keep their kind in the field here).
    public var clientEphemeralOwner: Int64 {
        ephemeralOwner == EphemeralOwner.container || EphemeralOwner.ttlValue(ephemeralOwner) != nil ? 0 : ephemeralOwner
    }
}

extension ZNode {
    /// When a TTL node becomes eligible for deletion (ZooKeeper deletes it once more than its
    /// TTL has passed since its last change): `mtime + ttl + 1`, or nil for other kinds.
    var ttlDeadline: Int64? {
        guard let ttl = EphemeralOwner.ttlValue(stat.ephemeralOwner) else { return nil }
        return stat.mtime &+ ttl &+ 1
    }

    /// True when the expiry wheel should delete this node at `time`: a childless TTL node past
    /// its deadline, or a childless container that has had a child.
    func isExpiredNode(at time: Int64) -> Bool {
        guard children.isEmpty else { return false }
        switch kind {
        case .ttl: return ttlDeadline.map { $0 <= time } ?? false
        case .container: return stat.cversion > 0
        case .persistent, .ephemeral: return false
        }
    }
}

extension ZTree {
    /// The tree after one create, delete, setData, setACL or check, or nil when it would fail:
    /// what a server needs to check each operation of a `multi` against the ones before it (as
    /// ZooKeeper checks a multi's ACLs). An O(1) copy changed along one path; zxids and times
    /// in it are placeholders, so only its structure, data and ACLs are meaningful.
    public func applying(_ operation: Operation) -> ZTree? {
        var after = self
        var changes: [TreeChange] = []
        if case .treeError = after.apply(operation, index: 0, time: 0, changes: &changes) { return nil }
        return after
    }

    /// Applies one tree operation at `index` (the zxid) and `time`; changes are appended.
    mutating func apply(_ operation: Operation, index: UInt64, time: Int64, changes: inout [TreeChange]) -> Reply {
        if case .multi(let operations) = operation {
            return applyMulti(operations, index: index, time: time, changes: &changes)
        }
        do {
            return try perform(operation, zxid: Int64(bitPattern: index), time: time, changes: &changes)
        } catch {
            return .treeError(error)
        }
    }

    private mutating func applyMulti(_ operations: [Operation], index: UInt64, time: Int64, changes: inout [TreeChange]) -> Reply {
        var scratch = self  // O(1): all or none
        var scratchChanges: [TreeChange] = []
        var results: [Reply] = []
        for (position, operation) in operations.enumerated() {
            do throws(TreeError) {
                switch operation {
                case .createNode, .deleteNode, .setNodeData, .checkNode: break
                default: throw TreeError.badArguments  // only tree operations, no nesting
                }
                results.append(try scratch.perform(operation, zxid: Int64(bitPattern: index), time: time, changes: &scratchChanges))
            } catch {
                var codes = [Int32](repeating: 0, count: position)
                codes.append(error.rawValue)
                codes.append(contentsOf: [Int32](repeating: TreeError.runtimeInconsistency.rawValue, count: operations.count - position - 1))
                return .multiFailed(codes: codes)
            }
        }
        self = scratch
        changes.append(contentsOf: scratchChanges)
        return .array(results)
    }

    private mutating func put(_ path: String, _ node: ZNode, _ changes: inout [TreeChange]) {
        nodes[path] = node
        changes.append(.put(path, node))
    }

    private func versionMatches(_ expected: Int32, _ node: ZNode) -> Bool { expected == -1 || expected == node.stat.version }

    private mutating func perform(_ operation: Operation, zxid: Int64, time: Int64, changes: inout [TreeChange]) throws(TreeError) -> Reply {
        switch operation {
        case .createNode(let path, let data, let kind, let sequential, let ttl, let owner, let acl, let nullData):
            try ZPath.validate(path, sequential: sequential)
            guard path != "/" || sequential else { throw .nodeExists }
            let parentPath = ZPath.parent(sequential ? path + "0" : path)
            // Read what is needed without holding a copy of the parent: it is then changed in
            // place, and a copy would make its set of children copy-on-write.
            guard let (parentKind, parentBefore) = nodes[parentPath].map({ ($0.kind, $0.stat) }) else { throw .noNode }
            if parentKind == .ephemeral { throw .noChildrenForEphemerals }
            if kind == .ttl && (ttl <= 0 || ttl > EphemeralOwner.maxTTL) { throw .badArguments }
            if kind == .ephemeral && sessions[owner] == nil { throw .sessionExpired }
            var finalPath = path
            if sequential {
                // ZooKeeper's suffix counts the children ever created under the parent, 10
                // digits. cversion counts creates and deletes, and creates - deletes is
                // numChildren, so the count of creates is (cversion + numChildren) / 2.
                let created = Int32(truncatingIfNeeded: (Int64(parentBefore.cversion) + Int64(parentBefore.numChildren)) / 2)
                let counter = String(created)
                let digits = created < 0 ? counter : String(repeating: "0", count: max(0, 10 - counter.count)) + counter
                finalPath = path + digits
            }
            guard nodes.index(forKey: finalPath) == nil else { throw .nodeExists }  // (no copy of a node)
            var stat = Stat()
            stat.czxid = zxid
            stat.mzxid = zxid
            stat.pzxid = zxid
            stat.ctime = time
            stat.mtime = time
            stat.dataLength = Int32(clamping: data.count)
            switch kind {
            case .persistent: stat.ephemeralOwner = 0
            case .ephemeral: stat.ephemeralOwner = owner
            case .container: stat.ephemeralOwner = EphemeralOwner.container
            case .ttl: stat.ephemeralOwner = EphemeralOwner.ttl(ttl)
            }
            var node = ZNode(data: data, stat: stat, kind: kind, ttl: kind == .ttl ? ttl : 0, acl: acl)
            node.dataIsNull = nullData && data.isEmpty
            put(finalPath, node, &changes)
            if kind == .ephemeral {
                sessions[owner]!.ephemerals.insert(finalPath)
                changes.append(.ephemeralAdded(owner: owner, path: finalPath))
            }
            let name = ZPath.name(finalPath)
            let parentStat = modifyExisting(parentPath) { Self.childAdded(&$0, name: name, zxid: zxid) }
            changes.append(.childAdded(parent: parentPath, name: name, stat: parentStat))
            changes.append(.event(WatchEvent(type: .nodeCreated, path: finalPath, zxid: zxid)))
            changes.append(.event(WatchEvent(type: .nodeChildrenChanged, path: parentPath, zxid: zxid)))
            return .created(path: finalPath, stat: stat)

        case .deleteNode(let path, let version):
            try ZPath.validate(path)
            guard path != "/" else { throw .badArguments }
            guard let node = nodes[path] else { throw .noNode }
            guard versionMatches(version, node) else { throw .badVersion }
            guard node.children.isEmpty else { throw .notEmpty }
            remove(path, node, zxid: zxid, &changes)
            return .ok

        case .setNodeData(let path, let data, let version, let nullData):
            try ZPath.validate(path)
            guard var node = nodes[path] else { throw .noNode }
            guard versionMatches(version, node) else { throw .badVersion }
            node.data = data
            node.dataIsNull = nullData && data.isEmpty
            node.stat.mzxid = zxid
            node.stat.mtime = time
            node.stat.version &+= 1
            node.stat.dataLength = Int32(clamping: data.count)
            put(path, node, &changes)
            changes.append(.event(WatchEvent(type: .nodeDataChanged, path: path, zxid: zxid)))
            return .stat(node.stat)

        case .setNodeACL(let path, let acl, let version):
            try ZPath.validate(path)
            guard !acl.isEmpty else { throw .invalidACL }
            guard var node = nodes[path] else { throw .noNode }
            guard version == -1 || version == node.stat.aversion else { throw .badVersion }
            node.acl = ACLEntry.stored(acl)
            node.stat.aversion &+= 1
            put(path, node, &changes)
            return .stat(node.stat)

        case .checkNode(let path, let version):
            try ZPath.validate(path)
            guard let node = nodes[path] else { throw .noNode }
            guard versionMatches(version, node) else { throw .badVersion }
            return .ok

        case .createSession(let timeout):
            guard Session.timeoutRange.contains(timeout) else { throw .badArguments }
            sessions[zxid] = Session(timeout: timeout)
            changes.append(.sessionOpened(zxid, timeout: timeout))
            return .integer(zxid)

        case .closeSession(let id):
            guard let session = sessions[id] else { return .integer(0) }
            // Sorted: the order of deletions (and of their events) must not depend on hashing.
            for path in session.ephemerals.sorted() { remove(path, nodes[path]!, zxid: zxid, &changes) }
            sessions[id] = nil
            changes.append(.sessionClosed(id))
            return .integer(1)

        case .expireNodes(let paths):
            var removed: Int64 = 0
            for path in paths {
                guard let node = nodes[path], node.isExpiredNode(at: time) else { continue }
                remove(path, node, zxid: zxid, &changes)
                removed += 1
            }
            return .integer(removed)

        default:
            throw .badArguments
        }
    }

    /// Deletes a childless node (not the root): from its parent, from its session if ephemeral,
    /// with the events watchers are owed.
    private mutating func remove(_ path: String, _ node: ZNode, zxid: Int64, _ changes: inout [TreeChange]) {
        assert(node.children.isEmpty && path != "/", "only a childless non-root node is removed")
        let parentPath = ZPath.parent(path)
        nodes[path] = nil
        changes.append(.remove(path))
        if node.kind == .ephemeral, sessions[node.stat.ephemeralOwner] != nil {
            sessions[node.stat.ephemeralOwner]!.ephemerals.remove(path)
            changes.append(.ephemeralRemoved(owner: node.stat.ephemeralOwner, path: path))
        }
        let name = ZPath.name(path)
        let parentStat = modifyExisting(parentPath) { Self.childRemoved(&$0, name: name, zxid: zxid) }
        changes.append(.childRemoved(parent: parentPath, name: name, stat: parentStat))
        changes.append(.event(WatchEvent(type: .nodeDeleted, path: path, zxid: zxid)))
        changes.append(.event(WatchEvent(type: .nodeChildrenChanged, path: parentPath, zxid: zxid)))
    }

    /// Changes the znode at `path`, which must exist, in place with one lookup. (The optional
    /// subscript's in-place access, `&nodes[path]!`, moves the value and a copy of the key out of
    /// the trie and back in through generic code: twice the cost of the change itself.)
    @inline(__always) private mutating func modifyExisting<R>(_ path: String, _ body: (inout ZNode) -> R) -> R {
        nodes.updateValue(forKey: path, default: Self.missing(path), with: body)
    }

    private static func missing(_ path: String) -> ZNode {
        preconditionFailure("znode \(path) is missing from the tree")
    }

    private static func childAdded(_ parent: inout ZNode, name: String, zxid: Int64) -> Stat {
        parent.stat.cversion &+= 1
        parent.stat.pzxid = zxid
        parent.stat.numChildren &+= 1
        parent.children.insert(name)
        return parent.stat
    }

    private static func childRemoved(_ parent: inout ZNode, name: String, zxid: Int64) -> Stat {
        parent.stat.cversion &+= 1
        parent.stat.pzxid = zxid
        parent.stat.numChildren &-= 1
        parent.children.remove(name)
        return parent.stat
    }

    mutating func apply(_ changes: UnsafeBufferPointer<TreeChange>) {
        for i in changes.indices { apply(changes[i]) }
    }

    mutating func apply(_ change: TreeChange) {
        switch change {
        case .put(let path, let node): nodes[path] = node
        case .remove(let path): nodes[path] = nil
        case .childAdded(let parent, let name, let stat):
            modifyExisting(parent) { $0.stat = stat; $0.children.insert(name) }
        case .childRemoved(let parent, let name, let stat):
            modifyExisting(parent) { $0.stat = stat; $0.children.remove(name) }
        case .event: break
        case .sessionOpened(let id, let timeout): sessions[id] = Session(timeout: timeout)
        case .sessionClosed(let id): sessions[id] = nil
        case .ephemeralAdded(let owner, let path): sessions[owner]?.ephemerals.insert(path)
        case .ephemeralRemoved(let owner, let path): sessions[owner]?.ephemerals.remove(path)
        }
    }
}
