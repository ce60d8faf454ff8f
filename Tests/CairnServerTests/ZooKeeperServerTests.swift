import Cairn
import CairnServer
import CairnStorage
import CairnTesting
import Foundation
import MetricsTestKit
import NIOPosix
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The ZooKeeper listener driven by a raw client speaking the wire protocol: every operation
/// and error code, sessions, watches, ACLs, multi, hostile input and the four-letter words.
@Suite(.serialized) struct ZooKeeperServerTests {
    @Test func handshakeNegotiatesTheTimeoutAndGivesAPassword() throws {
        let server = try ZKTestServer()
        defer { server.stop() }
        let low = try ZKRawClient(port: server.port)
        let (timeout, session, password) = try low.connect(timeout: 1000)
        #expect(timeout == 4000)  // clamped to the minimum
        #expect(session != 0)
        #expect(password.count == 16)
        #expect(server.store.session(session)?.timeout == 4000)
        let high = try ZKRawClient(port: server.port)
        #expect(try high.connect(timeout: 1_000_000).timeout == 40_000)
        let ping = try high.call(.ping, .ping)
        #expect(ping.err == 0)
    }

    @Test func createGetSetDeleteWithZooKeepersErrorCodes() throws {
        let server = try ZKTestServer()
        defer { server.stop() }
        let client = try ZKRawClient(port: server.port)
        try client.connect()

        var created = try client.create("/app", "v1")
        #expect(created.err == 0)
        #expect(try created.body.string() == "/app")
        let stat = try created.stat()
        #expect(stat.czxid == created.zxid)
        #expect(stat.mzxid == created.zxid)
        #expect(stat.version == 0)
        #expect(stat.dataLength == 2)
        // create (op 1) answers only the path.
        var plain = try client.create("/app/plain", op: .create)
        #expect(plain.err == 0)
        #expect(try (plain.body.string()) == "/app/plain")
        #expect(plain.body.remaining == 0)

        #expect(try client.create("/app", "again").err == TreeError.nodeExists.rawValue)
        #expect(try client.create("/missing/child").err == TreeError.noNode.rawValue)
        #expect(try client.create("no-slash").err == TreeError.badArguments.rawValue)
        #expect(try client.create("/bad/", "").err == TreeError.badArguments.rawValue)
        #expect(try client.create("/empty-acl", acl: []).err == TreeError.invalidACL.rawValue)
        #expect(try client.create("/bad-flags", flags: 9).err == TreeError.badArguments.rawValue)

        // Null data (a length of -1) reads back as null; empty data as empty.
        #expect(try client.call(.create, .create(path: "/null", data: nil, acl: [.open], flags: 0, ttl: nil)).err == 0)
        var null = try client.call(.getData, .getData(path: "/null", watch: false))
        #expect(try null.body.buffer() == nil)
        #expect(try client.call(.setData, .setData(path: "/null", data: [], version: -1)).err == 0)
        var empty = try client.call(.getData, .getData(path: "/null", watch: false))
        #expect(try empty.body.buffer() == [])
        #expect(try client.call(.setData, .setData(path: "/null", data: nil, version: -1)).err == 0)
        var nullAgain = try client.call(.getData, .getData(path: "/null", watch: false))
        #expect(try nullAgain.body.buffer() == nil)
        #expect(try client.call(.delete, .delete(path: "/null", version: -1)).err == 0)

        var got = try client.call(.getData, .getData(path: "/app", watch: false))
        #expect(got.err == 0)
        #expect(try (got.body.buffer()) == Array("v1".utf8))
        var set = try client.call(.setData, .setData(path: "/app", data: Array("v2".utf8), version: 0))
        #expect(set.err == 0)
        #expect(try (set.stat().version) == 1)
        #expect(try client.call(.setData, .setData(path: "/app", data: [], version: 0)).err == TreeError.badVersion.rawValue)
        #expect(try client.call(.getData, .getData(path: "/nope", watch: false)).err == TreeError.noNode.rawValue)
        #expect(try client.call(.exists, .exists(path: "/nope", watch: false)).err == TreeError.noNode.rawValue)
        var exists = try client.call(.exists, .exists(path: "/app", watch: false))
        #expect(exists.err == 0)
        #expect(try (exists.stat().version) == 1)

        #expect(try client.call(.delete, .delete(path: "/app", version: -1)).err == TreeError.notEmpty.rawValue)
        #expect(try client.call(.delete, .delete(path: "/app/plain", version: 3)).err == TreeError.badVersion.rawValue)
        #expect(try client.call(.delete, .delete(path: "/app/plain", version: 0)).err == 0)
        #expect(try client.call(.delete, .delete(path: "/", version: -1)).err == TreeError.badArguments.rawValue)

        // Ephemerals: owned by the session, no children.
        var ephemeral = try client.create("/app/e", flags: 1)
        _ = try ephemeral.body.string()
        #expect(try ephemeral.stat().ephemeralOwner == client.sessionID)
        #expect(try client.create("/app/e/child").err == TreeError.noChildrenForEphemerals.rawValue)
        var children = try client.call(.getChildren2, .getChildren(path: "/app", watch: false))
        #expect(try children.strings() == ["e"])
        #expect(try children.stat().numChildren == 1)
        var count = try client.call(.getAllChildrenNumber, .getAllChildrenNumber(path: "/app"))
        #expect(try count.body.int() == 1)
        // ZooKeeper's own nodes are there, and may not be deleted.
        #expect(try client.call(.exists, .exists(path: "/zookeeper/quota", watch: false)).err == 0)
        #expect(try client.call(.delete, .delete(path: "/zookeeper/quota", version: -1)).err == TreeError.badArguments.rawValue)
        #expect(try client.call(.setData, .setData(path: "/zookeeper/config", data: [1], version: -1)).err == TreeError.noAuth.rawValue)
        var ephemerals = try client.call(.getEphemerals, .getEphemerals(prefix: "/app"))
        #expect(try ephemerals.strings() == ["/app/e"])
        var synced = try client.call(.sync, .sync(path: "/app"))
        #expect(try synced.body.string() == "/app")
        #expect(try client.call(.check, .check(path: "/app", version: 5)).err == TreeError.badVersion.rawValue)
    }

