/// The keys of one database and their entries: a persistent hash trie (CHAMP layout, 32-way),
/// so a copy is O(1) and a write copies only the nodes on its path that another copy shares.
///
/// It is `TreeDictionary<Bytes, Entry>` specialised for the keyspace, for what that cannot do:
/// each item keeps its key's hash (a lookup skips other keys of its slot without reading their
/// bytes, the cache miss that dominates), a table is built from a whole snapshot at once
/// (``init(building:)``: no path is walked per key), and a walk can prefetch the objects of the
/// items ahead of it (``forEachItem(_:)``, the snapshot writer's loop).
///
/// ```swift
/// var table = KeyTable()
/// table["user:1"] = Entry(value: .string("ada"), version: 1)
/// let copy = table                        // O(1); the two share every node
/// table.removeValue(forKey: "user:1")     // copies the root only
/// assert(copy["user:1"] != nil && table.isEmpty)
/// ```
public struct KeyTable: @unchecked Sendable {
    // (Sendable: nodes are changed in place only when one table references them.)
    @usableFromInline var root: KeyTableNode
    /// Keys held.
    public var count: Int { storedCount }
    @usableFromInline var storedCount: Int

    @inlinable public init() {
        root = KeyTableNode.make(itemCapacity: 0, childCapacity: 0)
        storedCount = 0
    }

    @usableFromInline init(root: KeyTableNode, count: Int) {
        self.root = root
        storedCount = count
    }

    @inlinable public var isEmpty: Bool { count == 0 }

    /// The hash a key is placed by (SipHash-1-3 under a per-process random key, ``KeyHash``:
    /// keys chosen by a client cannot be aimed at one slot).
    @inlinable static func hash(_ key: Bytes) -> UInt64 { KeyHash.hash(key) }

    // MARK: Reading

    /// The entry of `key`, or nil; setting nil removes the key.
    @inlinable public subscript(key: Bytes) -> Entry? {
        get { find(key, hash: Self.hash(key)) }
        set {
            guard let entry = newValue else { removeValue(forKey: key); return }
            set(entry, forKey: key)
        }
    }

    @inlinable func find(_ key: Bytes, hash: UInt64) -> Entry? {
        find(hash: hash) { $0 == key }
    }

    /// The entry of the key with these bytes, or nil: a lookup with no `Bytes` made (a GET's
    /// key, straight from the request).
    @inlinable public subscript(bytes key: UnsafeRawBufferPointer) -> Entry? {
        find(hash: KeyHash.siphash(key, key: KeyHash.key, compressionRounds: 1, finalizationRounds: 3)) { stored in
            stored.count == key.count && stored.storage.withUnsafeBytes { $0.elementsEqual(key) }
        }
    }

    /// The entry of the key with `hash` that `isKey` accepts.
    @inlinable @inline(__always) func find(hash: UInt64, _ isKey: (Bytes) -> Bool) -> Entry? {
        // Down the trie without retaining a node (`self` keeps them all alive).
        var node = Unmanaged.passUnretained(root)
        var shift = 0
        while true {
            let next: Unmanaged<KeyTableNode>? = node._withUnsafeGuaranteedRef { node in
                let head = node.head
                if head.pointee.isCollision { return nil }
                let bit = KeyTableNode.bit(hash, shift: shift)
                guard head.pointee.childMap & bit != 0 else { return nil }
                return node.unmanagedChild(KeyTableNode.slot(head.pointee.childMap, bit))
            }
            guard let next else { break }
            node = next
            shift += KeyTableNode.bitsPerLevel
        }
        return node._withUnsafeGuaranteedRef { node -> Entry? in
            let head = node.head, items = node.items
            if head.pointee.isCollision {
                for i in 0..<Int(head.pointee.itemCount) where items[i].hash == hash && isKey(items[i].key) { return items[i].entry }
                return nil
            }
            let bit = KeyTableNode.bit(hash, shift: shift)
            guard head.pointee.itemMap & bit != 0 else { return nil }
            let item = items + KeyTableNode.slot(head.pointee.itemMap, bit)
            return item.pointee.hash == hash && isKey(item.pointee.key) ? item.pointee.entry : nil
        }
    }

    // MARK: Writing

