/// One key of a ``KeyTable`` with its hash (kept, so a lookup rejects other keys of its slot
/// and a split places them without reading their bytes).
@usableFromInline
struct KeyTableItem {
    @usableFromInline var hash: UInt64
    @usableFromInline var key: Bytes
    @usableFromInline var entry: Entry

    @inlinable init(hash: UInt64, key: Bytes, entry: Entry) {
        self.hash = hash
        self.key = key
        self.entry = entry
    }
}

/// The counts and maps of a ``KeyTableNode``.
///
/// | field         | meaning                                                                 |
/// |---------------|-------------------------------------------------------------------------|
/// | itemMap       | bit d set: the node holds an item whose hash digit at this level is d   |
/// | childMap      | bit d set: the node holds a child node for digit d (never both bits)    |
/// | itemCount     | items held, in digit order (a collision node: items of one full hash)   |
/// | childCount    | children held, in digit order                                           |
/// | itemCapacity  | item slots allocated (the children's slots follow them)                 |
/// | childCapacity | child slots allocated                                                   |
@usableFromInline
struct KeyTableNodeHeader {
    @usableFromInline var itemMap: UInt32 = 0
    @usableFromInline var childMap: UInt32 = 0
    @usableFromInline var itemCount: UInt32 = 0
    @usableFromInline var childCount: UInt32 = 0
    @usableFromInline var itemCapacity: UInt32
    @usableFromInline var childCapacity: UInt32
    /// Below the last level of hash digits: every item has the same hash, kept in a list.
    @usableFromInline var isCollision: Bool

    @inlinable init(itemCapacity: UInt32, childCapacity: UInt32, isCollision: Bool) {
        self.itemCapacity = itemCapacity
        self.childCapacity = childCapacity
        self.isCollision = isCollision
    }
}

/// A node of the hash trie: one allocation holding the header, then `itemCapacity` items, then
/// `childCapacity` child references (the layout of a CHAMP node: items and children apart, each
/// in digit order, found by counting the map's bits below the digit's).
///
/// Nodes are shared between copies of a table and changed in place only when referenced once
/// (`isKnownUniquelyReferenced`); everything unsafe about them stays in this file.
@usableFromInline
final class KeyTableNode: ManagedBuffer<KeyTableNodeHeader, KeyTableItem> {
    /// Bits of the hash each level consumes, and so the fan-out (32).
    @usableFromInline static let bitsPerLevel = 5
    /// The shift at which hash digits run out: nodes there are collision nodes.
    @usableFromInline static let collisionShift = 65

    @inlinable static func make(itemCapacity: Int, childCapacity: Int, isCollision: Bool = false) -> KeyTableNode {
        precondition(itemCapacity >= 0 && childCapacity >= 0 && itemCapacity <= 1 << 20 && childCapacity <= 32, "node capacities out of range")
        let childUnits = (childCapacity * MemoryLayout<KeyTableNode>.stride + MemoryLayout<KeyTableItem>.stride - 1) / MemoryLayout<KeyTableItem>.stride
        let buffer = create(minimumCapacity: itemCapacity + childUnits) { _ in
            KeyTableNodeHeader(itemCapacity: UInt32(itemCapacity), childCapacity: UInt32(childCapacity), isCollision: isCollision)
        }
        let node = unsafeDowncast(buffer, to: KeyTableNode.self)
        if childCapacity > 0 {
            _ = UnsafeMutableRawPointer(node.items + itemCapacity).bindMemory(to: KeyTableNode.self, capacity: childCapacity)
        }
        return node
    }

    deinit {
        withUnsafeMutablePointers { header, items in
            items.deinitialize(count: Int(header.pointee.itemCount))
            UnsafeMutableRawPointer(items + Int(header.pointee.itemCapacity))
                .assumingMemoryBound(to: KeyTableNode.self).deinitialize(count: Int(header.pointee.childCount))
        }
    }

    // MARK: Storage

    /// The header, through a pointer: `ManagedBuffer.header` is a stored class property, and
    /// each access to it is checked for exclusivity at run time.
    @inlinable var head: UnsafeMutablePointer<KeyTableNodeHeader> { withUnsafeMutablePointerToHeader { $0 } }

    /// The items (valid while the node lives).
    @inlinable var items: UnsafeMutablePointer<KeyTableItem> { withUnsafeMutablePointerToElements { $0 } }

    /// The children, after the item slots.
    @inlinable var children: UnsafeMutablePointer<KeyTableNode> {
        UnsafeMutableRawPointer(items + Int(head.pointee.itemCapacity)).assumingMemoryBound(to: KeyTableNode.self)
    }

    /// Child `index`, not retained (for walks that `self`'s owner keeps alive).
    @inlinable func unmanagedChild(_ index: Int) -> Unmanaged<KeyTableNode> {
        UnsafeRawPointer(children + index).load(as: Unmanaged<KeyTableNode>.self)
    }

    @inlinable var itemCount: Int { Int(head.pointee.itemCount) }
    @inlinable var childCount: Int { Int(head.pointee.childCount) }

