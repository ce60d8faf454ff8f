import Cairn

/// The crash drill's writes: a seeded, numbered sequence whose effect on the state does not
/// depend on when it runs (deadlines are absolute and far in the future), so a model can
/// compute the state after any prefix exactly.
public struct DrillWorkload: Sendable {
    public let seed: UInt64

    public init(seed: UInt64) { self.seed = seed }

    /// Deadlines in the year 2100: always in the future, so never time-dependent.
    static let farFuture: Int64 = 4_102_444_800_000

    public func operation(_ number: Int) -> Operation {
        var rng = SplitMix64(seed: seed ^ (UInt64(number) &* 0x9E37_79B9_7F4A_7C15))
        let key = Bytes("drill:\(rng.next() % 64)")
        let value = Bytes("v\(number)")
        switch rng.next() % 10 {
        case 0, 1: return .set(key, value, condition: .always, expiry: .clear, returnOld: false)
        case 2: return .incrementBy(Bytes("counter:\(rng.next() % 8)"), 1)
        case 3: return .push(Bytes("queue:\(rng.next() % 4)"), [value], left: false, onlyIfExists: false)
        case 4: return .pop(Bytes("queue:\(rng.next() % 4)"), count: nil, left: true)
        case 5: return .hashSet(Bytes("hash:\(rng.next() % 4)"), fields: [key], values: [value])
        case 6: return .delete([key])
        case 7: return .expire(key, at: Self.farFuture + Int64(rng.next() % 1000), condition: .always)
        case 8: return .append(key, value)
        default: return .setMany(keys: [key, Bytes("drill:\(rng.next() % 64)")], values: [value, value], onlyIfNoneExist: false)
        }
    }
}

/// Follows the drill's sequence on an in-memory keyspace: which operations log a txn, and the
/// state after every logged txn.
public struct DrillModel {
    public let workload: DrillWorkload
    private var state = Keyspace()
    /// states[k]: the state after k logged txns.
    public private(set) var states: [Keyspace] = [Keyspace()]
    /// loggedBefore[n]: how many txns operations 0..<n logged.
    public private(set) var loggedBefore: [Int] = [0]

    public init(workload: DrillWorkload) { self.workload = workload }

    /// Runs the model through operation `number - 1`.
    public mutating func advance(through count: Int) {
        var changes: [KeyspaceChange] = []
        while loggedBefore.count <= count {
            let number = loggedBefore.count - 1
            changes.removeAll(keepingCapacity: true)
            var next = state
            _ = next.apply(Txn(time: 0, operations: [workload.operation(number)]), index: UInt64(states.count), changes: &changes)
            if !changes.isEmpty {
                state = next
                states.append(state)
            }
            loggedBefore.append(states.count - 1)
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
