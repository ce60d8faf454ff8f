import NIOCore
import CEpoll
#if canImport(Glibc)
import Glibc
#endif

/// What a connection on a ``PollSocket`` is told.
protocol PollSocketDelegate: AnyObject {
    /// Bytes that arrived, in the loop's read buffer: views of it are good for this call only
    /// (keeping the `ByteBuffer` itself is fine; the loop then reads into another).
    func received(_ bytes: ByteBuffer)
    /// The socket closed (the peer left, an error, or ``PollSocket/close()``); called once.
    func socketClosed()
}

/// A connected, nonblocking TCP socket on a ``PollLoop``: reads as they come, replies sent at
/// the end of the loop's tick with one `send`, what the socket does not take kept until it is
/// writable again. Loop thread only.
final class PollSocket: PollHandler, @unchecked Sendable {
    let fd: Int32
    let loop: PollLoop
    /// The peer's address and port.
    let peer: (ip: String, port: Int)
    /// Held strongly until the socket closes (the connection and its socket keep each other).
    private var delegate: PollSocketDelegate?
    /// Replies not yet sent, from `sent` on.
    private var outbound: [UInt8] = []
    private var sent = 0
    private var flushScheduled = false
    /// The socket took less than everything: sending waits for `EPOLLOUT`.
    private var awaitingWritable = false
    private var closeWhenSent = false
    private var isClosed = false

    /// A connection's send buffer that grew past this is let go once sent (one large reply
    /// does not pin its memory).
    static let keptCapacityLimit = 64 << 10

    /// Registers `fd` with `loop` (on the loop's thread); `delegate` hears of it from then on.
    init(fd: Int32, peer: (ip: String, port: Int), loop: PollLoop) throws {
        self.fd = fd
        self.peer = peer
        self.loop = loop
        try loop.register(fd, self, events: EPOLLIN.rawValue)
    }

    func start(_ delegate: PollSocketDelegate) {
        self.delegate = delegate
    }

    /// The peer as Redis prints it in `CLIENT INFO`: `ip:port`, `[ip]:port` for IPv6.
    var peerDescription: String {
        peer.ip.contains(":") ? "[\(peer.ip)]:\(peer.port)" : "\(peer.ip):\(peer.port)"
    }

    /// Queues `bytes` to be sent at the end of the tick, and leaves `bytes` empty (its storage
    /// swapped with the socket's when nothing else waits: no copy).
    func send(_ bytes: inout [UInt8]) {
        guard !isClosed, !closeWhenSent else { bytes.removeAll(keepingCapacity: true); return }
        if outbound.isEmpty {
            swap(&outbound, &bytes)
        } else {
            outbound.append(contentsOf: bytes)
            bytes.removeAll(keepingCapacity: true)
        }
        scheduleFlush()
    }

    /// Closes once everything queued is sent (at once when nothing is); reads stop now.
    func closeAfterSending() {
        guard !isClosed else { return }
        closeWhenSent = true
        scheduleFlush()
    }

    private func scheduleFlush() {
        guard !flushScheduled && !awaitingWritable else { return }
        flushScheduled = true
        loop.flushLater(self)
    }

    /// Sends what the socket takes now.
    func flushNow() {
        flushScheduled = false
        guard !isClosed else { return }
        while sent < outbound.count {
            let count = outbound.withUnsafeBytes { bytes in SocketCalls.send(fd, UnsafeRawBufferPointer(rebasing: bytes[sent...])) }
            guard let count else { close(); return }  // the peer is gone
            if count == 0 {
                if !awaitingWritable {
                    awaitingWritable = true
                    loop.changeInterest(fd, events: EPOLLIN.rawValue | EPOLLOUT.rawValue)
                }
                return
            }
            sent += count
        }
        if outbound.capacity > Self.keptCapacityLimit { outbound = [] } else { outbound.removeAll(keepingCapacity: true) }
        sent = 0
        if awaitingWritable {
            awaitingWritable = false
            loop.changeInterest(fd, events: EPOLLIN.rawValue)
        }
        if closeWhenSent { close() }
    }

    /// Closes now (what is queued is dropped) and tells the delegate.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        loop.deregister(fd)
        SocketCalls.close(fd)
        outbound = []
        let delegate = self.delegate
        self.delegate = nil
        delegate?.socketClosed()
    }

    // MARK: PollHandler

    func pollReady(_ events: UInt32) {
        if events & EPOLLOUT.rawValue != 0 { flushNow() }
        guard !isClosed, events & (EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 else { return }
        readOnce()
    }

    func pollStopping() {
        flushNow()
        close()
    }

    /// One read a readiness, as Redis does (level-triggered: more is reported again).
    private func readOnce() {
        loop.readBuffer.clear()  // (new storage if a connection kept the last one's bytes)
        var result = SocketCalls.ReadResult.wouldBlock
        loop.readBuffer.writeWithUnsafeMutableBytes(minimumWritableBytes: PollLoop.readSize) { space in
            result = SocketCalls.read(fd, into: space)
            if case .bytes(let count) = result { return count }
            return 0
        }
        switch result {
        case .bytes:
            if closeWhenSent { return }  // (closing: what comes after is not read)
            delegate?.received(loop.readBuffer)
        case .wouldBlock:
            return
        case .endOfStream, .failed:
            // The peer is gone or half-closed: what is answered already still goes out.
            flushNow()
            close()
        }
    }
}
