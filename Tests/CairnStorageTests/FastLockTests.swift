import CairnStorage
import Dispatch
import Testing

/// `FastLock` excludes: threads that add under it never lose an update.
struct FastLockTests {
    private final class Counter: @unchecked Sendable {
        let lock = FastLock()
        var value = 0
    }

    @Test func threadsAddingUnderTheLockLoseNothing() {
        let counter = Counter()
        let threads = 4, rounds = 200_000
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            for _ in 0..<rounds { counter.lock.withLock { counter.value += 1 } }
        }
        #expect(counter.value == threads * rounds)
    }

    @Test func anErrorThrownInsideReleasesTheLock() {
        struct Refused: Error {}
        let lock = FastLock()
        #expect(throws: Refused.self) { try lock.withLock { () throws(Refused) in throw Refused() } }
        #expect(lock.withLock { 7 } == 7, "the lock was released by the throw")
    }
}
