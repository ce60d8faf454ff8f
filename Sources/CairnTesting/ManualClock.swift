import Cairn
import CairnStorage

/// A clock that moves only when told: TTL tests are exact to the millisecond.
public final class ManualClock: Clock, @unchecked Sendable {
    private let lock = Lock()
    private var now: Int64

    public init(_ start: Int64 = 1_700_000_000_000) { now = start }

    public func nowMilliseconds() -> Int64 { lock.withLock { now } }

    public func advance(milliseconds: Int64) { lock.withLock { now += milliseconds } }
    public func set(_ milliseconds: Int64) { lock.withLock { now = milliseconds } }
}
