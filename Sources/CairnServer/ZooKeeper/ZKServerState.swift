import Cairn
import CairnStorage
import Crypto
import Foundation
import CoreMetrics
import Logging
import NIOCore
import Synchronization

/// Settings of `cairn serve`'s ZooKeeper listener.
public struct ZKServerOptions: Sendable {
    public var host = "127.0.0.1"
    public var port = 2181
    /// ZooKeeper's `tickTime`: the default timeout bounds are 2 and 20 ticks.
    public var tickTime: Int32 = 2000
    /// The session timeouts a client may negotiate, in milliseconds (requests are clamped).
    public var minSessionTimeout: Int32 = 4000
    public var maxSessionTimeout: Int32 = 40_000
    /// `jute.maxbuffer`: a frame longer than this closes its connection.
    public var maxFrame = ZKCodec.defaultMaxFrame
    public var maxClients = 10_000
    /// The key session passwords are derived from (HMAC-SHA256 of the session id). Keep it
    /// across restarts so clients can resume their sessions: `cairn serve` stores it in the
    /// data directory.
    public var sessionSecret: [UInt8] = (0..<32).map { _ in UInt8.random(in: 0...255) }
    /// What `conf` reports as the data directory.
    public var dataDirectory = ""
    /// Start and stop lines, closed connections and why; nothing per request.
    public var logger = Logger(label: "cairn.zk", factory: { _ in SwiftLogNoOpLogHandler() })
    /// Where `cairn_zk_requests` (a counter, by op) and `cairn_zk_commit_wait` (a timer per
    /// group commit the event loop led) go; the process's metrics system when nil.
    public var metrics: (any MetricsFactory)?

    public init() {}
}

/// Counters of one connection, for the four-letter words (`cons`, `stat`): written by its
/// event loop, read by any.
final class ZKClientInfo: @unchecked Sendable {
    let lock = Lock()
    let address: String
    let established = Date()
    var sessionID: Int64 = 0
    var timeout: Int32 = 0
    var received = 0
    var sent = 0
    var lastOperation = "NA"
    var lastCxid: Int32 = 0
    var lastZxid: Int64 = 0
    var lastResponse = Date()
    var lastLatency = 0.0
    var latency = LatencyStats()
    /// The connection's watches and the events they fired.
    let outbox = ZKWatchOutbox()
    /// Closes this connection from any thread (a resumed session moves to a new one).
    var close: @Sendable () -> Void = {}

    init(address: String) { self.address = address }

    /// `cons`' line for this connection.
    var line: String {
        lock.withLock {
            var text = " \(address)[1](queued=0,recved=\(received),sent=\(sent)"
            if sessionID != 0 {
                text += ",sid=0x\(String(sessionID, radix: 16)),lop=\(lastOperation),est=\(Int64(established.timeIntervalSince1970 * 1000)),to=\(timeout)"
                text += ",lcxid=0x\(String(lastCxid, radix: 16)),lzxid=0x\(String(lastZxid, radix: 16)),lresp=\(Int64(lastResponse.timeIntervalSince1970 * 1000))"
                text += ",llat=\(Int(lastLatency)),minlat=\(Int(latency.min)),avglat=\(Int(latency.average)),maxlat=\(Int(latency.max))"
            }
            return text + ")"
        }
    }
}

/// Minimum, average and maximum of request latencies in milliseconds.
struct LatencyStats {
    var count = 0
    var total = 0.0
    var min = 0.0
    var max = 0.0
    var average: Double { count == 0 ? 0 : total / Double(count) }

    mutating func add(_ milliseconds: Double) {
        if count == 0 || milliseconds < min { min = milliseconds }
        if milliseconds > max { max = milliseconds }
        total += milliseconds
        count += 1
    }
}

/// What every ZooKeeper connection shares: the store, settings, the session key, live
/// connections (by session, so a resumed session leaves its old connection), and counters.
final class ZKServerState: @unchecked Sendable {
    let store: Store
    let options: ZKServerOptions
    private let key: SymmetricKey
    let startedAt = Date()
    let lock = Lock()
    private var clients: [ObjectIdentifier: ZKClientInfo] = [:]
    private var bySession: [Int64: ZKClientInfo] = [:]
    let packetsReceived = Atomic<Int>(0)
    let packetsSent = Atomic<Int>(0)
    var latency = LatencyStats()
    let requests: Counter
    let commitWait: CoreMetrics.Timer

    init(store: Store, options: ZKServerOptions) {
        self.store = store
        self.options = options
        key = SymmetricKey(data: options.sessionSecret)
        let factory = options.metrics ?? MetricsSystem.factory
        requests = Counter(label: "cairn_zk_requests", factory: factory)
        commitWait = CoreMetrics.Timer(label: "cairn_zk_commit_wait", factory: factory)
        let flushers = PerLoop { LoopFlusher.flusher(loop: $0) }
        self.flushers = flushers
        let gate = StopGate()
        commitGate = gate
        committers = PerLoop { [commitWait] loop in
            let flusher = flushers[loop]
            return LoopCommitter(store: store, loop: loop, commitWait: commitWait, sendReplies: { flusher.runNow() }, stopped: gate, metrics: "cairn_zk", factory: factory)
        }
    }

    /// A session's password: the first 16 bytes of HMAC-SHA256(secret, id). Nothing to store,
    /// and only the holder of the secret can produce it.
    func password(for session: Int64) -> [UInt8] {
        var id = session.bigEndian
        let message = withUnsafeBytes(of: &id) { Array($0) }
        return Array(HMAC<SHA256>.authenticationCode(for: message, using: key).prefix(16))
    }

    /// Compares in constant time (a password must not leak through timing).
    static func same(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    func register(_ info: ZKClientInfo) -> Bool {
        lock.withLock {
            guard clients.count < options.maxClients else { return false }
            clients[ObjectIdentifier(info)] = info
            return true
        }
    }

    func unregister(_ info: ZKClientInfo) {
        lock.withLock {
            clients[ObjectIdentifier(info)] = nil
            let session = info.lock.withLock { info.sessionID }
            if session != 0, bySession[session] === info { bySession[session] = nil }
        }
    }

    /// Attaches a session to a connection; the connection it was on (if another) is closed.
    func attach(_ session: Int64, to info: ZKClientInfo) {
        let previous: ZKClientInfo? = lock.withLock {
            let previous = bySession[session]
            bySession[session] = info
            return previous === info ? nil : previous
        }
        previous?.close()
    }

    var connections: [ZKClientInfo] { lock.withLock { Array(clients.values) } }

    let committers: PerLoop<LoopCommitter>
    /// Closed when the server stops: no group commit's answer reaches a loop after that.
    let commitGate: StopGate
    /// Replies flushed once per loop tick (see ``LoopFlusher``).
    let flushers: PerLoop<LoopFlusher>

    func recordLatency(_ milliseconds: Double) {
        lock.withLock { latency.add(milliseconds) }
    }
}
