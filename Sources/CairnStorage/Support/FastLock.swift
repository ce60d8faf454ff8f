import Synchronization

/// A mutex whose uncontended lock and unlock are one atomic instruction each (the standard
/// library's `Mutex`, a futex on Linux), where a pthread mutex costs a call into libc and more
/// bookkeeping. No condition variable can wait on it: use ``Lock`` for that.
///
/// ```swift
/// let lock = FastLock()
/// let next = lock.withLock { counter += 1; return counter }
/// ```
public final class FastLock: Sendable {
    @usableFromInline let mutex = Mutex(())

    public init() {}

    /// Runs `body` with the lock held; it is released however `body` ends.
    @inlinable @inline(__always)
    public func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        try mutex.withLock { (_: inout ()) throws(E) -> T in try body() }
    }
}
