import CairnServer
import CairnStorage
import CairnTesting
import Foundation
import Histogram
#if canImport(Glibc)
import Glibc
#endif

/// A ZooKeeper load generator that is not client-bound: one thread and one connection per
/// client, each keeping `pipeline` requests in flight, speaking the wire protocol directly.
/// It measures any ZooKeeper server (Cairn's listener or Apache ZooKeeper) the same way.
public enum ZKLoad {
    public enum Operation: String, CaseIterable, Sendable {
        case create, setData, getData, exists, getChildren, delete
    }

    public struct Result: Sendable {
        public var operation: Operation
        public var clients: Int
        public var pipeline: Int
        public var operations: Int
        public var seconds: Double
        public var errors: Int
        public var p50Milliseconds: Double
        public var p99Milliseconds: Double
        public var opsPerSecond: Double { Double(operations) / seconds }
    }

    public struct LoadError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Runs `operations` requests of one kind (split over the clients) and measures them.
    /// Setup (the parent, the nodes to read, set or delete) is not timed; everything made is
    /// removed afterwards.
    /// `threads` client threads share the connections, each driving its share with `poll`, so
    /// sixteen clients need not be sixteen threads competing with the server for the cores.
    public static func run(host: String, port: Int, operation: Operation, operations: Int, clients: Int, pipeline: Int, valueSize: Int = 100, threads: Int = 1) throws -> Result {
        precondition(clients >= 1 && pipeline >= 1 && operations >= clients && threads >= 1)
        let root = "/zkload-\(UInt32.random(in: 0...UInt32.max))"
        let admin = try Connection(host: host, port: port)
        try admin.expectOK(.create, .create(path: root, data: [], acl: [.open], flags: 0, ttl: nil))
        let perClient = operations / clients
        let value = [UInt8](repeating: 0x61, count: valueSize)
        // Nodes each client works on.
        let path: @Sendable (Int, Int) -> String = { client, i in "\(root)/c\(client)-\(i)" }
        let connections = try (0..<clients).map { _ in try Connection(host: host, port: port) }
        for client in 0..<clients {
            switch operation {
            case .delete:
                try connections[client].pipelined(perClient, depth: 64) { i in (.create, .create(path: path(client, i), data: value, acl: [.open], flags: 0, ttl: nil)) }
            case .setData, .getData, .exists:
                try connections[client].expectOK(.create, .create(path: path(client, 0), data: value, acl: [.open], flags: 0, ttl: nil))
            case .getChildren, .create:
                break
            }
        }
        if operation == .getChildren {
            for i in 0..<10 { try admin.expectOK(.create, .create(path: "\(root)/child\(i)", data: [], acl: [.open], flags: 0, ttl: nil)) }
        }

        let make: @Sendable (Int, Int) -> (ZKOpCode, ZKRequest) = { client, i in
            switch operation {
            case .create: return (.create, .create(path: path(client, i), data: value, acl: [.open], flags: 0, ttl: nil))
            case .setData: return (.setData, .setData(path: path(client, 0), data: value, version: -1))
            case .getData: return (.getData, .getData(path: path(client, 0), watch: false))
            case .exists: return (.exists, .exists(path: path(client, 0), watch: false))
            case .getChildren: return (.getChildren2, .getChildren(path: root, watch: false))
            case .delete: return (.delete, .delete(path: path(client, i), version: -1))
            }
        }
        let workers = min(threads, clients)
        let slots = (0..<workers).map { _ in Slot() }
        let group = DispatchGroup()
        let start = monotonicNanoseconds()
        for worker in 0..<workers {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                let slot = slots[worker]
                let mine = Array(stride(from: worker, to: clients, by: workers))
                do {
                    slot.errors = try drive(mine.map { (connections[$0], $0) }, count: perClient, depth: pipeline, into: &slot.histogram, make)
                } catch {
                    slot.errors = perClient * mine.count
                    slot.failure = "\(error)"
                }
            }
            thread.start()
        }
        group.wait()
        if let failure = slots.compactMap(\.failure).first { throw LoadError(description: failure) }
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        var total = Histogram<UInt64>(highestTrackableValue: 60_000_000_000)
        for slot in slots { total.add(slot.histogram) }

