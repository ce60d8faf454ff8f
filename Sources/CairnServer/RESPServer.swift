import Cairn
import CairnStorage
import Foundation

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
    let loops: [PollLoop]
    let listener: PollListener
    let state: ServerState
    /// The port actually bound (useful with port 0).
    public let port: Int
    private let closed = DispatchSemaphore(value: 0)

    private init(loops: [PollLoop], listener: PollListener, state: ServerState) {
        self.loops = loops
        self.listener = listener
        self.state = state
        port = listener.port
    }

    /// Listens on `options.host:options.port` with `threads` event loops (see ``PollLoop``).
    public static func start(store: Store, options: RESPServerOptions, threads: Int = 1) throws -> RESPServer {
        let loopback = ["127.0.0.1", "::1", "localhost"].contains(options.host)
        if !loopback && options.password == nil {
            // Redis's protected mode: a warning, and clients from beyond loopback are refused.
            options.logger.warning("listening on \(options.host) without a password: \(options.protectedMode ? "protected mode serves loopback clients only (set --requirepass)" : "any host can connect unauthenticated (--no-protected-mode)")")
        }
        let state = ServerState(store: store, options: options)
        var loops: [PollLoop] = []
        do {
            for index in 0..<max(1, threads) { loops.append(try PollLoop(name: "cairn-resp-\(index)")) }
            let listener = try PollListener.listen(host: options.host, port: options.port, loops: loops, logger: options.logger) { socket in
                RESPConnection(server: state).start(on: socket)
            }
            let server = RESPServer(loops: loops, listener: listener, state: state)
            options.logger.info("RESP on \(options.host):\(server.port), \(loops.count) event-loop thread(s)")
            return server
        } catch {
            for loop in loops { loop.stop() }
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

    /// Stops accepting, lets connections finish what they were answering, and closes them
    /// (each sends what its socket takes at once first).
    public func stop() throws {
        state.options.logger.info("RESP listener stopping: \(clientCount) client(s) connected")
        listener.close()
        // Replies whose sync runs in the log's flusher arrive through the loops: let them.
        let unanswered = state.committers.stopBackgroundCommits(closing: state.commitGate)
        if unanswered > 0 {
            state.options.logger.info("RESP listener stopping: \(unanswered) group commit(s) still syncing were not answered")
        }
        for loop in loops { loop.stop() }
        closed.signal()
    }

    /// Blocks until the server stops.
    public func wait() throws {
        closed.wait()
        closed.signal()  // (for any other waiter)
    }
}
