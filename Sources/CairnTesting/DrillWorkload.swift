import Cairn

/// The crash drill's writes: a seeded, numbered mix of key-value and znode writes whose effect
/// on the state does not
/// depend on when it runs (deadlines are absolute and far in the future; the znode times are the
/// txn's own, which the model does not compare), so a model can
/// compute the state after any prefix exactly.
public struct DrillWorkload: Sendable {
    public let seed: UInt64
    /// How many string keys the writes pick from, and how many znodes under each of the four
    /// top znodes. The defaults (64 and 8) keep the state small; thousands make snapshots large
    /// enough for the loader's parallel paths (keys and znodes decoded on their own threads).
    public let keys: Int
    public let znodesPerParent: Int

    public init(seed: UInt64, keys: Int = 64, znodesPerParent: Int = 8) {
        precondition(keys >= 2 && znodesPerParent >= 1, "the drill needs at least 2 keys and 1 znode a parent")
        self.seed = seed
        self.keys = keys
        self.znodesPerParent = znodesPerParent
    }

    /// Deadlines in the year 2100: always in the future, so never time-dependent.
    static let farFuture: Int64 = 4_102_444_800_000

    public func operation(_ number: Int) -> Operation {
        var rng = SplitMix64(seed: seed ^ (UInt64(number) &* 0x9E37_79B9_7F4A_7C15))
        let keys = UInt64(self.keys)
        let key = Bytes("drill:\(rng.next() % keys)")
        let value = Bytes("v\(number)")
        let node = "/drill\(rng.next() % 4)" + (rng.next() % 2 == 0 ? "/n\(rng.next() % UInt64(znodesPerParent))" : "")
        switch rng.next() % 13 {
        case 10: return .createNode(path: node, data: value, kind: .persistent, sequential: rng.next() % 4 == 0, ttl: 0, owner: 0)
        case 11: return .setNodeData(path: node, data: value, version: -1)
        case 12: return .deleteNode(path: node, version: -1)
        case 0, 1: return .set(key, value, condition: .always, expiry: .clear, returnOld: false)
        case 2: return .incrementBy(Bytes("counter:\(rng.next() % 8)"), 1)
        case 3: return .push(Bytes("queue:\(rng.next() % 4)"), [value], left: false, onlyIfExists: false)
        case 4: return .pop(Bytes("queue:\(rng.next() % 4)"), count: nil, left: true)
        case 5: return .hashSet(Bytes("hash:\(rng.next() % 4)"), fields: [key], values: [value])
        case 6: return .delete([key])
        case 7: return .expire(key, at: Self.farFuture + Int64(rng.next() % 1000), condition: .always)
        case 8: return .append(key, value)
        default: return .setMany(keys: [key, Bytes("drill:\(rng.next() % keys)")], values: [value, value], onlyIfNoneExist: false)
        }
    }
}

/// Follows the drill's sequence on an in-memory keyspace: which operations log a txn, and the
/// state after every logged txn.
public struct DrillModel {
    public let workload: DrillWorkload
    private var state = StoreState()
    /// kept[k]: the state after `firstKept + k` logged txns (earlier ones are forgotten).
    private var kept: [StoreState] = [StoreState()]
    private var firstKept = 0
    /// loggedBefore[n]: how many txns operations 0..<n logged.
    public private(set) var loggedBefore: [Int] = [0]

    public init(workload: DrillWorkload) { self.workload = workload }

    /// How many txns the operations modelled so far logged.
    public var loggedCount: Int { firstKept + kept.count - 1 }

    /// The state after `logged` txns, or nil if it was forgotten (a reopen recovered fewer txns
    /// than an earlier one: a durability bug the drill reports) or is not modelled yet.
    public func stateAfter(logged: Int) -> StoreState? {
        guard logged >= firstKept && logged <= loggedCount else { return nil }
        return kept[logged - firstKept]
    }

    /// Drops the states before `logged` txns: a drill never goes back past what a reopen
    /// recovered (it was made durable), and each kept state holds its own copied paths (about
    /// 2 KB a txn with thousands of keys).
    public mutating func forget(before logged: Int) {
        let drop = min(max(0, logged - firstKept), kept.count - 1)
        guard drop > 0 else { return }
        kept.removeFirst(drop)
        firstKept += drop
    }

    /// Runs the model through operation `number - 1`.
    public mutating func advance(through count: Int) {
        var changes = StoreState.Changes()
        while loggedBefore.count <= count {
            let number = loggedBefore.count - 1
            changes = StoreState.Changes()
            var next = state
            _ = next.apply(Txn(time: 0, operations: [workload.operation(number)]), index: UInt64(loggedCount + 1), changes: &changes)
            if !changes.isEmpty {
                state = next
                kept.append(state)
            }
            loggedBefore.append(loggedCount)
        }
    }

    /// The number of the first operation after `logged` txns (where a resumed writer starts).
    public func firstOperation(afterLogged logged: Int) -> Int {
        // The operation that logged txn `logged`, plus one; the first operation when none.
        guard logged > 0 else { return 0 }
        var number = 0
        while loggedBefore[number + 1] < logged { number += 1 }
        return number + 1
    }
}

extension DrillModel {
    /// True when `state` is the model's state after `logged` txns: the keyspace exactly, the
    /// tree exactly but for ctime and mtime (the wall-clock times the writer decided at).
    public func matches(_ state: StoreState, afterLogged logged: Int) -> Bool {
        guard let expected = stateAfter(logged: logged) else { return false }
        guard state.keyspace == expected.keyspace, state.tree.count == expected.tree.count else { return false }
        for (path, node) in expected.tree.nodes {
            guard var actual = state.tree.nodes[path] else { return false }
            var wanted = node
            (actual.stat.ctime, actual.stat.mtime, wanted.stat.ctime, wanted.stat.mtime) = (0, 0, 0, 0)
            if actual != wanted { return false }
        }
        return true
    }
}
