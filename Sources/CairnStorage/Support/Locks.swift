#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A pthread mutex in stable, heap-allocated storage (a pthread mutex must never move).
public final class Lock: @unchecked Sendable {
    @usableFromInline let mutex: UnsafeMutablePointer<pthread_mutex_t>

    public init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        precondition(pthread_mutex_init(mutex, nil) == 0)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    // @inlinable, so that other modules (the store) get these inlined and specialized: a
    // public generic is otherwise called unspecialized across modules (metadata lookups, the
    // result returned indirectly), which showed up on every write.
    @inlinable @inline(__always) public func lock() { pthread_mutex_lock(mutex) }
    @inlinable @inline(__always) public func unlock() { pthread_mutex_unlock(mutex) }

    @inlinable @inline(__always)
    public func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}

/// A condition variable tied to a ``Lock``: wait with the lock held.
public final class Condition: @unchecked Sendable {
    private let lock: Lock
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    public init(_ lock: Lock) {
        self.lock = lock
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        #if os(Linux)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        precondition(pthread_cond_init(condition, &attributes) == 0)
        pthread_condattr_destroy(&attributes)
        #else
        precondition(pthread_cond_init(condition, nil) == 0)
        #endif
    }

    deinit {
        pthread_cond_destroy(condition)
        condition.deallocate()
    }

    /// Waits for a signal; the lock must be held.
    public func wait() { pthread_cond_wait(condition, lock.mutex) }

    /// Waits for a signal or until `nanoseconds` have passed; the lock must be held.
    public func wait(nanoseconds: UInt64) {
        var now = timespec()
        #if os(Linux)
        clock_gettime(CLOCK_MONOTONIC, &now)
        #else
        clock_gettime(CLOCK_REALTIME, &now)
        #endif
        let total = UInt64(now.tv_nsec) + nanoseconds
        var deadline = timespec()
        deadline.tv_sec = now.tv_sec + Int(total / 1_000_000_000)
        deadline.tv_nsec = Int(total % 1_000_000_000)
        pthread_cond_timedwait(condition, lock.mutex, &deadline)
    }

    public func broadcast() { pthread_cond_broadcast(condition) }
    public func signal() { pthread_cond_signal(condition) }
}

/// A mutex with one condition variable.
public final class ConditionLock: @unchecked Sendable {
    public let lock = Lock()
    private lazy var condition = Condition(lock)

    public init() {}

    @inlinable @inline(__always) public func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        try lock.withLock(body)
    }

    @inlinable @inline(__always) public func lockNow() { lock.lock() }
    @inlinable @inline(__always) public func unlock() { lock.unlock() }
    public func wait() { condition.wait() }
    public func wait(nanoseconds: UInt64) { condition.wait(nanoseconds: nanoseconds) }
    public func broadcast() { condition.broadcast() }
    public func signal() { condition.signal() }
}

/// Runs `body` over the bytes of `array`, keeping `body`'s typed error (the standard library's
/// `withUnsafeBytes` rethrows an untyped one).
@inlinable @inline(__always)
public func withBytes<T, E: Error>(_ array: [UInt8], _ body: (UnsafeRawBufferPointer) throws(E) -> T) throws(E) -> T {
    let result: Result<T, E> = array.withUnsafeBytes { raw in
        do throws(E) { return .success(try body(raw)) } catch { return .failure(error) }
    }
    return try result.get()
}

/// Like ``withBytes(_:_:)`` for writing into `array`.
@inlinable @inline(__always)
public func withMutableBytes<T, E: Error>(
    _ array: inout [UInt8], _ body: (UnsafeMutableRawBufferPointer) throws(E) -> T
) throws(E) -> T {
    let result: Result<T, E> = array.withUnsafeMutableBytes { raw in
        do throws(E) { return .success(try body(raw)) } catch { return .failure(error) }
    }
    return try result.get()
}

/// The nice value of a thread started with `background: true`: under contention the
/// scheduler gives such a thread about a third of the share of a normal one (weight 335 against
/// 1024), so a snapshot's walk and compression yield a core to the writers, and take all the CPU
/// that is idle.
public let backgroundNiceness: Int32 = 5

/// Starts a named OS thread running `body` (the log's background flusher uses one: it blocks
/// in `fdatasync`, which must never occupy a Swift concurrency pool thread). A `background`
/// thread runs at ``backgroundNiceness`` (Linux; elsewhere at the normal priority).
public func startThread(name: String, background: Bool = false, _ body: @escaping @Sendable () -> Void) {
    final class Box: @unchecked Sendable {
        let name: String
        let body: @Sendable () -> Void
        init(name: String, body: @escaping @Sendable () -> Void) { self.name = name; self.body = body }
    }
    let run: @Sendable () -> Void
    if background {
        run = { lowerThisThreadsPriority(); body() }
    } else {
        run = body
    }
    let box = Unmanaged.passRetained(Box(name: name, body: run))
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    #if os(Linux)
    var thread = pthread_t()
    #else
    var thread: pthread_t?
    #endif
    let result = pthread_create(&thread, &attributes, { raw in
        #if os(Linux)
        let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
        #else
        let box = Unmanaged<Box>.fromOpaque(raw).takeRetainedValue()
        #endif
        box.body()
        return nil
    }, box.toOpaque())
    precondition(result == 0, "pthread_create failed: \(result)")
    pthread_detach(thread)
}

/// Raises the calling thread's nice value to ``backgroundNiceness`` unless it is higher already
/// (a thread inherits its starter's): on Linux a nice value belongs to one thread, and `who` 0
/// names the calling one. Best effort: a failure leaves the thread at its priority.
private func lowerThisThreadsPriority() {
    #if os(Linux)
    let which = __priority_which_t(PRIO_PROCESS.rawValue)
    errno = 0
    let current = getpriority(which, 0)
    if errno == 0 && current < backgroundNiceness { _ = setpriority(which, 0, backgroundNiceness) }
    #endif
}

/// Monotonic nanoseconds, for measuring and for background timers (not for anything logged).
public func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}
