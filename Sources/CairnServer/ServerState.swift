import Cairn
import CairnStorage
import CoreMetrics
import Foundation
import Logging
import Synchronization

/// Settings of `cairn serve`'s RESP listener.
public struct RESPServerOptions: Sendable {
    public var host = "127.0.0.1"
    public var port = 6379
    /// `requirepass`: when set, every command but AUTH / HELLO AUTH answers NOAUTH.
    public var password: String?
    public var maxClients = 10_000
    public var limits = RESPLimits()
    /// Redis's protected mode: without a password, clients from beyond loopback are refused.
    public var protectedMode = true
    /// Start and stop lines, and warnings; nothing per request. Silent by default.
    public var logger = Logger(label: "cairn.resp", factory: { _ in SwiftLogNoOpLogHandler() })
    /// Where `cairn_resp_commands` (a counter) and `cairn_resp_commit_wait` (a timer per write
    /// batch that waited for its group commit) go; the process's metrics system when nil.
    public var metrics: (any MetricsFactory)?
    /// What INFO's memory section reports as `mem_allocator` (`cairn serve` sets its own).
    public var allocator = "libc"

    public init() {}
}

/// What every connection shares: the store, settings that CONFIG SET changes, clients,
/// pub/sub subscriptions, clients blocked in BLPOP/BRPOP, and counters for INFO.
final class ServerState: @unchecked Sendable {
    let store: Store
    let lock = Lock()
    var options: RESPServerOptions
    let startedAt = Date()
    private var nextClientID: Int64 = 0
    var clients: [Int64: ClientInfo] = [:]
    var totalConnections = 0
    /// Counted without the lock: every command adds one.
    let totalCommands = Atomic<Int>(0)
    /// Clients blocked in BLPOP/BRPOP: a push looks at the registry only when some are.
    let blockedCount = Atomic<Int>(0)
    var rejectedConnections = 0
    var lastSave: Int64
    var channels: [Bytes: [Int64: Subscriber]] = [:]
    var patterns: [Bytes: [Int64: Subscriber]] = [:]
    var blocked: [Bytes: [BlockedClient]] = [:]
    /// SHUTDOWN: what the embedding program does to stop (set by `RESPServer.onShutdown`).
    var shutdownHandler: (@Sendable () -> Void)?

    let commandCounter: Counter
    let commitWait: CoreMetrics.Timer
    /// Group commit led by each event loop (see ``LoopCommitter``).
    let committers: PerLoop<LoopCommitter>
    /// Closed when the server stops: no group commit's answer reaches a loop after that.
    let commitGate: StopGate

    init(store: Store, options: RESPServerOptions) {
        self.store = store
        self.options = options
        let factory = options.metrics ?? MetricsSystem.factory
        commandCounter = Counter(label: "cairn_resp_commands", factory: factory)
        commitWait = CoreMetrics.Timer(label: "cairn_resp_commit_wait", factory: factory)
        let gate = StopGate()
        commitGate = gate
        committers = PerLoop { loop in
            guard let loop = loop as? PollLoop else { preconditionFailure("RESP connections run on a PollLoop, not \(loop)") }
            return LoopCommitter(store: store, loop: loop, commitWait: nil, sendReplies: { loop.flushNow() }, stopped: gate,
                                 backgroundAt: 64, metrics: "cairn_resp", factory: factory)
        }
        lastSave = Int64(Date().timeIntervalSince1970)
    }

    struct ClientInfo {
        var id: Int64
        var address: String
        var name: String?
        var connectedAt: Date
        var db = 0
    }

    /// Something a published message is handed to, on the subscriber's own event loop.
    struct Subscriber {
        let deliver: @Sendable (RESPValue) -> Void
    }

    /// A client waiting in BLPOP/BRPOP; `wake` runs on its event loop and retries the pop.
    struct BlockedClient {
        let id: Int64
        let wake: @Sendable () -> Void
    }

    func register(address: String) -> Int64? {
        lock.withLock {
            guard clients.count < options.maxClients else {
                rejectedConnections += 1
                return nil
            }
            nextClientID += 1
            totalConnections += 1
            clients[nextClientID] = ClientInfo(id: nextClientID, address: address, connectedAt: Date())
            return nextClientID
        }
    }

    func unregister(_ id: Int64) {
        lock.withLock {
            clients[id] = nil
            for key in channels.keys { channels[key]?[id] = nil; if channels[key]?.isEmpty == true { channels[key] = nil } }
            for key in patterns.keys { patterns[key]?[id] = nil; if patterns[key]?.isEmpty == true { patterns[key] = nil } }
            for key in blocked.keys { blocked[key]?.removeAll { $0.id == id }; if blocked[key]?.isEmpty == true { blocked[key] = nil } }
        }
    }

    // MARK: Pub/sub

    /// Delivers to every subscriber of the channel and of a matching pattern; returns how many.
    func publish(_ channel: Bytes, _ message: Bytes) -> Int {
        let (direct, matched): ([Subscriber], [(Bytes, Subscriber)]) = lock.withLock {
            let direct = Array((channels[channel] ?? [:]).values)
            var matched: [(Bytes, Subscriber)] = []
            for (pattern, subscribers) in patterns where Glob.matches(pattern, channel) {
                for subscriber in subscribers.values { matched.append((pattern, subscriber)) }
            }
            return (direct, matched)
        }
        for subscriber in direct { subscriber.deliver(.push([.bulk("message"), .bulk(channel), .bulk(message)])) }
        for (pattern, subscriber) in matched {
            subscriber.deliver(.push([.bulk("pmessage"), .bulk(pattern), .bulk(channel), .bulk(message)]))
        }
        return direct.count + matched.count
    }

    // MARK: Blocking pops

    func block(_ client: BlockedClient, on keys: [Bytes]) {
        lock.withLock { for key in keys { blocked[key, default: []].append(client) } }
        blockedCount.add(1, ordering: .relaxed)
    }

    func unblock(_ id: Int64) {
        lock.withLock {
            for key in blocked.keys { blocked[key]?.removeAll { $0.id == id }; if blocked[key]?.isEmpty == true { blocked[key] = nil } }
        }
        blockedCount.subtract(1, ordering: .relaxed)
    }

    /// A push committed on these keys: wakes the clients blocked on them, oldest first.
    func keysPushed(_ keys: [Bytes]) {
        guard blockedCount.load(ordering: .relaxed) > 0 else { return }
        let waiting: [BlockedClient] = lock.withLock {
            guard !blocked.isEmpty else { return [] }
            var seen = Set<Int64>()
            var result: [BlockedClient] = []
            for key in keys { for client in blocked[key] ?? [] where seen.insert(client.id).inserted { result.append(client) } }
            return result
        }
        for client in waiting { client.wake() }
    }
}