    @Test func sequentialTTLAndContainerNodes() throws {
        let server = try ZKTestServer()
        defer { server.stop() }
        let client = try ZKRawClient(port: server.port)
        try client.connect()
        _ = try client.create("/q")
        var names: [String] = []
        for _ in 0..<3 {
            var reply = try client.create("/q/item-", flags: 2)
            names.append(try reply.body.string() ?? "")
        }
        #expect(names == ["/q/item-0000000000", "/q/item-0000000001", "/q/item-0000000002"])
        var ephemeralSequential = try client.create("/q/lock-", flags: 3)
        #expect(try ephemeralSequential.body.string() == "/q/lock-0000000003")

        // TTL nodes need createTTL and a positive TTL; they go when unmodified and childless.
        #expect(try client.create("/ttl", flags: 5, op: .create2).err == TreeError.badArguments.rawValue)
        #expect(try client.create("/ttl", flags: 5, op: .createTTL, ttl: 0).err == TreeError.badArguments.rawValue)
        var ttl = try client.create("/ttl", flags: 5, op: .createTTL, ttl: 1000)
        #expect(ttl.err == 0)
        _ = try ttl.body.string()
        #expect(try ttl.stat().ephemeralOwner == 0)  // as ZooKeeper shows TTL and container nodes
        #expect(try client.create("/ttl-long", flags: 5, op: .createTTL, ttl: 1 << 40).err == TreeError.badArguments.rawValue)
        #expect(try client.create("/box", flags: 4, op: .createContainer).err == 0)
        _ = try client.create("/box/only")
        #expect(try client.call(.delete, .delete(path: "/box/only", version: -1)).err == 0)
        server.clock.advance(milliseconds: 1500)
        _ = try server.store.expireDue()
        #expect(try client.call(.exists, .exists(path: "/ttl", watch: false)).err == TreeError.noNode.rawValue)
        #expect(try client.call(.exists, .exists(path: "/box", watch: false)).err == TreeError.noNode.rawValue)
    }

