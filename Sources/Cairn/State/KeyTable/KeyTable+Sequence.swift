import CPrefetch

extension KeyTable: Sequence {
    public typealias Element = (key: Bytes, value: Entry)

    /// Visits every key once, in the trie's order (of hashes: unspecified, and not stable across
    /// processes, as for `Dictionary`).
    public struct Iterator: IteratorProtocol {
        // Each level's node and the next position in it: items first, then children. The root
        // is held strongly, which keeps every node below it alive.
        @usableFromInline let root: KeyTableNode
        @usableFromInline var path: ContiguousArray<KeyTablePathStep>

        @usableFromInline init(root: KeyTableNode) {
            self.root = root
            path = []
            path.reserveCapacity(KeyTablePathStep.maximumDepth)
            path.append(KeyTablePathStep(node: Unmanaged.passUnretained(root)))
        }

        public mutating func next() -> Element? {
            while let last = path.last {
                let (item, child): (Element?, Unmanaged<KeyTableNode>?) = last.node._withUnsafeGuaranteedRef { node in
                    if last.next < node.itemCount {
                        let item = node.items + last.next
                        return ((item.pointee.key, item.pointee.entry), nil)
                    }
                    let child = last.next - node.itemCount
                    return (nil, child < node.childCount ? node.unmanagedChild(child) : nil)
                }
                if let item {
                    path[path.count - 1].next += 1
                    return item
                }
                if let child {
                    path[path.count - 1].next += 1
                    path.append(KeyTablePathStep(node: child))
                } else {
                    path.removeLast()
                }
            }
            return nil
        }
    }

    public func makeIterator() -> Iterator { Iterator(root: root) }

    public var underestimatedCount: Int { count }

    /// Runs `body` on every item in place, without copying it out first, and prefetches the
    /// key and value objects of the items a few places ahead: the walk of a large table is bound
    /// by cache misses on those objects, and each copy's reference count is an atomic
    /// operation that makes the CPU wait for its miss before starting the next. (The snapshot
    /// writer's loop: a million keys go 2-3x faster this way.)
    ///
    /// The item is valid only during the call, and `body` must not change the table.
    func forEachItem(_ body: (UnsafePointer<KeyTableItem>) throws -> Void) rethrows {
        // Items are gathered in batches of pointers into their nodes (which `self` keeps alive),
        // their objects prefetched, then handed out.
        let batchSize = 32
        var batch = ContiguousArray<UnsafePointer<KeyTableItem>>()
        batch.reserveCapacity(batchSize)
        var path = ContiguousArray<KeyTablePathStep>()
        path.reserveCapacity(KeyTablePathStep.maximumDepth)
        path.append(KeyTablePathStep(node: Unmanaged.passUnretained(root)))
        let keyOffset = MemoryLayout<KeyTableItem>.offset(of: \.key)!
        let valueOffset = MemoryLayout<KeyTableItem>.offset(of: \.entry.value)!
        func prefetchObject(_ item: UnsafePointer<KeyTableItem>, at offset: Int) {
            // A reference's bits, read without retaining it (a tag in the spare bits at either
            // end is masked off; a wrong guess only wastes the hint).
            let bits = UnsafeRawPointer(item).load(fromByteOffset: offset, as: UInt.self) & 0x0000_FFFF_FFFF_FFF8
            guard let object = UnsafeRawPointer(bitPattern: bits) else { return }
            cairn_prefetch(object)
            cairn_prefetch(object + 64)
        }
        func drain() throws {
            for item in batch {
                prefetchObject(item, at: keyOffset)
                prefetchObject(item, at: valueOffset)
            }
            for item in batch { try body(item) }
            batch.removeAll(keepingCapacity: true)
        }
        try withExtendedLifetime(root) {
            while let last = path.last {
                if last.next == 0 {
                    try last.node._withUnsafeGuaranteedRef { node in
                        let items = UnsafePointer(node.items)
                        for i in 0..<node.itemCount {
                            batch.append(items + i)
                            if batch.count == batchSize { try drain() }
                        }
                        for i in 0..<node.childCount { cairn_prefetch(UnsafeRawPointer(node.unmanagedChild(i).toOpaque())) }
                    }
                }
                let child: Unmanaged<KeyTableNode>? = last.node._withUnsafeGuaranteedRef { node in
                    last.next < node.childCount ? node.unmanagedChild(last.next) : nil
                }
                if let child {
                    path[path.count - 1].next += 1
                    path.append(KeyTablePathStep(node: child))
                } else {
                    path.removeLast()
                }
            }
            try drain()
        }
    }
}