        // Clean up: every node the run may have made, by name (NoNode for those already gone is
        // expected and ignored: a failed create, a delete run), then the root. Not by listing
        // the root's children: a few hundred thousand names are a reply above jute.maxbuffer.
        let made: [String]
        switch operation {
        case .create, .delete: made = (0..<clients).flatMap { client in (0..<perClient).map { path(client, $0) } }
        case .setData, .getData, .exists: made = (0..<clients).map { path($0, 0) }
        case .getChildren: made = (0..<10).map { "\(root)/child\($0)" }
        }
        var ignored = Histogram<UInt64>(highestTrackableValue: 60_000_000_000)
        _ = try admin.measured(made.count, depth: 64, into: &ignored) { i in (.delete, .delete(path: made[i], version: -1)) }
        try admin.expectOK(.delete, .delete(path: root, version: -1))
        return Result(
            operation: operation, clients: clients, pipeline: pipeline, operations: perClient * clients, seconds: seconds,
            errors: slots.reduce(0) { $0 + $1.errors },
            p50Milliseconds: Double(total.valueAtPercentile(50)) / 1e6, p99Milliseconds: Double(total.valueAtPercentile(99)) / 1e6)
    }

    /// One client thread's results (written by it alone, read after it ends).
    final class Slot: @unchecked Sendable {
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000)
        var errors = 0
        var failure: String?
    }

    /// Drives several connections from one thread: each keeps up to `depth` of its `count`
    /// requests in flight; `poll` says which have replies. Each reply's latency (send to reply)
    /// is recorded; returns how many answered an error.
    static func drive(
        _ clients: [(connection: Connection, id: Int)], count: Int, depth: Int, into histogram: inout Histogram<UInt64>,
        _ make: (Int, Int) -> (ZKOpCode, ZKRequest)
    ) throws -> Int {
        var sentAt = [[UInt64]](repeating: [UInt64](repeating: 0, count: count), count: clients.count)
        var sent = [Int](repeating: 0, count: clients.count), received = sent
        var firstXid = [Int32](repeating: 0, count: clients.count)
        var fds = clients.map { pollfd(fd: $0.connection.socket.fd, events: Int16(POLLIN), revents: 0) }
        var errors = 0, done = 0
        let deadline = monotonicNanoseconds() + 300_000_000_000  // bounded: 5 minutes at most
        while done < clients.count {
            for c in clients.indices {
                while sent[c] < count && sent[c] - received[c] < depth {
                    let (op, body) = make(clients[c].id, sent[c])
                    sentAt[c][sent[c]] = monotonicNanoseconds()
                    let xid = clients[c].connection.request(op, body)
                    if sent[c] == 0 { firstXid[c] = xid }
                    sent[c] += 1
                }
            }
            guard poll(&fds, nfds_t(fds.count), 30_000) > 0, monotonicNanoseconds() < deadline else {
                throw LoadError(description: "no reply in 30 s (or the run passed 5 minutes)")
            }
            for c in clients.indices where fds[c].revents != 0 {
                fds[c].revents = 0
                let connection = clients[c].connection
                guard connection.receiveOnce() else { throw LoadError(description: "the server closed a connection") }
                while let answer = try connection.bufferedReplyHeader() {
                    let index = Int(answer.xid - firstXid[c])
                    guard index == received[c] else { throw LoadError(description: "reply \(answer.xid) out of order (expected \(firstXid[c] + Int32(received[c])))") }
                    histogram.record(monotonicNanoseconds() - sentAt[c][index])
                    if answer.err != 0 { errors += 1 }
                    received[c] += 1
                    if received[c] == count { done += 1 }
                }
            }
        }
        return errors
    }

    /// One session on a blocking socket.
    final class Connection: @unchecked Sendable {
        let socket: BlockingSocket
        private var xid: Int32 = 0

        init(host: String, port: Int) throws {
            do { socket = try BlockingSocket(host: host, port: port, readTimeoutSeconds: 30) } catch {
                throw LoadError(description: "cannot connect to \(host):\(port): \(error)")
            }
            var w = JuteWriter()
            w.int(0); w.long(0); w.int(30_000); w.long(0); w.buffer([UInt8](repeating: 0, count: 16)); w.boolean(false)
            send(w.frame)
            guard let response = frame(), response.count >= 20 else { throw LoadError(description: "no connect response from \(host):\(port)") }
        }

        deinit { inbox.deallocate() }

        func send(_ bytes: [UInt8]) { socket.send(bytes) }

        /// Received bytes not yet consumed: `inbox[readAt..<filled]`, in one buffer allocated
        /// for the connection's life, so a reply costs no allocation (but its body, if asked).
        private let inbox = UnsafeMutableRawBufferPointer.allocate(byteCount: 4 << 20, alignment: 8)
        private var readAt = 0
        private var filled = 0

        private func int(_ at: Int) -> Int32 {
            Int32(bitPattern: UInt32(inbox[at]) << 24 | UInt32(inbox[at + 1]) << 16 | UInt32(inbox[at + 2]) << 8 | UInt32(inbox[at + 3]))
        }

        /// The next whole frame already received, as its payload's range in `inbox`.
        private func bufferedFrame() -> Range<Int>? {
            let available = filled - readAt
            guard available >= 4 else { return nil }
            let length = Int(UInt32(bitPattern: int(readAt)))
            guard available >= 4 + length else { return nil }
            let range = readAt + 4..<readAt + 4 + length
            readAt += 4 + length
            return range
        }

        /// One `recv` into the free end of the buffer (moving what is left to the front when
        /// space runs short); false at end of stream, on timeout, or for a frame too large.
        func receiveOnce() -> Bool {
            if readAt == filled {
                readAt = 0
                filled = 0
            } else if inbox.count - filled < 1 << 16 {
                inbox.baseAddress!.copyMemory(from: inbox.baseAddress! + readAt, byteCount: filled - readAt)
                filled -= readAt
                readAt = 0
                guard filled < inbox.count else { return false }
            }
            let n = socket.receive(into: UnsafeMutableRawBufferPointer(rebasing: inbox[filled...]))
            if n <= 0 { return false }
            filled += n
            return true
        }

        /// Makes sure a whole frame is buffered (receiving as needed); its payload's range.
        private func nextFrame() -> Range<Int>? {
            while true {
                if let range = bufferedFrame() { return range }
                guard receiveOnce() else { return nil }
            }
        }

        func frame() -> [UInt8]? { nextFrame().map { Array(inbox[$0]) } }

        /// The frame's length prefix goes in front once the body is written.
        private var writer = JuteWriter()

        func request(_ op: ZKOpCode, _ request: ZKRequest) -> Int32 {
            xid += 1
            writer.reset()
            writer.int(0)
            ZKCodec.encode(xid: xid, op: op, request, into: &writer)
            writer.patchInt(Int32(writer.bytes.count - 4), at: 0)
            writer.bytes.withUnsafeBytes { socket.send($0) }
            return xid
        }

        /// A reply already received (watch events skipped), read in place; nil when none is.
        func bufferedReplyHeader() throws -> (xid: Int32, err: Int32)? {
            while let range = bufferedFrame() {
                guard range.count >= 16 else { throw LoadError(description: "a reply of \(range.count) bytes") }
                let xid = int(range.lowerBound)
                if xid == -1 { continue }
                return (xid, int(range.lowerBound + 12))
            }
            return nil
        }

        /// The next reply's xid and error code (watch events are skipped), read in place.
        func replyHeader() throws -> (xid: Int32, err: Int32, body: Range<Int>) {
            while let range = nextFrame() {
                guard range.count >= 16 else { throw LoadError(description: "a reply of \(range.count) bytes") }
                let xid = int(range.lowerBound)
                if xid == -1 { continue }
                return (xid, int(range.lowerBound + 12), range.lowerBound + 16..<range.upperBound)
            }
            throw LoadError(description: "the server closed the connection or did not answer in 30 s")
        }

        func reply() throws -> (xid: Int32, err: Int32, body: JuteReader) {
            let (xid, err, body) = try replyHeader()
            return (xid, err, JuteReader(Array(inbox[body])))
        }

        func expectOK(_ op: ZKOpCode, _ body: ZKRequest) throws {
            _ = request(op, body)
            let answer = try reply()
            guard answer.err == 0 else { throw LoadError(description: "\(op) answered error \(answer.err)") }
        }

        /// `count` requests with up to `depth` in flight, untimed; throws on any error reply.
        func pipelined(_ count: Int, depth: Int, _ make: (Int) -> (ZKOpCode, ZKRequest)) throws {
            var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000)
            let errors = try measured(count, depth: depth, into: &histogram, make)
            guard errors == 0 else { throw LoadError(description: "\(errors) of \(count) setup requests failed") }
        }

        /// `count` requests with up to `depth` in flight; each one's latency (send to reply) is
        /// recorded. Returns how many answered an error.
        func measured(_ count: Int, depth: Int, into histogram: inout Histogram<UInt64>, _ make: (Int) -> (ZKOpCode, ZKRequest)) throws -> Int {
            var sentAt = [UInt64](repeating: 0, count: count)
            var firstXid: Int32 = 0
            var sent = 0, received = 0, errors = 0
            while received < count {
                while sent < count && sent - received < depth {
                    let (op, body) = make(sent)
                    sentAt[sent] = monotonicNanoseconds()
                    let xid = request(op, body)
                    if sent == 0 { firstXid = xid }
                    sent += 1
                }
                let answer = try replyHeader()
                let index = Int(answer.xid - firstXid)
                guard index == received else { throw LoadError(description: "reply \(answer.xid) out of order (expected \(firstXid + Int32(received)))") }
                histogram.record(monotonicNanoseconds() - sentAt[index])
                if answer.err != 0 { errors += 1 }
                received += 1
            }
            return errors
        }
    }
}
