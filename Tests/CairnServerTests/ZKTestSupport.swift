import Cairn
import CairnServer
import CairnStorage
import CairnTesting
import CoreMetrics
import Foundation
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A store behind a ZooKeeper listener on a free loopback port, on a simulated disk, with a
/// manual clock for session expiry; stopped by `stop()`.
final class ZKTestServer {
    let store: Store
    let server: ZKServer
    let clock = ManualClock()
    let disk = SimulatedFileSystem()
    var port: Int { server.port }

    init(policy: FsyncPolicy = .everysec, maxFrame: Int = ZKCodec.defaultMaxFrame, metrics: (any MetricsFactory)? = nil) throws {
        let options = StoreOptions(fsyncPolicy: policy, clock: clock, fileSystem: disk, activeExpiry: false)
        store = try Store.open(directory: "/store", options: options)
        var serverOptions = ZKServerOptions()
        serverOptions.port = 0
        serverOptions.maxFrame = maxFrame
        serverOptions.metrics = metrics
        server = try ZKServer.start(store: store, options: serverOptions)
    }

    func stop() {
        try? server.stop()
        try? store.close()
    }
}

/// A reply frame: its header and a reader over its body.
struct ZKReply {
    var xid: Int32
    var zxid: Int64
    var err: Int32
    var body: JuteReader

    mutating func stat() throws -> Cairn.Stat {
        var stat = Cairn.Stat()
        stat.czxid = try body.long(); stat.mzxid = try body.long(); stat.ctime = try body.long(); stat.mtime = try body.long()
        stat.version = try body.int(); stat.cversion = try body.int(); stat.aversion = try body.int()
        stat.ephemeralOwner = try body.long(); stat.dataLength = try body.int(); stat.numChildren = try body.int(); stat.pzxid = try body.long()
        return stat
    }

    mutating func strings() throws -> [String] {
        try body.vector(minimumItemSize: 4) { (r: inout JuteReader) throws(JuteError) -> String in try r.string() ?? "" } ?? []
    }
}

/// A raw ZooKeeper client over a blocking socket (5 s read timeout): frames, the handshake,
/// requests with increasing xids, and watch events set aside as they arrive.
final class ZKRawClient {
    let socket: RawClient
    private var buffer: [UInt8] = []
    private var xid: Int32 = 0
    private(set) var sessionID: Int64 = 0
    private(set) var password: [UInt8] = []
    private(set) var timeout: Int32 = 0
    /// Watch events (xid -1) received so far, in order: (type, path, zxid).
    var events: [(type: Int32, path: String, zxid: Int64)] = []
    /// Every frame's xid in arrival order (to check events come before later replies).
    var arrivals: [Int32] = []

    init(port: Int) throws {
        socket = try RawClient(port: port)
    }

    /// Connects, as a new session or resuming one; returns the ConnectResponse fields.
    @discardableResult
    func connect(timeout: Int32 = 10_000, session: Int64 = 0, password: [UInt8] = [UInt8](repeating: 0, count: 16), lastZxid: Int64 = 0) throws -> (timeout: Int32, session: Int64, password: [UInt8]) {
        var w = JuteWriter()
        w.int(0); w.long(lastZxid); w.int(timeout); w.long(session); w.buffer(password); w.boolean(false)
        socket.send(w.frame)
        guard let frame = readFrame() else { throw CairnCLIError("no connect response") }
        var r = JuteReader(frame)
        _ = try r.int()
        let negotiated = try r.int(), id = try r.long(), secret = try r.buffer() ?? []
        (self.timeout, sessionID, self.password) = (negotiated, id, secret)
        return (negotiated, id, secret)
    }

    func readFrame() -> [UInt8]? {
        while true {
            if buffer.count >= 4 {
                let length = Int(UInt32(buffer[0]) << 24 | UInt32(buffer[1]) << 16 | UInt32(buffer[2]) << 8 | UInt32(buffer[3]))
                if buffer.count >= 4 + length {
                    let frame = Array(buffer[4..<4 + length])
                    buffer.removeFirst(4 + length)
                    return frame
                }
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(socket.fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return nil }
            buffer.append(contentsOf: chunk[0..<n])
        }
    }

    /// Sends a request without reading; returns its xid.
    @discardableResult
    func send(_ op: ZKOpCode, _ request: ZKRequest) -> Int32 {
        xid += 1
        var w = JuteWriter()
        ZKCodec.encode(xid: xid, op: op, request, into: &w)
        socket.send(w.frame)
        return xid
    }

    /// The next reply that is not a watch event (events are collected in ``events``).
    func reply() throws -> ZKReply {
        while let frame = readFrame() {
            var r = JuteReader(frame)
            let xid = try r.int(), zxid = try r.long(), err = try r.int()
            arrivals.append(xid)
            if xid == -1 {
                let type = try r.int()
                _ = try r.int()
                events.append((type, try r.string() ?? "", zxid))
                continue
            }
            return ZKReply(xid: xid, zxid: zxid, err: err, body: r)
        }
        throw CairnCLIError("connection closed or timed out waiting for a reply")
    }

    /// Sends and waits for the reply.
    func call(_ op: ZKOpCode, _ request: ZKRequest) throws -> ZKReply {
        let sent = send(op, request)
        let answer = try reply()
        guard answer.xid == sent || sent < 0 || answer.xid < 0 else { throw CairnCLIError("reply xid \(answer.xid) for request \(sent)") }
        return answer
    }

    /// Waits (bounded) for one more watch event.
    func nextEvent() throws -> (type: Int32, path: String, zxid: Int64)? {
        let before = events.count
        while events.count == before {
            guard let frame = readFrame() else { return nil }
            var r = JuteReader(frame)
            let xid = try r.int(), zxid = try r.long(), _ = try r.int()
            arrivals.append(xid)
            guard xid == -1 else { throw CairnCLIError("unexpected reply \(xid) while waiting for an event") }
            let type = try r.int()
            _ = try r.int()
            events.append((type, try r.string() ?? "", zxid))
        }
        return events.last
    }

    func sendRaw(_ bytes: [UInt8]) { socket.send(bytes) }
    func isClosed() -> Bool { socket.isClosed() }

    // Conveniences.
    func create(_ path: String, _ data: String = "", flags: Int32 = 0, acl: [ACLEntry] = [.open], op: ZKOpCode = .create2, ttl: Int64? = nil) throws -> ZKReply {
        try call(op, .create(path: path, data: Array(data.utf8), acl: acl, flags: flags, ttl: ttl))
    }
}