/// A level of a walk down a ``KeyTable``: the node (kept alive by the walk's root) and the next
/// position in it.
@usableFromInline
struct KeyTablePathStep {
    /// Levels of hash digits, and the collision level below them.
    @usableFromInline static let maximumDepth = KeyTableNode.collisionShift / KeyTableNode.bitsPerLevel + 2
    @usableFromInline var node: Unmanaged<KeyTableNode>
    @usableFromInline var next = 0

    @inlinable init(node: Unmanaged<KeyTableNode>) { self.node = node }
}

extension KeyTable: Equatable {
    /// Same keys with equal entries (tables sharing their root are equal without a walk).
    public static func == (lhs: KeyTable, rhs: KeyTable) -> Bool {
        if lhs.root === rhs.root { return true }
        guard lhs.count == rhs.count else { return false }
        for (key, entry) in lhs where rhs[key] != entry { return false }
        return true
    }
}

extension KeyTable {
    /// Checks the trie's invariants (for tests): maps and counts agree, every item sits where its
    /// hash's digits lead, collision nodes only where the digits run out and holding one hash, no
    /// node below the root with a single item and no children (removals fold those into their
    /// parent), and `count` is the number of items.
    func checkInvariants() {
        func check(_ node: KeyTableNode, shift: Int, prefix: UInt64) -> Int {
            let mask: UInt64 = shift >= 64 ? .max : (1 << UInt64(shift)) - 1
            if node.head.pointee.isCollision {
                precondition(shift >= KeyTableNode.collisionShift && node.itemCount >= 2 && node.childCount == 0, "misplaced collision node")
                for i in 0..<node.itemCount { precondition(node.items[i].hash == node.items[0].hash && node.items[i].hash & mask == prefix) }
                return node.itemCount
            }
            precondition(shift < KeyTableNode.collisionShift, "a plain node where the hash digits have run out")
            precondition(node.head.pointee.itemMap & node.head.pointee.childMap == 0, "a digit with both an item and a child")
            precondition(node.head.pointee.itemMap.nonzeroBitCount == node.itemCount && node.head.pointee.childMap.nonzeroBitCount == node.childCount, "maps and counts disagree")
            precondition(node.itemCount <= Int(node.head.pointee.itemCapacity) && node.childCount <= Int(node.head.pointee.childCapacity))
            if shift > 0 { precondition(node.itemCount + node.childCount >= 1 && !(node.itemCount == 1 && node.childCount == 0), "a node that should have been folded into its parent") }
            var total = 0
            var map = node.head.pointee.itemMap, index = 0
            while map != 0 {
                let digit = UInt64(map.trailingZeroBitCount)
                let item = node.items[index]
                precondition(item.hash & mask == prefix && (item.hash >> UInt64(shift)) & 31 == digit, "an item off its hash's path")
                map &= map - 1
                index += 1
                total += 1
            }
            map = node.head.pointee.childMap
            index = 0
            while map != 0 {
                let digit = UInt64(map.trailingZeroBitCount)
                total += check(node.children[index], shift: shift + KeyTableNode.bitsPerLevel, prefix: prefix | (digit << UInt64(shift)))
                map &= map - 1
                index += 1
            }
            return total
        }
        precondition(check(root, shift: 0, prefix: 0) == count, "count disagrees with the items")
    }
}
