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
}
