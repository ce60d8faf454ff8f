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
        /// Index of the item, or -1 once moved into a node.
        var index: Int
    }

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
            for i in 0..<n where slots[i].index >= 0 { (items + slots[i].index).deinitialize(count: 1) }
            count = 0
            throw error
        }
    }

    /// The node at `shift` for the slots in `range` (whose hashes agree below `shift`).
    private static let countersPerLevel = 96

    private func node(_ slots: UnsafeMutablePointer<Slot>, _ scratch: UnsafeMutablePointer<Slot>, _ counters: UnsafeMutablePointer<Int>,
                      _ range: Range<Int>, shift: Int) throws(DuplicateKey) -> KeyTableNode {
        if shift >= KeyTableNode.collisionShift {
            // Every hash here is the same: the keys must differ, checked before any moves.
            for i in range {
                for j in (i + 1)..<range.upperBound where items[slots[i].index].key == items[slots[j].index].key {
                    let (a, b) = (origins[slots[i].index], origins[slots[j].index])
                    throw DuplicateKey(key: items[slots[i].index].key, firstOrigin: min(a, b), secondOrigin: max(a, b))
                }
            }
            let node = KeyTableNode.make(itemCapacity: range.count, childCapacity: 0, isCollision: true)
            for i in range { move(&slots[i], into: node) }
            return node
        }
        // Counting sort of the range by this level's digit, through the scratch space.
        let counts = counters + Self.countersPerLevel * (shift / KeyTableNode.bitsPerLevel)
        let starts = counts + 32, next = counts + 64
        counts.initialize(repeating: 0, count: 32)
        for i in range { counts[Int((slots[i].hash &>> UInt64(shift)) & 31)] += 1 }
        var offset = range.lowerBound
        var itemMap: UInt32 = 0, childMap: UInt32 = 0
        for digit in 0..<32 {
            starts[digit] = offset
            offset += counts[digit]
            if counts[digit] == 1 { itemMap |= 1 << UInt32(digit) } else if counts[digit] > 1 { childMap |= 1 << UInt32(digit) }
        }
        next.update(from: starts, count: 32)
        for i in range {
            let digit = Int((slots[i].hash &>> UInt64(shift)) & 31)
            scratch[next[digit]] = slots[i]
            next[digit] += 1
        }
        (slots + range.lowerBound).update(from: scratch + range.lowerBound, count: range.count)

        let node = KeyTableNode.make(itemCapacity: itemMap.nonzeroBitCount, childCapacity: childMap.nonzeroBitCount)
        node.head.pointee.itemMap = itemMap
        node.head.pointee.childMap = childMap
        for digit in 0..<32 where counts[digit] > 0 {
            let start = starts[digit]
            if counts[digit] == 1 {
                move(&slots[start], into: node)
            } else {
                let child = try self.node(slots, scratch, counters, start..<(start + counts[digit]), shift: shift + KeyTableNode.bitsPerLevel)
                (node.children + node.childCount).initialize(to: child)
                node.head.pointee.childCount += 1
            }
        }
        return node
    }

    /// Moves the slot's item to the end of `node`'s items and marks the slot moved.
    private func move(_ slot: inout Slot, into node: KeyTableNode) {
        (node.items + node.itemCount).moveInitialize(from: items + slot.index, count: 1)
        node.head.pointee.itemCount += 1
        slot.index = -1
    }
}