    @Test func watchesFireOnceInZxidOrderBeforeLaterReplies() throws {
        let server = try ZKTestServer()
        defer { server.stop() }
        let watcher = try ZKRawClient(port: server.port)
        try watcher.connect()
        let writer = try ZKRawClient(port: server.port)
        try writer.connect()
        _ = try writer.create("/w", "0")

        #expect(try watcher.call(.getData, .getData(path: "/w", watch: true)).err == 0)
        #expect(try watcher.call(.getData, .getData(path: "/w", watch: true)).err == 0)  // the same watch: one event
        #expect(try watcher.call(.exists, .exists(path: "/w/new", watch: true)).err == TreeError.noNode.rawValue)
        #expect(try watcher.call(.getChildren, .getChildren(path: "/w", watch: true)).err == 0)

        let first = try writer.call(.setData, .setData(path: "/w", data: Array("1".utf8), version: -1))
        let second = try writer.call(.setData, .setData(path: "/w", data: Array("2".utf8), version: -1))
        let created = try writer.create("/w/new")
        // The watcher's next reply must come after every event the changes fired.
        let read = try watcher.call(.getData, .getData(path: "/w", watch: false))
        #expect(watcher.events.map(\.type) == [3, 1, 4])  // NodeDataChanged once, NodeCreated, NodeChildrenChanged
        #expect(watcher.events.map(\.path) == ["/w", "/w/new", "/w"])
        #expect(watcher.events[0].zxid == first.zxid)
        #expect(watcher.events[1].zxid == created.zxid)
        #expect(watcher.arrivals.suffix(4) == [-1, -1, -1, read.xid])
        #expect(second.zxid > first.zxid)

        // Deleting a node with a data and a child watch from one connection: one NodeDeleted.
        #expect(try watcher.call(.getData, .getData(path: "/w/new", watch: true)).err == 0)
        #expect(try watcher.call(.getChildren, .getChildren(path: "/w/new", watch: true)).err == 0)
        #expect(try writer.call(.delete, .delete(path: "/w/new", version: -1)).err == 0)
        _ = try watcher.call(.ping, .ping)
        #expect(watcher.events.dropFirst(3).map(\.type) == [2])
        // Fired watches are gone from the store.
        #expect(server.store.watchCount == 0)
    }

    @Test func persistentWatchesAndRemoval() throws {
        let server = try ZKTestServer()
        defer { server.stop() }
        let client = try ZKRawClient(port: server.port)
        try client.connect()
        _ = try client.create("/p")
        #expect(try client.call(.addWatch, .addWatch(path: "/p", mode: 1)).err == 0)  // recursive
        _ = try client.create("/p/a")
        _ = try client.call(.setData, .setData(path: "/p/a", data: [1], version: -1))
        _ = try client.call(.setData, .setData(path: "/p/a", data: [2], version: -1))
        _ = try client.call(.ping, .ping)
        #expect(client.events.map(\.type) == [1, 3, 3])
        #expect(try client.call(.checkWatches, .checkWatches(path: "/p", type: 3)).err == 0)
        #expect(try client.call(.removeWatches, .removeWatches(path: "/p", type: 3)).err == 0)
        #expect(try client.call(.removeWatches, .removeWatches(path: "/p", type: 3)).err == TreeError.noWatcher.rawValue)
        #expect(try client.call(.checkWatches, .checkWatches(path: "/p", type: 1)).err == TreeError.noWatcher.rawValue)
        _ = try client.call(.setData, .setData(path: "/p/a", data: [3], version: -1))
        _ = try client.call(.ping, .ping)
        #expect(client.events.count == 3)
        #expect(server.store.watchCount == 0)
    }