    /// Sets `key`'s entry, moved in: the entry it replaces is released, not returned (a copy
    /// of it to return, and of the new one to store, cost a SET two reference-count pairs).
    @inlinable
    public mutating func set(_ entry: consuming Entry, forKey key: Bytes) {
        var moving: Entry? = consume entry
        var added = false
        Self.modify(&root, key: key, hash: Self.hash(key), default: { moving.take()! }) { current, inserted in
            if inserted { added = true } else { current = moving.take()! }
        }
        if added { storedCount += 1 }
    }

    /// Sets `key`'s entry; the entry it replaced, if any.
    @inlinable @discardableResult
    public mutating func updateValue(_ entry: Entry, forKey key: Bytes) -> Entry? {
        updateValue(entry, forKey: key, hash: Self.hash(key))
    }

    /// ``updateValue(_:forKey:)`` with the key's hash given (tests give colliding ones).
    @inlinable @discardableResult
    mutating func updateValue(_ entry: Entry, forKey key: Bytes, hash: UInt64) -> Entry? {
        var old: Entry?
        Self.modify(&root, key: key, hash: hash, default: { entry }) { current, inserted in
            if !inserted { old = current; current = entry }
        }
        if old == nil { storedCount += 1 }
        return old
    }

    /// Changes `key`'s entry in place (inserting `defaultValue()` first when the key is absent)
    /// with one walk down the trie: the entry is changed where it lies, so a value referenced
    /// only there (a list, a hash, a string) changes without a copy.
    @inlinable @discardableResult
    public mutating func updateValue<R>(forKey key: Bytes, default defaultValue: @autoclosure () -> Entry,
                                        with body: (inout Entry) throws -> R) rethrows -> R {
        var added = false
        let result = try Self.modify(&root, key: key, hash: Self.hash(key), default: defaultValue) { entry, inserted in
            added = inserted
            return try body(&entry)
        }
        if added { storedCount += 1 }
        return result
    }

    /// Removes `key`; its entry, or nil (and nothing copied) when it was absent.
    @inlinable @discardableResult
    public mutating func removeValue(forKey key: Bytes) -> Entry? {
        removeValue(forKey: key, hash: Self.hash(key))
    }

    /// ``removeValue(forKey:)`` with the key's hash given.
    @inlinable @discardableResult
    mutating func removeValue(forKey key: Bytes, hash: UInt64) -> Entry? {
        guard find(key, hash: hash) != nil else { return nil }
        let removed = Self.remove(&root, shift: 0, key: key, hash: hash)
        assert(removed != nil, "a key found was not removed")
        storedCount -= 1
        return removed
    }

    /// Finds `key` below `root` (copying shared nodes on the way), inserting `defaultValue()`
    /// when absent, and runs `body` on the entry in place (told whether it was just inserted).
    /// A loop, not a recursion: the caller's closures are inlined into it.
    @inlinable @inline(__always) static func modify<R>(
        _ root: inout KeyTableNode, key: Bytes, hash: UInt64,
        default defaultValue: () -> Entry, _ body: (inout Entry, Bool) throws -> R
    ) rethrows -> R {
        try withUnsafeMutablePointer(to: &root) { rootReference in
            // Down to the node holding the key's slot, making each node on the way this table's own.
            var reference = rootReference
            var shift = 0
            while true {
                if !isKnownUniquelyReferenced(&reference.pointee) { reference.pointee = reference.pointee.copy() }
                let head = reference.pointee.head
                if head.pointee.isCollision { break }
                let bit = KeyTableNode.bit(hash, shift: shift)
                guard head.pointee.childMap & bit != 0 else { break }
                reference = reference.pointee.children + KeyTableNode.slot(head.pointee.childMap, bit)
                shift += KeyTableNode.bitsPerLevel
            }
            return try modifyHolder(&reference.pointee, shift: shift, key: key, hash: hash, default: defaultValue, body)
        }
    }

