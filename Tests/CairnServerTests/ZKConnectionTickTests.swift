import Cairn
@testable import CairnServer
import CairnStorage
import CairnTesting
import NIOCore
import NIOEmbedded
import Testing

/// One ZooKeeper connection on an embedded event loop, whose end-of-tick tasks (the group
/// commit, the reply flusher) run only when the test says: what happens within one tick is
/// then deterministic.
@Suite struct ZKConnectionTickTests {
    /// Replies wait for the loop's flusher at the end of the tick; a request that closes the
    /// connection later in the same tick must not drop them (a close discards unflushed writes).
    @Test func repliesWrittenBeforeACloseInTheSameTickAreSent() throws {
        let store = try Store.open(directory: "/store", options: StoreOptions(
            fsyncPolicy: .everysec, clock: ManualClock(), fileSystem: SimulatedFileSystem(), activeExpiry: false))
        defer { try? store.close() }
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(handler: ZKConnection(server: ZKServerState(store: store, options: ZKServerOptions()), address: "test"), loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()

        var connect = JuteWriter()
        connect.int(0); connect.long(0); connect.int(6000); connect.long(0); connect.buffer([UInt8](repeating: 0, count: 16)); connect.boolean(false)
        try channel.writeInbound(ByteBuffer(bytes: connect.frame))
        loop.run()  // the session's txn commits, the connect response is flushed
        #expect(try channel.readOutbound(as: ByteBuffer.self) != nil, "a connect response")

        // In one tick: a read that is answered, then a frame above jute.maxbuffer.
        var request = JuteWriter()
        ZKCodec.encode(xid: 7, op: .getData, .getData(path: "/", watch: false), into: &request)
        try channel.writeInbound(ByteBuffer(bytes: request.frame))
        try channel.writeInbound(ByteBuffer(bytes: [0x7F, 0xFF, 0xFF, 0xFF]))

        let reply = try channel.readOutbound(as: ByteBuffer.self)
        #expect(reply.map { Array($0.readableBytesView.prefix(8)) }.map { Array($0[4..<8]) } == [0, 0, 0, 7],
                "the getData reply (xid 7) went out before the close")
        #expect(!channel.isActive, "and the connection closed")
        loop.run()
    }

    /// Under `always`, a read answered in a tick goes out before the loop blocks in that tick's
    /// sync, even when another connection's write came first in the tick (its commit is then
    /// queued ahead of the flush): the committer runs the loop's flusher first, so a read never
    /// waits for another client's `fdatasync`.
    @Test func aReadAnsweredInATickIsSentBeforeTheTicksSync() throws {
        let disk = SimulatedFileSystem()
        let store = try Store.open(directory: "/store", options: StoreOptions(
            fsyncPolicy: .always, clock: ManualClock(), fileSystem: disk, activeExpiry: false))
        defer { try? store.close() }
        let loop = EmbeddedEventLoop()
        let server = ZKServerState(store: store, options: ZKServerOptions())
        func connected() throws -> EmbeddedChannel {
            let channel = EmbeddedChannel(handler: ZKConnection(server: server, address: "test"), loop: loop)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            var connect = JuteWriter()
            connect.int(0); connect.long(0); connect.int(6000); connect.long(0); connect.buffer([UInt8](repeating: 0, count: 16)); connect.boolean(false)
            try channel.writeInbound(ByteBuffer(bytes: connect.frame))
            loop.run()
            #expect(try channel.readOutbound(as: ByteBuffer.self) != nil, "a connect response")
            return channel
        }
        let writer = try connected(), reader = try connected()
        func send(_ channel: EmbeddedChannel, _ xid: Int32, _ op: ZKOpCode, _ request: ZKRequest) throws {
            var frame = JuteWriter()
            ZKCodec.encode(xid: xid, op: op, request, into: &frame)
            try channel.writeInbound(ByteBuffer(bytes: frame.frame))
        }
        @Sendable func xid(_ reply: ByteBuffer) -> Int32? { reply.getInteger(at: reply.readerIndex + 4, as: Int32.self) }
        // What the reader had been sent when each sync began (looked at on the loop's thread,
        // which is this one: the embedded loop runs its tasks inside `run()`).
        final class Sent: @unchecked Sendable { var atSync: [[Int32]] = [] }
        let sent = Sent()
        let observed = reader
        disk.observeSyncs { _ in
            var xids: [Int32] = []
            while let reply = try? observed.readOutbound(as: ByteBuffer.self) { xids.append(xid(reply) ?? -1) }
            sent.atSync.append(xids)
        }
        defer { disk.observeSyncs(nil) }
        // In one tick: one client's write, then another's read.
        try send(writer, 7, .create, .create(path: "/x", data: [1], acl: [.open], flags: 0, ttl: nil))
        try send(reader, 8, .getData, .getData(path: "/", watch: false))
        loop.run()
        #expect(sent.atSync.first == [8], "the read's reply was sent before the sync began: \(sent.atSync)")
        #expect(try writer.readOutbound(as: ByteBuffer.self).flatMap(xid) == 7, "the create is answered after its sync")
    }
}
