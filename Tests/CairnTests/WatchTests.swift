import Cairn
import CairnStorage
import CairnTesting
import Testing

/// Collects watch events for assertions.
final class EventLog: @unchecked Sendable {
    private let lock = Lock()
    private var storage: [(String, WatchEvent)] = []
    func handler(_ name: String) -> WatchHandler { { event in self.lock.withLock { self.storage.append((name, event)) } } }
    var events: [(String, WatchEvent)] { lock.withLock { storage } }
    var types: [String] { events.map { "\($0.0):\($0.1.type):\($0.1.path)" } }
}

@Suite struct WatchTests {
    @Test func oneShotWatchesFireOnceAfterCommit() throws {
        let (store, _, _) = try makeStore()
        let log = EventLog()
        #expect(try store.exists("/a", watch: log.handler("exists")) == nil)
        try store.create("/a", data: "1")
        #expect(log.types == ["exists:nodeCreated:/a"])
        #expect(log.events[0].1.zxid == Int64(store.log.lastIndex), "the event carries the change's zxid")

        _ = try store.getData("/a", watch: log.handler("data"))
        _ = try store.getChildren("/a", watch: log.handler("children"))
        try store.setData("/a", data: "2")
        try store.setData("/a", data: "3")  // the data watch has fired already: one-shot
        #expect(log.types == ["exists:nodeCreated:/a", "data:nodeDataChanged:/a"])

        try store.create("/a/child")
        #expect(log.types.last == "children:nodeChildrenChanged:/a")
        _ = try store.getData("/a/child", watch: log.handler("childdata"))
        _ = try store.getChildren("/a", watch: log.handler("children2"))
        try store.delete("/a/child")
        #expect(Array(log.types.suffix(2)) == ["childdata:nodeDeleted:/a/child", "children2:nodeChildrenChanged:/a"])
        #expect(store.watchCount == 0)
        try store.close()
    }

    @Test func getDataOnAMissingNodeSetsNoWatch() throws {
        let (store, _, _) = try makeStore()
        let log = EventLog()
        #expect(throws: TreeError.noNode) { try store.getData("/none", watch: log.handler("x")) }
        #expect(throws: TreeError.noNode) { try store.getChildren("/none", watch: log.handler("x")) }
        try store.create("/none")
        #expect(log.events.isEmpty && store.watchCount == 0)
        try store.close()
    }

    @Test func persistentAndRecursiveWatchesStay() throws {
        let (store, _, _) = try makeStore()
        let log = EventLog()
        try store.create("/p")
        let persistent = try store.addWatch("/p", recursive: false, log.handler("p"))
        let recursive = try store.addWatch("/", recursive: true, log.handler("r"))
        try store.setData("/p", data: "1")
        try store.create("/p/c")
        try store.setData("/p/c", data: "x")
        try store.delete("/p/c")
        #expect(log.types == [
            "p:nodeDataChanged:/p", "r:nodeDataChanged:/p",
            "r:nodeCreated:/p/c", "p:nodeChildrenChanged:/p",
            "r:nodeDataChanged:/p/c",
            "r:nodeDeleted:/p/c", "p:nodeChildrenChanged:/p",
        ])
        #expect(store.removeWatch(persistent) && store.removeWatch(recursive))
        #expect(store.removeWatch(recursive) == false)
        try store.setData("/p", data: "2")
        #expect(log.events.count == 7)
        try store.close()
    }

    @Test func eventsArriveInIndexOrderFromConcurrentWriters() async throws {
        let (store, _, _) = try makeStore(.always)
        let log = EventLog()
        try await store.create("/c")
        _ = try store.addWatch("/c", recursive: true, log.handler("r"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<8 {
                group.addTask { for i in 0..<20 { try await store.create("/c/w\(writer)-\(i)") } }
            }
            try await group.waitForAll()
        }
        let zxids = log.events.map(\.1.zxid)
        #expect(zxids.count == 160)
        #expect(zxids == zxids.sorted(), "watch events are delivered in zxid order")
        try store.close()
    }

    @Test func aFailedMultiFiresNothing() throws {
        let (store, _, _) = try makeStore()
        let log = EventLog()
        #expect(try store.exists("/m", watch: log.handler("e")) == nil)
        let reply = try store.multi([
            .createNode(path: "/m", data: "", kind: .persistent, sequential: false, ttl: 0, owner: 0),
            .checkNode(path: "/missing", version: -1),
        ])
        #expect(reply == .multiFailed(codes: [0, TreeError.noNode.rawValue]))
        #expect(log.events.isEmpty && store.watchCount == 1)
        try store.close()
    }
}
