import CEpoll
#if canImport(Glibc)
import Glibc
#endif

/// A socket call that failed: which call, on what, and `errno`'s words.
struct SocketCallError: Error, CustomStringConvertible {
    let call: String
    let errno: Int32
    var description: String { "\(call): \(String(cString: strerror(errno))) (errno \(errno))" }
}

/// Every system call of the RESP server's own network loop (``PollLoop``), in one place: epoll,
/// the wake-up eventfd, listening, accepting, reading and sending. Nonblocking throughout; a
/// call that would block answers `nil` (or 0 bytes sent), never an error.
enum SocketCalls {
    /// What a read found.
    enum ReadResult: Equatable {
        case bytes(Int)
        case wouldBlock
        case endOfStream
        case failed(Int32)
    }

    // MARK: epoll and eventfd

    static func makeEpoll() throws -> Int32 {
        let fd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard fd >= 0 else { throw SocketCallError(call: "epoll_create1", errno: errno) }
        return fd
    }

    /// Adds, changes (`EPOLL_CTL_MOD`) or removes `fd`'s interest; level-triggered.
    static func control(epoll: Int32, _ operation: Int32, fd: Int32, events: UInt32) throws {
        var event = epoll_event()
        event.events = events
        event.data.fd = fd
        guard epoll_ctl(epoll, operation, fd, &event) == 0 else {
            throw SocketCallError(call: "epoll_ctl(\(operation), fd \(fd))", errno: errno)
        }
    }

    /// Waits up to `milliseconds` (-1: without limit); the count of events, 0 when interrupted.
    static func wait(epoll: Int32, into events: UnsafeMutableBufferPointer<epoll_event>, milliseconds: Int32) -> Int {
        let count = epoll_wait(epoll, events.baseAddress, Int32(events.count), milliseconds)
        if count < 0 {
            precondition(errno == EINTR, "epoll_wait failed: errno \(errno)")
            return 0
        }
        return Int(count)
    }

    static func makeEventFD() throws -> Int32 {
        let fd = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        guard fd >= 0 else { throw SocketCallError(call: "eventfd", errno: errno) }
        return fd
    }

    /// Makes `fd` readable (wakes a loop waiting in epoll).
    static func signal(eventFD fd: Int32) {
        var one: UInt64 = 1
        _ = Glibc.write(fd, &one, 8)  // (EAGAIN only when the counter is full: still readable)
    }

    static func drain(eventFD fd: Int32) {
        var count: UInt64 = 0
        _ = Glibc.read(fd, &count, 8)
    }

    // MARK: Listening and accepting

    /// A nonblocking listening TCP socket on `host:port` (a name or address; port 0 picks one),
    /// and the port bound.
    static func listen(host: String, port: Int, backlog: Int32) throws -> (fd: Int32, port: Int) {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var found: UnsafeMutablePointer<addrinfo>?
        let resolved = getaddrinfo(host, String(port), &hints, &found)
        guard resolved == 0, let first = found else {
            throw SocketCallError(call: "getaddrinfo(\(host)): \(String(cString: gai_strerror(resolved)))", errno: 0)
        }
        defer { freeaddrinfo(found) }
        var lastError = SocketCallError(call: "bind \(host):\(port)", errno: EADDRNOTAVAIL)
        var candidate: UnsafeMutablePointer<addrinfo>? = first
        while let info = candidate {
            candidate = info.pointee.ai_next
            let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { lastError = SocketCallError(call: "socket", errno: errno); continue }
            setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
            guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
                lastError = SocketCallError(call: "bind \(host):\(port)", errno: errno)
                Glibc.close(fd)
                continue
            }
            guard Glibc.listen(fd, backlog) == 0 else {
                lastError = SocketCallError(call: "listen \(host):\(port)", errno: errno)
                Glibc.close(fd)
                continue
            }
            return (fd, localPort(fd) ?? port)
        }
        throw lastError
    }

    private static func localPort(_ fd: Int32) -> Int? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) == 0 }
        }
        guard ok else { return nil }
        return address(storage).port
    }

    /// Accepts one connection (nonblocking, close-on-exec, `TCP_NODELAY`): its socket and the
    /// peer's address; nil when none is waiting.
    static func accept(_ listener: Int32) throws -> (fd: Int32, peer: (ip: String, port: Int))? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let fd = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                accept4(listener, $0, &length, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
            }
        }
        guard fd >= 0 else {
            switch errno {
            case EAGAIN, EWOULDBLOCK, EINTR, ECONNABORTED: return nil
            default: throw SocketCallError(call: "accept", errno: errno)
            }
        }
        setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        return (fd, address(storage))
    }

    private static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) {
        var value = value
        _ = setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
    }

    /// An IPv4 or IPv6 socket address as text and port (`"?"` for another family).
    private static func address(_ storage: sockaddr_storage) -> (ip: String, port: Int) {
        var storage = storage
        let family = Int32(storage.ss_family)
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        func string() -> String { String(decoding: text.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        return withUnsafePointer(to: &storage) { pointer -> (String, Int) in
            switch family {
            case AF_INET:
                return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { v4 in
                    var address = v4.pointee.sin_addr
                    inet_ntop(AF_INET, &address, &text, socklen_t(text.count))
                    return (string(), Int(UInt16(bigEndian: v4.pointee.sin_port)))
                }
            case AF_INET6:
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { v6 in
                    var address = v6.pointee.sin6_addr
                    inet_ntop(AF_INET6, &address, &text, socklen_t(text.count))
                    return (string(), Int(UInt16(bigEndian: v6.pointee.sin6_port)))
                }
            default:
                return ("?", 0)
            }
        }
    }

    // MARK: Reading, sending, closing

    static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> ReadResult {
        let count = Glibc.read(fd, buffer.baseAddress, buffer.count)
        if count > 0 { return .bytes(count) }
        if count == 0 { return .endOfStream }
        switch errno {
        case EAGAIN, EWOULDBLOCK, EINTR: return .wouldBlock
        default: return .failed(errno)
        }
    }

    /// Sends what the socket takes now: the count (0 when it would block); nil when the peer
    /// is gone (never SIGPIPE).
    static func send(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int? {
        let count = Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
        if count >= 0 { return count }
        switch errno {
        case EAGAIN, EWOULDBLOCK, EINTR: return 0
        default: return nil
        }
    }

    static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }
}