    /// ``modify(_:key:hash:default:_:)`` at the node (referenced once) whose slot for `key`
    /// holds an item or nothing, or at a collision node.
    @inlinable @inline(__always) static func modifyHolder<R>(
        _ node: inout KeyTableNode, shift: Int, key: Bytes, hash: UInt64,
        default defaultValue: () -> Entry, _ body: (inout Entry, Bool) throws -> R
    ) rethrows -> R {
        if node.head.pointee.isCollision {
            let items = node.items
            for i in 0..<node.itemCount where items[i].hash == hash && items[i].key == key { return try body(&items[i].entry, false) }
            var entry = defaultValue()
            let result = try body(&entry, true)
            KeyTableNode.makeRoom(&node, items: 1, children: 0)
            node.insertItem(KeyTableItem(hash: hash, key: key, entry: entry), at: node.itemCount, bit: 0)
            return result
        }
        let bit = KeyTableNode.bit(hash, shift: shift)
        if node.head.pointee.itemMap & bit != 0 {
            let index = KeyTableNode.slot(node.head.pointee.itemMap, bit)
            let item = node.items + index
            if item.pointee.hash == hash && item.pointee.key == key { return try body(&item.pointee.entry, false) }
            // Another key in this slot: both go down into a new child.
            var entry = defaultValue()
            let result = try body(&entry, true)
            KeyTableNode.makeRoom(&node, items: 0, children: 1)
            let other = node.removeItem(at: index, bit: bit)
            let child = pair(other, KeyTableItem(hash: hash, key: key, entry: entry), shift: shift + KeyTableNode.bitsPerLevel)
            node.insertChild(child, at: KeyTableNode.slot(node.head.pointee.childMap, bit), bit: bit)
            return result
        }
        var entry = defaultValue()
        let result = try body(&entry, true)
        KeyTableNode.makeRoom(&node, items: 1, children: 0)
        node.insertItem(KeyTableItem(hash: hash, key: key, entry: entry), at: KeyTableNode.slot(node.head.pointee.itemMap, bit), bit: bit)
        return result
    }

    /// A node at `shift` holding two items of different keys (a chain of nodes while their hash
    /// digits agree; a collision node once the digits run out).
    @inlinable static func pair(_ a: consuming KeyTableItem, _ b: consuming KeyTableItem, shift: Int) -> KeyTableNode {
        if shift >= KeyTableNode.collisionShift {
            let node = KeyTableNode.make(itemCapacity: 2, childCapacity: 0, isCollision: true)
            node.items.initialize(to: a)
            (node.items + 1).initialize(to: b)
            node.head.pointee.itemCount = 2
            return node
        }
        let bitA = KeyTableNode.bit(a.hash, shift: shift), bitB = KeyTableNode.bit(b.hash, shift: shift)
        if bitA == bitB {
            let node = KeyTableNode.make(itemCapacity: 0, childCapacity: 1)
            node.insertChild(pair(a, b, shift: shift + KeyTableNode.bitsPerLevel), at: 0, bit: bitA)
            return node
        }
        let node = KeyTableNode.make(itemCapacity: 2, childCapacity: 0)
        let (first, second) = bitA < bitB ? (a, b) : (b, a)
        node.items.initialize(to: first)
        (node.items + 1).initialize(to: second)
        node.head.pointee.itemCount = 2
        node.head.pointee.itemMap = bitA | bitB
        return node
    }

    /// Removes `key` (which is present) below `node`; a child left with one item and no
    /// children gives the item back to its parent, so the trie stays as small as a fresh one.
    @inlinable static func remove(_ node: inout KeyTableNode, shift: Int, key: Bytes, hash: UInt64) -> Entry? {
        if !isKnownUniquelyReferenced(&node) { node = node.copy() }
        if node.head.pointee.isCollision {
            let items = node.items
            for i in 0..<node.itemCount where items[i].hash == hash && items[i].key == key {
                return node.removeItem(at: i, bit: 0).entry
            }
            return nil
        }
        let bit = KeyTableNode.bit(hash, shift: shift)
        if node.head.pointee.itemMap & bit != 0 {
            let index = KeyTableNode.slot(node.head.pointee.itemMap, bit)
            guard node.items[index].hash == hash && node.items[index].key == key else { return nil }
            return node.removeItem(at: index, bit: bit).entry
        }
        guard node.head.pointee.childMap & bit != 0 else { return nil }
        let index = KeyTableNode.slot(node.head.pointee.childMap, bit)
        let removed = remove(&node.children[index], shift: shift + KeyTableNode.bitsPerLevel, key: key, hash: hash)
        let children = node.children
        if children[index].itemCount == 1 && children[index].childCount == 0 {
            // Pull the last item up: the child (referenced once now, after the removal's copy)
            // goes, and its item takes the child's place.
            let item = children[index].removeItem(at: 0, bit: children[index].head.pointee.itemMap)
            node.removeChild(at: index, bit: bit)
            KeyTableNode.makeRoom(&node, items: 1, children: 0)
            node.insertItem(item, at: KeyTableNode.slot(node.head.pointee.itemMap, bit), bit: bit)
        }
        return removed
    }
}
