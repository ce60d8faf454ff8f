import Cairn
import CairnStorage
import NIOCore
import NIOPosix

/// The ZooKeeper listener of `cairn serve`: zkCli.sh, kazoo and other ZooKeeper clients use the
/// store's znode tree through it unchanged (the client protocol of ZooKeeper 3.x, standalone).
///
/// ```swift
/// var options = ZKServerOptions()
/// options.port = 2181
/// let server = try ZKServer.start(store: store, options: options)
/// // ... later:
/// try server.stop()
/// ```
public final class ZKServer: @unchecked Sendable {
    let group: MultiThreadedEventLoopGroup
    let channel: Channel
    let state: ZKServerState
    /// The port actually bound (useful with port 0).
    public let port: Int

    private init(group: MultiThreadedEventLoopGroup, channel: Channel, state: ZKServerState) {
        self.group = group
        self.channel = channel
        self.state = state
        port = channel.localAddress?.port ?? state.options.port
    }

    public static func start(store: Store, options: ZKServerOptions, threads: Int = 1) throws -> ZKServer {
        guard options.minSessionTimeout > 0, options.minSessionTimeout <= options.maxSessionTimeout else {
            throw ServerStartError(description: "session timeout bounds \(options.minSessionTimeout)...\(options.maxSessionTimeout) ms are not a range")
        }
        try ensureSystemNodes(store)
        let state = ZKServerState(store: store, options: options)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
        do {
            let channel = try Listener.bind(group: group, host: options.host, port: options.port) { channel in
                ZKConnection(server: state, address: channel.remoteAddress.map { "/\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?")
            }
            let server = ZKServer(group: group, channel: channel, state: state)
            options.logger.info("ZooKeeper on \(options.host):\(server.port), session timeouts \(options.minSessionTimeout)-\(options.maxSessionTimeout) ms")
            return server
        } catch {
            try? group.syncShutdownGracefully()
            throw ServerStartError(description: "cannot listen on \(options.host):\(options.port): \(error)")
        }
    }

    /// ZooKeeper's own znodes, which tools expect: `/zookeeper`, `/zookeeper/quota`, and
    /// `/zookeeper/config` (read-only). Made once, in the store, if absent; clients may not
    /// delete them.
    static let systemNodes: [(path: String, acl: [ACLEntry])] = [
        ("/zookeeper", ACLEntry.openUnsafe),
        ("/zookeeper/config", [ACLEntry(perms: ACLEntry.read, scheme: "world", id: "anyone")]),
        ("/zookeeper/quota", ACLEntry.openUnsafe),
    ]

    static func ensureSystemNodes(_ store: Store) throws {
        for (path, acl) in systemNodes where (try store.exists(path)) == nil {
            try store.createNode(path, acl: acl)
        }
    }

    /// Connected clients now.
    public var clientCount: Int { state.connections.count }

    /// Stops accepting and closes every connection (sessions stay open: their clients may
    /// resume them on a restarted server within their timeout).
    public func stop() throws {
        state.options.logger.info("ZooKeeper listener stopping: \(clientCount) client(s) connected")
        try? channel.close().wait()
        // Replies whose sync runs in the log's flusher arrive through the loops: let them.
        let unanswered = state.committers.stopBackgroundCommits(closing: state.commitGate)
        if unanswered > 0 {
            state.options.logger.info("ZooKeeper listener stopping: \(unanswered) group commit(s) still syncing were not answered")
        }
        try group.syncShutdownGracefully()
    }
}