    @Test func multiIsAllOrNothingWithPerOperationCodes() throws {
        let server = try ZKTestServer()
        defer { server.stop() }
        let client = try ZKRawClient(port: server.port)
        try client.connect()
        _ = try client.create("/m", "x")
        let failing = ZKRequest.multi([
            (.create, .create(path: "/m/a", data: [], acl: [.open], flags: 0, ttl: nil)),
            (.delete, .delete(path: "/m/missing", version: -1)),
            (.setData, .setData(path: "/m", data: [1], version: -1)),
        ])
        var failed = try client.call(.multi, failing)
        #expect(failed.err == 0)
        var codes: [Int32] = []
        while true {
            let type = try failed.body.int(), done = try failed.body.boolean(), err = try failed.body.int()
            if done { break }
            #expect(type == -1)
            codes.append(try failed.body.int())
            _ = err
        }
        #expect(codes == [0, TreeError.noNode.rawValue, TreeError.runtimeInconsistency.rawValue])
        #expect(try client.call(.exists, .exists(path: "/m/a", watch: false)).err == TreeError.noNode.rawValue)

        var ok = try client.call(.multi, .multi([
            (.check, .check(path: "/m", version: 0)),
            (.create, .create(path: "/m/a", data: [], acl: [.open], flags: 0, ttl: nil)),
            (.setData, .setData(path: "/m", data: [1], version: 0)),
        ]))
        #expect(ok.err == 0)
        #expect(try ok.body.int() == ZKOpCode.check.rawValue)
        _ = try ok.body.boolean(); _ = try ok.body.int()
        #expect(try ok.body.int() == ZKOpCode.create.rawValue)
        _ = try ok.body.boolean(); _ = try ok.body.int()
        #expect(try ok.body.string() == "/m/a")
        #expect(try ok.body.int() == ZKOpCode.setData.rawValue)
        _ = try ok.body.boolean(); _ = try ok.body.int()
        #expect(try ok.stat().version == 1)

        // multiRead: each read answered on its own.
        var reads = try client.call(.multiRead, .multi([(.getData, .getData(path: "/m", watch: false)), (.getChildren, .getChildren(path: "/nope", watch: false))]))
        #expect(try reads.body.int() == ZKOpCode.getData.rawValue)
        _ = try reads.body.boolean(); _ = try reads.body.int()
        #expect(try reads.body.buffer() == [1])
        _ = try reads.stat()
        #expect(try reads.body.int() == -1)
        _ = try reads.body.boolean()
        #expect(try reads.body.int() == TreeError.noNode.rawValue)
    }

