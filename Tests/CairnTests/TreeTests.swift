import Cairn
import CairnTesting
import Testing

/// The znode tree, against ZooKeeper 3.8's documented behaviour.
@Suite struct TreeTests {
    @Test func createGetSetDeleteWithFullStat() throws {
        let (store, _, clock) = try makeStore()
        let (path, created) = try store.createNode("/app", data: "config")
        #expect(path == "/app")
        let index = Int64(store.log.lastIndex)
        #expect(created.czxid == index && created.mzxid == index && created.pzxid == index)
        #expect(created.ctime == clock.nowMilliseconds() && created.mtime == created.ctime)
        #expect(created.version == 0 && created.cversion == 0 && created.aversion == 0)
        #expect(created.ephemeralOwner == 0 && created.dataLength == 6 && created.numChildren == 0)
        let (data, stat) = try store.getData("/app")
        #expect(data == "config" && stat == created)

        clock.advance(milliseconds: 5)
        let updated = try store.setData("/app", data: "v2", version: 0)
        #expect(updated.version == 1 && updated.mzxid == Int64(store.log.lastIndex) && updated.czxid == created.czxid)
        #expect(updated.mtime == created.ctime + 5 && updated.dataLength == 2)
        #expect(throws: TreeError.badVersion) { try store.setData("/app", data: "x", version: 0) }
        try store.setData("/app", data: "any version", version: -1)

        let root = try #require(try store.exists("/"))
        #expect(root.numChildren == 1 && root.cversion == 1 && root.pzxid == created.czxid)
        #expect(throws: TreeError.badVersion) { try store.delete("/app", version: 7) }
        try store.delete("/app", version: 2)
        #expect(try store.exists("/app") == nil)
        #expect(throws: TreeError.noNode) { try store.getData("/app") }
        let rootAfter = try #require(try store.exists("/"))
        #expect(rootAfter.numChildren == 0 && rootAfter.cversion == 2)
        try store.close()
    }

    @Test func errorCodes() throws {
        let (store, _, _) = try makeStore()
        try store.create("/a")
        #expect(throws: TreeError.nodeExists) { try store.create("/a") }
        #expect(throws: TreeError.noNode) { try store.create("/missing/child") }
        try store.create("/a/b")
        #expect(throws: TreeError.notEmpty) { try store.delete("/a") }
        #expect(throws: TreeError.noNode) { try store.delete("/nope") }
        #expect(throws: TreeError.noNode) { try store.setData("/nope", data: "x") }
        #expect(throws: TreeError.sessionExpired) { try store.create("/e", kind: .ephemeral, session: 0x42) }
        try store.create("/e", kind: .ephemeral, session: store.createSession(timeout: 5000))
        #expect(throws: TreeError.noChildrenForEphemerals) { try store.create("/e/child") }
        #expect(throws: TreeError.badArguments) { try store.delete("/") }
        #expect(TreeError.noNode.rawValue == -101 && TreeError.nodeExists.rawValue == -110 && TreeError.badVersion.rawValue == -103)
        #expect(TreeError.notEmpty.rawValue == -111 && TreeError.noChildrenForEphemerals.rawValue == -108 && TreeError.badArguments.rawValue == -8)
        try store.close()
    }

    @Test(arguments: ["", "a", "/a/", "//a", "/a//b", "/a/./b", "/a/../b", "/.", "/a\u{0}b", "/a\u{1F}", "/\u{FFF5}"])
    func invalidPathsAreRejected(path: String) throws {
        #expect(throws: TreeError.badArguments) { try ZPath.validate(path) }
    }

    @Test func validPaths() throws {
        for path in ["/", "/a", "/a/b-c_d", "/zookeeper", "/a.b", "/..a", "/名前"] { try ZPath.validate(path) }
        try ZPath.validate("/queue/", sequential: true)
    }

    /// As ZooKeeper numbers them: by the children ever created under the parent (a delete moves
    /// cversion on but not the counter; checked against ZooKeeper 3.8).
    @Test func sequentialNamesCountTheParentsCreates() throws {
        let (store, _, _) = try makeStore()
        try store.create("/q")
        #expect(try store.create("/q/item-", sequential: true) == "/q/item-0000000000")
        #expect(try store.create("/q/item-", sequential: true) == "/q/item-0000000001")
        try store.create("/q/other")  // bumps cversion too
        #expect(try store.create("/q/", sequential: true) == "/q/0000000003")
        try store.delete("/q/other")
        let session = try store.createSession(timeout: 5000)
        #expect(try store.create("/q/lock-", kind: .ephemeral, sequential: true, session: session) == "/q/lock-0000000004")
        let children = try store.getChildren("/q")
        #expect(children.children == ["0000000003", "item-0000000000", "item-0000000001", "lock-0000000004"])
        #expect(children.stat.numChildren == 4 && children.stat.cversion == 6)
        try store.close()
    }

