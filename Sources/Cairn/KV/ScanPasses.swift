import CairnStorage

/// SCAN's memory: the keys of the snapshot a scan pass started from, sorted by ``ScanHash``, so
/// that each later step is a binary search and `count` keys instead of a walk and a sort of the
/// whole keyspace (which made `redis-cli --scan` over a million keys take hours).
///
/// A cursor is `generation << 48 | position`: the pass it belongs to and the next 48-bit hash
/// to visit. The guarantee of SCAN holds whether or not the pass is still here: a key present
/// for the whole scan is in any snapshot taken after the scan began, so a step whose pass was
/// dropped (idle, evicted, or a restart) builds a new pass from the current keyspace, from its
/// position on, and goes on from there. Passes are bounded in number and idle time.
final class ScanPasses: @unchecked Sendable {
    static let positionBits = 48
    static let positionMask: UInt64 = (1 << 48) - 1
    /// At most this many passes are kept (the least recently used goes first).
    static let capacity = 8
    /// A pass unused for this long is dropped.
    static let idleMilliseconds: Int64 = 60_000

    struct Pass {
        var generation: UInt64
        var db: Int
        /// The first position the pass holds keys from (a pass rebuilt mid-scan starts there).
        var from: UInt64
        /// (position, key), sorted; expired keys left out when the pass was made.
        var keys: [(position: UInt64, key: Bytes)]
        var lastUsed: Int64
    }

    private let lock = Lock()
    private var passes: [Pass] = []
    private var lastGeneration: UInt64 = 0

    /// Where a key sits in every pass.
    static func position(of key: Bytes) -> UInt64 { ScanHash.of(key) & positionMask }

    /// The keys of `db`'s pass `generation` that sit at `position` or later, if that pass is
    /// still here and covers `position`.
    func keys(generation: UInt64, db: Int, position: UInt64, now: Int64) -> [(position: UInt64, key: Bytes)]? {
        guard generation != 0 else { return nil }
        return lock.withLock {
            dropIdle(now)
            guard let i = passes.firstIndex(where: { $0.generation == generation && $0.db == db && $0.from <= position }) else { return nil }
            passes[i].lastUsed = now
            return passes[i].keys
        }
    }

    /// Keeps a new pass of `keys` (sorted) from `from` on, and returns its generation.
    func add(db: Int, from: UInt64, keys: [(position: UInt64, key: Bytes)], now: Int64) -> UInt64 {
        lock.withLock {
            dropIdle(now)
            lastGeneration = lastGeneration % (UInt64(1) << (64 - Self.positionBits) - 1) + 1  // 1...65535
            let generation = lastGeneration
            passes.removeAll { $0.generation == generation }
            if passes.count >= Self.capacity, let oldest = passes.indices.min(by: { passes[$0].lastUsed < passes[$1].lastUsed }) {
                passes.remove(at: oldest)
            }
            passes.append(Pass(generation: generation, db: db, from: from, keys: keys, lastUsed: now))
            return generation
        }
    }

    /// Passes kept now (for tests).
    var count: Int { lock.withLock { passes.count } }

    private func dropIdle(_ now: Int64) {
        passes.removeAll { now - $0.lastUsed > Self.idleMilliseconds }
    }
}