    /// Each operation of a multi is checked against the ACLs its predecessors leave: a node the
    /// multi creates with an ACL that shuts this client out cannot be given a child by it.
    @Test func aMultisACLChecksSeeItsEarlierOperations() throws {
        let server = try ZKTestServer()
        defer { server.stop() }
        let client = try ZKRawClient(port: server.port)
        try client.connect()
        let others = ACLEntry(perms: ACLEntry.all, scheme: "digest", id: "bob:0Xx5dQ6gpUzCqZKS6sqUUAbSKcM=")
        var failed = try client.call(.multi, .multi([
            (.create, .create(path: "/closed", data: [], acl: [others], flags: 0, ttl: nil)),
            (.create, .create(path: "/closed/child", data: [], acl: [.open], flags: 0, ttl: nil)),
        ]))
        #expect(failed.err == 0)
        var codes: [Int32] = []
        while true {
            _ = try failed.body.int()
            let done = try failed.body.boolean()
            _ = try failed.body.int()
            if done { break }
            codes.append(try failed.body.int())
        }
        #expect(codes == [0, TreeError.noAuth.rawValue])
        #expect(try client.call(.exists, .exists(path: "/closed", watch: false)).err == TreeError.noNode.rawValue)
        // An open ACL lets the same multi through.
        #expect(try client.call(.multi, .multi([
            (.create, .create(path: "/open", data: [], acl: [.open], flags: 0, ttl: nil)),
            (.create, .create(path: "/open/child", data: [], acl: [.open], flags: 0, ttl: nil)),
        ])).err == 0)
        #expect(try client.call(.exists, .exists(path: "/open/child", watch: false)).err == 0)
    }

    @Test func aclsWithDigestAndIPSchemes() throws {
        let server = try ZKTestServer()
        defer { server.stop() }
        let owner = try ZKRawClient(port: server.port)
        try owner.connect()
        #expect(try owner.call(.auth, .auth(type: 0, scheme: "digest", auth: Array("alice:secret".utf8))).err == 0)
        // `auth` becomes the client's digest identity.
        let auth = ACLEntry(perms: ACLEntry.all, scheme: "auth", id: "")
        #expect(try owner.create("/secret", "s", acl: [auth]).err == 0)
        var acl = try owner.call(.getACL, .getACL(path: "/secret"))
        #expect(try acl.body.int() == 1)
        let entry = ACLEntry(perms: try acl.body.int(), scheme: try acl.body.string() ?? "", id: try acl.body.string() ?? "")
        #expect(entry == ACLEntry(perms: ACLEntry.all, scheme: "digest", id: "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="))

        let stranger = try ZKRawClient(port: server.port)
        try stranger.connect()
        #expect(try stranger.call(.getData, .getData(path: "/secret", watch: false)).err == TreeError.noAuth.rawValue)
        #expect(try stranger.call(.setData, .setData(path: "/secret", data: [], version: -1)).err == TreeError.noAuth.rawValue)
        #expect(try stranger.create("/secret/child").err == TreeError.noAuth.rawValue)
        #expect(try stranger.call(.setACL, .setACL(path: "/secret", acl: [.open], version: -1)).err == TreeError.noAuth.rawValue)
        #expect(try stranger.create("/x", acl: [auth]).err == TreeError.invalidACL.rawValue)  // no identity to put there
        #expect(try stranger.create("/x", acl: [ACLEntry(perms: 31, scheme: "nosuch", id: "a")]).err == TreeError.invalidACL.rawValue)
        // The owner may read; a wrong setACL version is BadVersion; a right one bumps aversion.
        #expect(try owner.call(.getData, .getData(path: "/secret", watch: false)).err == 0)
        #expect(try owner.call(.setACL, .setACL(path: "/secret", acl: [.open], version: 4)).err == TreeError.badVersion.rawValue)
        var changed = try owner.call(.setACL, .setACL(path: "/secret", acl: [ACLEntry(perms: ACLEntry.read, scheme: "ip", id: "127.0.0.0/8")], version: 0))
        #expect(try changed.stat().aversion == 1)
        // An ip ACL: loopback clients may read, not write.
        #expect(try stranger.call(.getData, .getData(path: "/secret", watch: false)).err == 0)
        #expect(try stranger.call(.setData, .setData(path: "/secret", data: [], version: -1)).err == TreeError.noAuth.rawValue)
        #expect(try owner.call(.setACL, .setACL(path: "/secret", acl: [ACLEntry(perms: 1, scheme: "ip", id: "10.0.0.0/8")], version: -1)).err == TreeError.noAuth.rawValue)

        // A bad authentication answers AuthFailed and closes the connection.
        let failing = try ZKRawClient(port: server.port)
        try failing.connect()
        #expect(try failing.call(.auth, .auth(type: 0, scheme: "kerberos", auth: [1])).err == TreeError.authFailed.rawValue)
        #expect(failing.isClosed())
    }

    @Test func sessionsResumeOnANewConnectionAndExpire() throws {
        let server = try ZKTestServer()
        defer { server.stop() }
        let first = try ZKRawClient(port: server.port)
        let (timeout, session, password) = try first.connect(timeout: 6000)
        _ = try first.create("/eph", flags: 1)
        #expect(try first.call(.exists, .exists(path: "/later", watch: true)).err == TreeError.noNode.rawValue)
        _ = try first.create("/watched")
        let relative = try first.call(.getData, .getData(path: "/watched", watch: true)).zxid

        // Resume on a second connection: same session, the first connection is closed.
        let second = try ZKRawClient(port: server.port)
        let resumed = try second.connect(timeout: 6000, session: session, password: password, lastZxid: relative)
        #expect(resumed.session == session)
        #expect(resumed.timeout == timeout)
        #expect(first.isClosed())
        // Changes made while away are caught up by setWatches; the rest are watched again.
        let other = try ZKRawClient(port: server.port)
        try other.connect()
        _ = try other.call(.setData, .setData(path: "/watched", data: [9], version: -1))
        #expect(try second.call(.setWatches, .setWatches(relativeZxid: relative, data: ["/watched"], exist: ["/later"], child: [], persistent: [], persistentRecursive: [])).err == 0)
        #expect(second.events.map(\.type) == [3])
        _ = try other.create("/later")
        #expect(try second.nextEvent()?.type == 1)

        // A wrong password, or an unknown session: timeout 0, then closed.
        let forged = try ZKRawClient(port: server.port)
        #expect(try forged.connect(session: session, password: [UInt8](repeating: 7, count: 16)).timeout == 0)
        #expect(forged.isClosed())
        // A client that has seen more history than the server is refused.
        let ahead = try ZKRawClient(port: server.port)
        ahead.sendRaw({ var w = JuteWriter(); w.int(0); w.long(1 << 40); w.int(6000); w.long(0); w.buffer([UInt8](repeating: 0, count: 16)); return w.frame }())
        #expect(ahead.isClosed())

        // Expiry: no traffic for the timeout closes the session, its ephemerals and connection.
        server.clock.advance(milliseconds: Int64(timeout) + 1)
        _ = try server.store.expireDue()
        #expect(server.store.session(session) == nil)
        #expect(try other.call(.exists, .exists(path: "/eph", watch: false)).err == TreeError.noNode.rawValue)
        #expect(second.isClosed())
        let late = try ZKRawClient(port: server.port)
        #expect(try late.connect(session: session, password: password).timeout == 0)
    }

    @Test func closeSessionDeletesEphemeralsAtOnce() throws {
        let server = try ZKTestServer(policy: .always)
        defer { server.stop() }
        let client = try ZKRawClient(port: server.port)
        try client.connect()
        _ = try client.create("/e1", flags: 1)
        _ = try client.create("/e2", flags: 3)
        let observer = try ZKRawClient(port: server.port)
        try observer.connect()
        #expect(try observer.call(.exists, .exists(path: "/e1", watch: true)).err == 0)
        #expect(try client.call(.closeSession, .closeSession).err == 0)
        #expect(client.isClosed())
        #expect(try observer.nextEvent()?.type == 2)
        var children = try observer.call(.getChildren, .getChildren(path: "/", watch: false))
        #expect(try children.strings() == ["zookeeper"])
    }

    @Test func pipelinedWritesShareCommitsAndReadTheirOwnWrites() throws {
        let server = try ZKTestServer(policy: .always)
        defer { server.stop() }
        let client = try ZKRawClient(port: server.port)
        try client.connect()
        _ = try client.create("/pipe")
        var sent: [Int32] = []
        for i in 0..<200 { sent.append(client.send(.create, .create(path: "/pipe/n\(i)", data: [], acl: [.open], flags: 0, ttl: nil))) }
        sent.append(client.send(.getChildren, .getChildren(path: "/pipe", watch: false)))
        var replies: [ZKReply] = []
        for _ in sent { replies.append(try client.reply()) }
        #expect(replies.map(\.xid) == sent)
        #expect(replies.dropLast().allSatisfy { $0.err == 0 })
        #expect(try replies[replies.count - 1].strings().count == 200)
        // zxids rise with the requests.
        #expect(zip(replies.dropLast(2), replies.dropFirst().dropLast()).allSatisfy { $0.zxid < $1.zxid })
    }

    /// Under `always`, the writes of several connections decided in one tick are synced by the
    /// log's flusher while the loop reads on (one connection's, by the loop itself). Either
    /// way a reply goes out only once its txn is durable, and each connection's replies keep
    /// their order. Syncs are slowed, so a reply sent before its sync would be seen.
    @Test func writesOfManyConnectionsAreAnsweredOnlyOnceDurable() throws {
        let metrics = TestMetrics()
        let server = try ZKTestServer(policy: .always, metrics: metrics)
        defer { server.stop() }
        server.disk.observeSyncs { _ in usleep(500) }
        defer { server.disk.observeSyncs(nil) }
        let clients = try (0..<8).map { _ in try ZKRawClient(port: server.port) }
        for client in clients { try client.connect() }
        var made = 0
        for round in 0..<25 {
            let sent = clients.enumerated().map { c, client in
                (0..<2).map { k in client.send(.create, .create(path: "/r\(round)-c\(c)-\(k)", data: [], acl: [.open], flags: 0, ttl: nil)) }
            }
            for (c, client) in clients.enumerated() {
                for xid in sent[c] {
                    let reply = try client.reply()
                    let durable = server.store.log.durableLogIndex
                    #expect(reply.xid == xid, "replies in request order")
                    #expect(reply.err == 0)
                    #expect(UInt64(reply.zxid) <= durable, "the reply at zxid \(reply.zxid) came before its sync (durable: \(durable))")
                    made += 1
                }
            }
        }
        #expect(made == 400)
        #expect(try clients[0].call(.getAllChildrenNumber, .getAllChildrenNumber(path: "/")).err == 0)
        #expect(server.store.stateView().tree.count == 400 + 4, "every node made (and /, /zookeeper and its two children)")
        let byFlusher = try metrics.expectCounter("cairn_zk_group_commits", [("synced_by", "flusher")]).totalValue
        let byLoop = try metrics.expectCounter("cairn_zk_group_commits", [("synced_by", "loop")]).totalValue
        #expect(byFlusher > 0, "several connections' writes in a tick are synced by the flusher (loop: \(byLoop))")
    }

    /// A server that stops while a group commit syncs in the background waits for it a moment,
    /// then stops handing answers to its loops: a sync that ends after the stop (here held until
    /// then) reaches no loop that has shut down, and its txns are durable all the same.
    @Test func stoppingWhileTheFlusherSyncsLosesNothing() throws {
        let server = try ZKTestServer(policy: .always)
        var stopped = false
        defer { if !stopped { server.stop() } }
        let clients = try (0..<4).map { _ in try ZKRawClient(port: server.port) }
        for client in clients { try client.connect() }
        // The first create's sync (by the loop: one connection) is held, so the other three
        // arrive meanwhile and are decided in one tick: their sync goes to the flusher, whose
        // syncs are then held too.
        let flusherSyncs = DispatchSemaphore(value: 0)
        server.disk.observeSyncs { _ in
            if MultiThreadedEventLoopGroup.currentEventLoop == nil { flusherSyncs.wait() }
        }
        server.disk.holdSyncs()
        _ = clients[0].send(.create, .create(path: "/held0", data: [], acl: [.open], flags: 0, ttl: nil))
        let deadline = Date().addingTimeInterval(10)
        while server.store.log.lastIndex == server.store.log.durableLogIndex && Date() < deadline { usleep(1000) }
        for c in 1..<4 { _ = clients[c].send(.create, .create(path: "/held\(c)", data: [], acl: [.open], flags: 0, ttl: nil)) }
        usleep(50_000)  // the three are in the loop's sockets
        server.disk.releaseSyncs()
        #expect(try clients[0].reply().err == 0, "the loop's own sync answers the first")
        while server.store.log.lastIndex < server.store.log.durableLogIndex + 3 && Date() < deadline { usleep(1000) }
        #expect(server.store.log.lastIndex == server.store.log.durableLogIndex + 3, "three creates decided, their sync held")
        // Strict: scheduling on a loop that has shut down crashes instead of printing a warning.
        setenv("SWIFTNIO_STRICT", "1", 1)
        let listener = server.server
        let stopping = Thread { try? listener.stop() }
        stopping.start()
        // The stop waits 1 s for the held batch, closes the gate and shuts the loops down;
        // only then does the sync end and its answer come.
        while !stopping.isFinished && Date() < deadline.addingTimeInterval(10) { usleep(1000) }
        #expect(stopping.isFinished, "the server stopped with a sync still held")
        flusherSyncs.signal()
        server.disk.observeSyncs(nil)
        for client in clients.dropFirst() { #expect(throws: (any Error).self) { try client.reply() } }  // closed unanswered
        try server.store.close()
        stopped = true
        let reopened = try Store.open(directory: "/store", options: StoreOptions(fsyncPolicy: .always, clock: server.clock, fileSystem: server.disk, activeExpiry: false))
        defer { try? reopened.close() }
        for c in 0..<4 { #expect(try reopened.exists("/held\(c)") != nil, "/held\(c) was logged before the stop") }
    }

    @Test func metricsCountRequestsAndGroupCommits() throws {
        let metrics = TestMetrics()
        let server = try ZKTestServer(policy: .always, metrics: metrics)
        defer { server.stop() }
        let client = try ZKRawClient(port: server.port)
        try client.connect()
        for i in 0..<10 { _ = client.send(.create, .create(path: "/m\(i)", data: [], acl: [.open], flags: 0, ttl: nil)) }
        for _ in 0..<10 { #expect(try client.reply().err == 0) }
        #expect(try client.call(.exists, .exists(path: "/m9", watch: false)).err == 0)
        #expect(try metrics.expectCounter("cairn_zk_requests").totalValue == 11)
        #expect(try metrics.expectTimer("cairn_zk_commit_wait").values.count >= 1)
    }

    /// A write the disk refuses to sync is never acknowledged: the connection closes instead.
    @Test func aFailedSyncIsNeverAcknowledged() throws {
        let server = try ZKTestServer(policy: .always)
        defer { server.stop() }
        let client = try ZKRawClient(port: server.port)
        try client.connect()
        #expect(try client.create("/before").err == 0)
        server.disk.inject(.init(.sync, pathContains: "log-"))
        _ = client.send(.create, .create(path: "/lost", data: [], acl: [.open], flags: 0, ttl: nil))
        #expect(throws: (any Error).self) { try client.reply() }  // no reply, the connection closed
        #expect(client.isClosed())
    }

    @Test func hostileInputClosesOnlyThatConnection() throws {
        let server = try ZKTestServer(maxFrame: 4096)
        defer { server.stop() }
        let good = try ZKRawClient(port: server.port)
        try good.connect()
        func frame(_ bytes: [UInt8]) -> [UInt8] { var w = JuteWriter(); w.int(Int32(bytes.count)); return w.bytes + bytes }

        let negative = try ZKRawClient(port: server.port)
        negative.sendRaw([0xFF, 0xFF, 0xFF, 0xF0])
        #expect(negative.isClosed())
        let oversized = try ZKRawClient(port: server.port)
        try oversized.connect()
        oversized.sendRaw([0, 0, 0x20, 0] + [UInt8](repeating: 0, count: 16))  // 8192 > 4096
        #expect(oversized.isClosed())
        let beforeConnect = try ZKRawClient(port: server.port)
        var w = JuteWriter()
        ZKCodec.encode(xid: 1, op: .getData, .getData(path: "/", watch: false), into: &w)
        beforeConnect.sendRaw(w.frame)  // a request where the connect request belongs
        #expect(beforeConnect.isClosed())
        let unknownOp = try ZKRawClient(port: server.port)
        try unknownOp.connect()
        unknownOp.sendRaw(frame([0, 0, 0, 1, 0, 0, 0x7F, 0x7F]))
        let unimplemented = try unknownOp.reply()
        #expect(unimplemented.xid == 1)
        #expect(unimplemented.err == TreeError.unimplemented.rawValue)
        #expect(unknownOp.isClosed())
        let truncated = try ZKRawClient(port: server.port)
        try truncated.connect()
        truncated.sendRaw(frame([0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 9, 0x2F]))  // getData with a cut path
        #expect(truncated.isClosed())
        // The server and the well-behaved session carry on.
        #expect(try good.call(.exists, .exists(path: "/", watch: false)).err == 0)
    }

    @Test func fourLetterWords() throws {
        let server = try ZKTestServer()
        defer { server.stop() }
        let client = try ZKRawClient(port: server.port)
        try client.connect()
        _ = try client.create("/flw", flags: 1)
        _ = try client.call(.getData, .getData(path: "/flw", watch: true))
        func ask(_ word: String) throws -> String {
            let raw = try RawClient(port: server.port)
            raw.send(word)
            var text = [UInt8]()
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = chunk.withUnsafeMutableBytes { recv(raw.fd, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                text += chunk[0..<n]
            }
            return String(decoding: text, as: UTF8.self)
        }
        #expect(try ask("ruok") == "imok")
        #expect(try ask("isro") == "rw")
        #expect(try ask("srvr").contains("Mode: standalone"))
        #expect(try ask("srvr").contains("Node count: 5"))  // /, /zookeeper, its config and quota, /flw
        #expect(try ask("stat").contains("sid=0x\(String(client.sessionID, radix: 16))"))
        let mntr = try ask("mntr")
        #expect(mntr.contains("zk_znode_count\t5"))
        #expect(mntr.contains("zk_ephemerals_count\t1"))
        #expect(mntr.contains("zk_watch_count\t1"))
        #expect(try ask("conf").contains("maxSessionTimeout=40000"))
        #expect(try ask("cons").contains("lop=GETD"))
        #expect(try ask("wchs").contains("1 connections watching 1 paths"))
        #expect(try ask("wchc").contains("/flw"))
        #expect(try ask("dump").contains("\t/flw"))
        #expect(try ask("envi").contains("zookeeper.version="))
    }
}
