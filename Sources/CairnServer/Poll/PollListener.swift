import Logging
import NIOCore
import CEpoll
#if canImport(Glibc)
import Glibc
#endif

/// A listening TCP socket on a ``PollLoop``: accepts connections and hands each, as a
/// ``PollSocket``, to the next of its loops in turn, on that loop's thread.
final class PollListener: PollHandler, @unchecked Sendable {
    let fd: Int32
    /// The port bound (the one asked for, or the one picked for port 0).
    let port: Int
    private let loop: PollLoop
    private let loops: [PollLoop]
    private var nextLoop = 0
    private let accepted: @Sendable (PollSocket) -> Void
    private let logger: Logger
    private var lastFailureLogged: NIODeadline?
    private var isClosed = false

    /// Listens on `host:port` with `loops[0]` accepting; `accepted` runs on each connection's
    /// loop once it is registered there.
    static func listen(host: String, port: Int, loops: [PollLoop], logger: Logger,
                       accepted: @escaping @Sendable (PollSocket) -> Void) throws -> PollListener {
        precondition(!loops.isEmpty, "a listener needs a loop")
        let (fd, bound) = try SocketCalls.listen(host: host, port: port, backlog: 511)
        let listener = PollListener(fd: fd, port: bound, loops: loops, logger: logger, accepted: accepted)
        do {
            try loops[0].submit { try loops[0].register(fd, listener, events: EPOLLIN.rawValue) }.wait()
        } catch {
            SocketCalls.close(fd)
            throw error
        }
        return listener
    }

    private init(fd: Int32, port: Int, loops: [PollLoop], logger: Logger, accepted: @escaping @Sendable (PollSocket) -> Void) {
        self.fd = fd
        self.port = port
        self.loop = loops[0]
        self.loops = loops
        self.logger = logger
        self.accepted = accepted
    }

    /// Stops accepting (waits for the listening loop to close the socket).
    func close() {
        try? loop.submit { [self] in closeNow() }.wait()
    }

    private func closeNow() {
        guard !isClosed else { return }
        isClosed = true
        loop.deregister(fd)
        SocketCalls.close(fd)
    }

    // MARK: PollHandler

    func pollReady(_ events: UInt32) {
        for _ in 0..<64 {  // (then the loop serves its connections; more is reported again)
            let connection: (fd: Int32, peer: (ip: String, port: Int))?
            do { connection = try SocketCalls.accept(fd) } catch {
                // Out of descriptors, most often: logged at most once a second.
                let now = NIODeadline.now()
                if lastFailureLogged.map({ now - $0 > .seconds(1) }) ?? true {
                    lastFailureLogged = now
                    logger.warning("accepting a connection on port \(port) failed: \(error)")
                }
                return
            }
            guard let (socketFD, peer) = connection else { return }
            let target = loops[nextLoop % loops.count]
            nextLoop &+= 1
            let accepted = self.accepted
            let attach: @Sendable () -> Void = {
                do {
                    accepted(try PollSocket(fd: socketFD, peer: peer, loop: target))
                } catch {
                    SocketCalls.close(socketFD)
                }
            }
            if target === loop { attach() } else { target.execute(attach) }
        }
    }

    func pollStopping() {
        closeNow()
    }
}