    @Test func ownersOfEphemeralContainerAndTTLNodes() throws {
        let (store, _, _) = try makeStore()
        let session = try store.createSession(timeout: 5000)
        #expect(try store.createNode("/e", kind: .ephemeral, session: session).stat.ephemeralOwner == session)
        #expect(try store.createNode("/c", kind: .container).stat.ephemeralOwner == Int64.min)
        let ttl = try store.createNode("/t", kind: .ttl, ttl: 5000).stat.ephemeralOwner
        #expect(UInt64(bitPattern: ttl) == 0xFF00_0000_0000_1388)
        #expect(throws: TreeError.badArguments) { try store.create("/t0", kind: .ttl, ttl: 0) }
        try store.create("/c/child")  // containers take children
        try store.close()
    }

    @Test func multiIsAllOrNothingWithPerOperationResults() throws {
        let (store, _, _) = try makeStore()
        try store.create("/m", data: "0")
        let ok = try store.multi([
            .checkNode(path: "/m", version: 0),
            .createNode(path: "/m/a", data: "1", kind: .persistent, sequential: false, ttl: 0, owner: 0),
            .setNodeData(path: "/m", data: "2", version: 0),
            .deleteNode(path: "/m/a", version: -1),
        ])
        guard case .array(let results) = ok else { Issue.record("multi failed: \(ok)"); return }
        #expect(results.count == 4)
        #expect(results[0] == .ok && results[3] == .ok)
        if case .created(let path, _) = results[1] { #expect(path == "/m/a") } else { Issue.record("no create result") }
        let before = try store.getData("/m")
        let failed = try store.multi([
            .createNode(path: "/m/b", data: "", kind: .persistent, sequential: false, ttl: 0, owner: 0),
            .setNodeData(path: "/m", data: "3", version: 0),  // stale version: fails
            .deleteNode(path: "/m/b", version: -1),
        ])
        #expect(failed == .multiFailed(codes: [0, TreeError.badVersion.rawValue, TreeError.runtimeInconsistency.rawValue]))
        #expect(try store.exists("/m/b") == nil, "nothing of a failed multi is applied")
        #expect(try store.getData("/m") == before)
        try store.close()
    }

    @Test func theTreeSurvivesReopenAlongsideKeys() throws {
        let (store, disk, clock) = try makeStore()
        try store.create("/svc")
        try store.create("/svc/node-", data: "10.0.0.1", kind: .ephemeral, sequential: true, session: store.createSession(timeout: 5000))
        try store.set("key", "value")
        let before = store.stateView()
        try store.close()
        let reopened = try reopen(disk, clock: clock)
        #expect(reopened.stateView() == before)
        #expect(try reopened.getChildren("/svc").children == ["node-0000000000"])
        #expect(try reopened.get("key") == "value")
        try reopened.close()
    }

    /// ACLs are kept and versioned by the store (checked by servers): create with one, setACL
    /// with aversion, and both survive replay and a snapshot.
    @Test func aclsAreStoredVersionedAndRecovered() throws {
        let (store, disk, clock) = try makeStore()
        let admin = ACLEntry(perms: ACLEntry.all, scheme: "digest", id: "admin:x8Ei5ZSq")
        let readers = ACLEntry(perms: ACLEntry.read, scheme: "ip", id: "10.0.0.0/8")
        try store.createNode("/guarded", data: "s", acl: [admin, readers])
        try store.create("/open")
        // ZooKeeper's null data survives too.
        _ = try store.execute([.createNode(path: "/null", data: "", kind: .persistent, sequential: false, ttl: 0, owner: 0, nullData: true)])
        #expect(store.stateView().tree.nodes["/null"]?.dataIsNull == true)
        #expect(try store.getACL("/guarded").acl == [admin, readers])
        #expect(try store.getACL("/open").acl == ACLEntry.openUnsafe)
        #expect(throws: TreeError.invalidACL) { try store.createNode("/empty", acl: []) }
        #expect(throws: TreeError.badVersion) { try store.setACL("/guarded", acl: [admin], version: 3) }
        let stat = try store.setACL("/guarded", acl: [admin], version: 0)
        #expect(stat.aversion == 1)
        #expect(stat.version == 0, "setACL leaves the data version alone")
        #expect(throws: TreeError.invalidACL) { try store.setACL("/guarded", acl: []) }
        #expect(throws: TreeError.noNode) { try store.setACL("/nope", acl: [admin]) }
        // The open ACL is stored as nothing.
        try store.setACL("/open", acl: ACLEntry.openUnsafe)
        #expect(store.stateView().tree.nodes["/open"]?.acl == [])
        let before = store.stateView()
        try store.close()
        let replayed = try reopen(disk, clock: clock)
        #expect(replayed.stateView() == before)
        _ = try replayed.snapshot()
        try replayed.close()
        let fromSnapshot = try reopen(disk, clock: clock)
        #expect(fromSnapshot.stateView() == before)
        #expect(try fromSnapshot.getACL("/guarded") == ([admin], stat))
        #expect(fromSnapshot.stateView().tree.nodes["/null"]?.dataIsNull == true)
        try fromSnapshot.close()
    }
}
