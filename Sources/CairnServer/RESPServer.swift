import Cairn
import CairnStorage
import NIOCore
import NIOPosix

/// Why the server would not start.
public struct ServerStartError: Error, CustomStringConvertible {
    public let description: String
}

/// The RESP listener of `cairn serve`: redis-cli, redis-benchmark and redis-py talk to the
/// store through it unchanged.
///
/// ```swift
/// let server = try RESPServer.start(store: store, options: RESPServerOptions())
/// // ... later, on SIGTERM:
/// try server.stop()        // stop accepting, answer what is in flight, close connections
/// ```
public final class RESPServer: @unchecked Sendable {
    let group: MultiThreadedEventLoopGroup
    let channel: Channel
    let state: ServerState
    /// The port actually bound (useful with port 0).
    public let port: Int

    private init(group: MultiThreadedEventLoopGroup, channel: Channel, state: ServerState) {
        self.group = group
        self.channel = channel
        self.state = state
        port = channel.localAddress?.port ?? state.options.port
    }

    public static func start(store: Store, options: RESPServerOptions, threads: Int = System.coreCount) throws -> RESPServer {
        let loopback = ["127.0.0.1", "::1", "localhost"].contains(options.host)
        if !loopback && options.password == nil {
            // Redis's protected mode: a warning, and clients from beyond loopback are refused.
            options.logger.warning("listening on \(options.host) without a password: \(options.protectedMode ? "protected mode serves loopback clients only (set --requirepass)" : "any host can connect unauthenticated (--no-protected-mode)")")
        }
        let state = ServerState(store: store, options: options)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
        do {
            let channel = try Listener.bind(group: group, host: options.host, port: options.port) { _ in RESPConnection(server: state) }
            let server = RESPServer(group: group, channel: channel, state: state)
            options.logger.info("RESP on \(options.host):\(server.port), \(threads) event-loop thread(s)")
            return server
        } catch {
            try? group.syncShutdownGracefully()
            throw ServerStartError(description: "cannot listen on \(options.host):\(options.port): \(error)")
        }
    }

    /// Called when a client sends SHUTDOWN (the program should then stop the server and close
    /// the store, as on SIGTERM). Without one, SHUTDOWN is refused.
    public var onShutdown: (@Sendable () -> Void)? {
        get { state.lock.withLock { state.shutdownHandler } }
        set { state.lock.withLock { state.shutdownHandler = newValue } }
    }

    /// Connected clients now.
    public var clientCount: Int { state.lock.withLock { state.clients.count } }

    /// Stops accepting, lets connections finish what they were answering, and closes them.
    public func stop() throws {
        state.options.logger.info("RESP listener stopping: \(clientCount) client(s) connected")
        try? channel.close().wait()
        // Replies whose sync runs in the log's flusher arrive through the loops: let them.
        let unanswered = state.committers.stopBackgroundCommits(closing: state.commitGate)
        if unanswered > 0 {
            state.options.logger.info("RESP listener stopping: \(unanswered) group commit(s) still syncing were not answered")
        }
        try group.syncShutdownGracefully()
    }

    /// Blocks until the listening socket closes.
    public func wait() throws {
        try channel.closeFuture.wait()
    }
}
