import CPrefetch

/// Builds a ``KeyTable`` from many keys at once (a snapshot's load): the keys are gathered,
/// partitioned by hash digit level by level (a radix sort over the hashes), and every node is
/// made once at its final size, the items moved into it. Inserting them one by one walks a path
/// per key and grows each node many times: a million keys load in a fraction of the time.
///
/// ```swift
/// let builder = KeyTableBuilder(capacity: 2)
/// builder.append("a", Entry(value: .string("1"), version: 1), origin: 0)
/// builder.append("b", Entry(value: .string("2"), version: 1), origin: 1)
/// let table = try builder.build()   // throws on a key appended twice
/// ```
final class KeyTableBuilder: @unchecked Sendable {  // (used by one thread at a time)
    /// A key appended twice, with the `origin` given for each (e.g. content offsets).
    struct DuplicateKey: Error {
        let key: Bytes
        let firstOrigin: Int
        let secondOrigin: Int
    }

    private struct Slot {
        var hash: UInt64
        /// Index of the item.
        var index: Int
    }

    /// In `origins`, an item moved into a node (so not freed again after a failure).
    private static let movedMark = Int.min

    private var items: UnsafeMutablePointer<KeyTableItem>
    private var origins: UnsafeMutablePointer<Int>
    private var capacity: Int
    private(set) var count = 0

    init(capacity: Int = 16) {
        self.capacity = max(capacity, 16)
        items = .allocate(capacity: self.capacity)
        origins = .allocate(capacity: self.capacity)
    }

    deinit {
        items.deinitialize(count: count)
        items.deallocate()
        origins.deallocate()
    }

    /// Adds a key; `origin` is reported if the key turns out to be there twice. (`hash` is for
    /// tests, which give colliding ones.)
    func append(_ key: consuming Bytes, _ entry: consuming Entry, origin: Int, hash: UInt64? = nil) {
        precondition(origin != Self.movedMark, "origin \(origin) is reserved")
        if count == capacity { grow() }
        let hash = hash ?? KeyTable.hash(key)
        (items + count).initialize(to: KeyTableItem(hash: hash, key: key, entry: entry))
        origins[count] = origin
        count += 1
    }

    private func grow() {
        let bigger = UnsafeMutablePointer<KeyTableItem>.allocate(capacity: capacity * 2)
        bigger.moveInitialize(from: items, count: count)
        items.deallocate()
        items = bigger
        let biggerOrigins = UnsafeMutablePointer<Int>.allocate(capacity: capacity * 2)
        biggerOrigins.update(from: origins, count: count)
        origins.deallocate()
        origins = biggerOrigins
        capacity *= 2
    }

    /// The table of every key appended (the builder is left empty, whether this throws or not).
    func build() throws(DuplicateKey) -> KeyTable {
        let n = count
        let slots = UnsafeMutablePointer<Slot>.allocate(capacity: max(n, 1))
        let scratch = UnsafeMutablePointer<Slot>.allocate(capacity: max(n, 1))
        // Each level's digit counts, starts and cursors (3 x 32), kept apart per level so a
        // parent's survive the recursion into its children.
        let counters = UnsafeMutablePointer<Int>.allocate(capacity: Self.countersPerLevel * (KeyTableNode.collisionShift / KeyTableNode.bitsPerLevel + 1))
        defer {
            slots.deallocate()
            scratch.deallocate()
            counters.deallocate()
        }
        for i in 0..<n { slots[i] = Slot(hash: items[i].hash, index: i) }
        do {
            let root = try node(slots, scratch, counters, 0..<n, shift: 0)
            count = 0
            return KeyTable(root: root, count: n)
        } catch {
            // Nodes made so far own their items (and free them); the rest are still here.
            for i in 0..<n where origins[i] != Self.movedMark { (items + i).deinitialize(count: 1) }
            count = 0
            throw error
        }
    }

    private static let countersPerLevel = 96

    /// The node at `shift` for the slots in `range` of `source` (whose hashes agree below
    /// `shift`). The slots are partitioned by this level's digit into `target`, whose ranges
    /// the children then partition back into `source` (no copying back).
    private func node(_ source: UnsafeMutablePointer<Slot>, _ target: UnsafeMutablePointer<Slot>, _ counters: UnsafeMutablePointer<Int>,
                      _ range: Range<Int>, shift: Int) throws(DuplicateKey) -> KeyTableNode {
        if shift >= KeyTableNode.collisionShift {
            // Every hash here is the same: the keys must differ, checked before any moves.
            for i in range {
                for j in (i + 1)..<range.upperBound where items[source[i].index].key == items[source[j].index].key {
                    let (a, b) = (origins[source[i].index], origins[source[j].index])
                    throw DuplicateKey(key: items[source[i].index].key, firstOrigin: min(a, b), secondOrigin: max(a, b))
                }
            }
            let node = KeyTableNode.make(itemCapacity: range.count, childCapacity: 0, isCollision: true)
            for i in range { move(source[i].index, into: node) }
            return node
        }
        // Counting sort of the range by this level's digit.
        let counts = counters + Self.countersPerLevel * (shift / KeyTableNode.bitsPerLevel)
        let starts = counts + 32, next = counts + 64
        counts.initialize(repeating: 0, count: 32)
        for i in range { counts[Int((source[i].hash &>> UInt64(shift)) & 31)] += 1 }
        var offset = range.lowerBound
        var itemMap: UInt32 = 0, childMap: UInt32 = 0
        for digit in 0..<32 {
            starts[digit] = offset
            offset += counts[digit]
            if counts[digit] == 1 { itemMap |= 1 << UInt32(digit) } else if counts[digit] > 1 { childMap |= 1 << UInt32(digit) }
        }
        next.update(from: starts, count: 32)
        for i in range {
            let digit = Int((source[i].hash &>> UInt64(shift)) & 31)
            target[next[digit]] = source[i]
            next[digit] += 1
        }

        let node = KeyTableNode.make(itemCapacity: itemMap.nonzeroBitCount, childCapacity: childMap.nonzeroBitCount)
        node.head.pointee.itemMap = itemMap
        node.head.pointee.childMap = childMap
        // This node's own items first (they lie scattered in the buffer: all prefetched, then
        // moved), then the children, each in digit order.
        var map = itemMap
        while map != 0 {
            let item = UnsafeRawPointer(items + target[starts[map.trailingZeroBitCount]].index)
            cairn_prefetch(item)
            cairn_prefetch(item + MemoryLayout<KeyTableItem>.stride - 1)
            map &= map - 1
        }
        map = itemMap
        while map != 0 {
            move(target[starts[map.trailingZeroBitCount]].index, into: node)
            map &= map - 1
        }
        map = childMap
        while map != 0 {
            let digit = map.trailingZeroBitCount
            let child = try self.node(target, source, counters, starts[digit]..<(starts[digit] + counts[digit]), shift: shift + KeyTableNode.bitsPerLevel)
            (node.children + node.childCount).initialize(to: child)
            node.head.pointee.childCount += 1
            map &= map - 1
        }
        return node
    }

    /// Moves item `index` to the end of `node`'s items and marks it moved.
    private func move(_ index: Int, into node: KeyTableNode) {
        (node.items + node.itemCount).moveInitialize(from: items + index, count: 1)
        node.head.pointee.itemCount += 1
        origins[index] = Self.movedMark
    }
}
