import CPrefetch

extension KeyTable {
    /// Most paths hinted at once by ``prefetchPaths(_:values:)``.
    static let maxPrefetchedPaths = 32

    /// Starts loading into the cache the nodes on the paths of the keys with these hashes, all
    /// paths a step at a time, so that their cache misses overlap: a walk down a table too large
    /// for the cache waits for each node in turn, and a batch of writes about to be applied (a
    /// group commit's replay into the committed state) would wait for all of them one by one.
    /// Changes nothing and retains nothing; the table must not change meanwhile. At most
    /// ``maxPrefetchedPaths`` hashes are used. With `values`, the items' value objects are
    /// hinted too: what reads want (GET `-P 16` over 1M keys, 3 of 4 paired rounds faster),
    /// and writes do not (SET and INCR slower in 7 of 8). Returns how many paths led to an
    /// item (the key's, or another in its slot: a lookup would compare them), for tests.
    @discardableResult
    func prefetchPaths(_ hashes: UnsafeBufferPointer<UInt64>, values: Bool = false) -> Int {
        let count = Swift.min(hashes.count, Self.maxPrefetchedPaths)
        guard count > 0 else { return 0 }
        var reachedItems = 0
        let keyOffset = MemoryLayout<KeyTableItem>.offset(of: \.key)!
        let valueOffset = MemoryLayout<KeyTableItem>.offset(of: \.entry.value)!
        // A reference's bits, read without retaining it (spare tag bits masked off; a wrong
        // guess only wastes the hint).
        func object(at address: UnsafeRawPointer) -> UnsafeRawPointer? {
            UnsafeRawPointer(bitPattern: address.load(as: UInt.self) & 0x0000_FFFF_FFFF_FFF8)
        }
        withExtendedLifetime(root) {
            withUnsafeTemporaryAllocation(of: Unmanaged<KeyTableNode>?.self, capacity: count) { nodes in
                withUnsafeTemporaryAllocation(of: UnsafeRawPointer?.self, capacity: count) { slots in
                    nodes.initialize(repeating: Unmanaged.passUnretained(root))
                    slots.initialize(repeating: nil)
                    var shift = 0
                    var walking = count
                    while walking > 0 {
                        // Step 1, each node's header (hinted by step 2 of the level above): the
                        // slot its key's digit leads to, hinted.
                        for i in 0..<count {
                            guard let node = nodes[i] else { continue }
                            slots[i] = node._withUnsafeGuaranteedRef { node -> UnsafeRawPointer? in
                                let head = node.head.pointee
                                if head.isCollision || shift >= KeyTableNode.collisionShift { return nil }
                                let bit = KeyTableNode.bit(hashes[i], shift: shift)
                                if head.childMap & bit != 0 {
                                    let child = UnsafeRawPointer(node.children + KeyTableNode.slot(head.childMap, bit))
                                    cairn_prefetch(child)
                                    return child
                                }
                                if head.itemMap & bit != 0 {
                                    // The key's item: its slot now, its key (compared by the
                                    // walk) and value once the slot is in.
                                    let item = UnsafeRawPointer(node.items + KeyTableNode.slot(head.itemMap, bit))
                                    cairn_prefetch(item)
                                    cairn_prefetch(item + MemoryLayout<KeyTableItem>.stride - 1)
                                    return item
                                }
                                return nil
                            }
                        }
                        // Step 2, each slot: a child's header hinted (the next level), or the
                        // item's key (and value) objects.
                        walking = 0
                        for i in 0..<count {
                            guard nodes[i] != nil, let slot = slots[i] else { nodes[i] = nil; continue }
                            let isChild = nodes[i]!._withUnsafeGuaranteedRef { node in
                                let head = node.head.pointee
                                return head.childMap & KeyTableNode.bit(hashes[i], shift: shift) != 0
                            }
                            if isChild {
                                guard let child = object(at: slot) else { nodes[i] = nil; continue }
                                cairn_prefetch(child)
                                cairn_prefetch(child + 48)
                                nodes[i] = Unmanaged<KeyTableNode>.fromOpaque(child)
                                walking += 1
                            } else {
                                if let key = object(at: slot + keyOffset) { cairn_prefetch(key) }
                                if values, let value = object(at: slot + valueOffset) { cairn_prefetch(value) }
                                nodes[i] = nil
                                reachedItems += 1
                            }
                        }
                        shift += KeyTableNode.bitsPerLevel
                    }
                }
            }
        }
        return reachedItems
    }
}
