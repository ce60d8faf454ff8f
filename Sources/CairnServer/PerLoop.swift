import CairnStorage
import NIOCore

/// One `Value` for each event loop of a server (its ``LoopCommitter``, its ``LoopFlusher``),
/// made on first use. Only that loop's thread uses a value; the registry is shared.
///
/// ```swift
/// let flushers = PerLoop { LoopFlusher(loop: $0) }
/// flushers[context.eventLoop].add(context)
/// ```
final class PerLoop<Value>: @unchecked Sendable {
    private let make: (EventLoop) -> Value
    private let lock = Lock()
    private var byLoop: [ObjectIdentifier: Value] = [:]
    private var made: [(loop: EventLoop, value: Value)] = []

    init(_ make: @escaping (EventLoop) -> Value) {
        self.make = make
    }

    /// Every loop's value made so far.
    var all: [(loop: EventLoop, value: Value)] { lock.withLock { made } }

    subscript(_ loop: EventLoop) -> Value {
        lock.withLock {
            if let value = byLoop[ObjectIdentifier(loop)] { return value }
            let value = make(loop)
            byLoop[ObjectIdentifier(loop)] = value
            made.append((loop, value))
            return value
        }
    }
}