    /// This level's digit of `hash` as a one-bit map.
    @inlinable static func bit(_ hash: UInt64, shift: Int) -> UInt32 {
        1 &<< UInt32(truncatingIfNeeded: (hash &>> UInt64(shift)) & 31)
    }

    /// Where the item or child for `bit` sits among those of `map`.
    @inlinable static func slot(_ map: UInt32, _ bit: UInt32) -> Int {
        (map & (bit &- 1)).nonzeroBitCount
    }

    // MARK: Copies and growth

    /// A copy sharing every item's value and every child (for a node referenced elsewhere),
    /// exactly as large as its content.
    @inlinable func copy() -> KeyTableNode {
        let copy = KeyTableNode.make(itemCapacity: itemCount, childCapacity: childCount, isCollision: head.pointee.isCollision)
        copy.items.initialize(from: items, count: itemCount)
        copy.children.initialize(from: children, count: childCount)
        copy.takeMapsAndCounts(of: self)
        return copy
    }

    /// A node with the same content and more room, taking this node's items and children
    /// (which must be referenced only here; this node is left empty).
    @inlinable func moved(itemCapacity: Int, childCapacity: Int) -> KeyTableNode {
        let bigger = KeyTableNode.make(itemCapacity: itemCapacity, childCapacity: childCapacity, isCollision: head.pointee.isCollision)
        bigger.items.moveInitialize(from: items, count: itemCount)
        bigger.children.moveInitialize(from: children, count: childCount)
        bigger.takeMapsAndCounts(of: self)
        head.pointee.itemCount = 0
        head.pointee.childCount = 0
        return bigger
    }

    /// The maps and counts of `other`, whose items and children this node has just been given
    /// (its own capacities stay).
    @inlinable func takeMapsAndCounts(of other: KeyTableNode) {
        head.pointee.itemMap = other.head.pointee.itemMap
        head.pointee.childMap = other.head.pointee.childMap
        head.pointee.itemCount = other.head.pointee.itemCount
        head.pointee.childCount = other.head.pointee.childCount
    }

    /// Room for `room` more items and `childRoom` more children; grows by doubling (a node takes
    /// at most 32 of each, or a collision node's list).
    @inlinable static func makeRoom(_ node: inout KeyTableNode, items room: Int, children childRoom: Int) {
        let needItems = node.itemCount + room, needChildren = node.childCount + childRoom
        guard needItems > Int(node.head.pointee.itemCapacity) || needChildren > Int(node.head.pointee.childCapacity) else { return }
        let cap = node.head.pointee.isCollision ? Int.max : 32
        node = node.moved(itemCapacity: needItems > Int(node.head.pointee.itemCapacity) ? min(cap, max(needItems, 2 * node.itemCount)) : Int(node.head.pointee.itemCapacity),
                          childCapacity: needChildren > Int(node.head.pointee.childCapacity) ? min(32, max(needChildren, 2 * node.childCount)) : Int(node.head.pointee.childCapacity))
    }

    // MARK: Edits of a node referenced once

    /// Inserts `item` at slot `index` of the items (room must be there), setting `bit` (0 in a
    /// collision node, which has no map).
    @inlinable func insertItem(_ item: consuming KeyTableItem, at index: Int, bit: UInt32) {
        assert(itemCount < Int(head.pointee.itemCapacity) && head.pointee.itemMap & bit == 0 && head.pointee.childMap & bit == 0)
        let base = items
        (base + index + 1).moveInitialize(from: base + index, count: itemCount - index)
        (base + index).initialize(to: item)
        head.pointee.itemCount += 1
        head.pointee.itemMap |= bit
    }

    /// Removes and returns the item at slot `index`, clearing `bit` (0 in a collision node).
    @inlinable func removeItem(at index: Int, bit: UInt32) -> KeyTableItem {
        assert(index < itemCount)
        let base = items
        let item = (base + index).move()
        (base + index).moveInitialize(from: base + index + 1, count: itemCount - index - 1)
        head.pointee.itemCount -= 1
        head.pointee.itemMap &= ~bit
        return item
    }

    /// Inserts `child` at slot `index` of the children (room must be there), setting `bit`.
    @inlinable func insertChild(_ child: KeyTableNode, at index: Int, bit: UInt32) {
        assert(childCount < Int(head.pointee.childCapacity) && head.pointee.itemMap & bit == 0 && head.pointee.childMap & bit == 0)
        let base = children
        (base + index + 1).moveInitialize(from: base + index, count: childCount - index)
        (base + index).initialize(to: child)
        head.pointee.childCount += 1
        head.pointee.childMap |= bit
    }

    /// Removes the child at slot `index` (released), clearing `bit`.
    @inlinable func removeChild(at index: Int, bit: UInt32) {
        assert(index < childCount)
        let base = children
        (base + index).deinitialize(count: 1)
        (base + index).moveInitialize(from: base + index + 1, count: childCount - index - 1)
        head.pointee.childCount -= 1
        head.pointee.childMap &= ~bit
    }
}
