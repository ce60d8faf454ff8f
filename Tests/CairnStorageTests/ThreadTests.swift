import CairnStorage
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The OS threads the log and the store start.
struct ThreadTests {
    /// What a thread's body saw of its own nice value.
    private final class Seen: @unchecked Sendable {
        let lock = ConditionLock()
        var niceness: Int32?
    }

    private func niceness(background: Bool) -> Int32? {
        let seen = Seen()
        startThread(name: "test-priority", background: background) {
            errno = 0
            let value = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
            seen.lock.withLock { seen.niceness = value; seen.lock.broadcast() }
        }
        return seen.lock.withLock {
            let deadline = monotonicNanoseconds() + 10_000_000_000
            while seen.niceness == nil && monotonicNanoseconds() < deadline { seen.lock.wait(nanoseconds: 10_000_000) }
            return seen.niceness
        }
    }

    #if os(Linux)
    @Test func aBackgroundThreadRunsAtTheBackgroundNicenessAndOthersAtTheStartersOwn() {
        let own = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        #expect(niceness(background: false) == own)
        // Lowered to the background niceness, never raised (a thread inherits its starter's).
        #expect(niceness(background: true) == max(own, backgroundNiceness))
    }
    #endif
}
