import CairnStorage
import CPrefetch

/// Builds a ``KeyTable`` from many keys at once (a snapshot's load): the keys are gathered,
/// partitioned by hash digit level by level (a radix sort over the hashes), and every node is
/// made once at its final size, the items moved into it. Inserting them one by one walks a path
/// per key and grows each node many times: a million keys load in a fraction of the time.
///
/// The first level's partition is made as keys are appended: each goes into one of 32 buckets
/// by its root digit, so the moves of the build jump about within a bucket (a 32nd of the
/// items, which the cache holds) instead of across all of them (load of 1M keys: the build
/// was 15% of it, its moves waiting on misses).
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
        /// Index of the item in its bucket.
        var index: Int
    }

    /// In `origins`, an item moved into a node (so not freed again after a failure).
    private static let movedMark = Int.min

    /// The items whose hashes share a root digit, in the order appended.
    private struct Bucket {
        var items: UnsafeMutablePointer<KeyTableItem>
        var origins: UnsafeMutablePointer<Int>
        var capacity: Int
        var count = 0

        init(capacity: Int) {
            self.capacity = capacity
            items = .allocate(capacity: capacity)
            origins = .allocate(capacity: capacity)
        }

        mutating func grow() {
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

        /// Frees the items not moved into a node, and the memory.
        func free() {
            for i in 0..<count where origins[i] != movedMark { (items + i).deinitialize(count: 1) }
            items.deallocate()
            origins.deallocate()
        }

        /// ``free()``, leaving the bucket empty and usable.
        mutating func release() {
            free()
            self = Bucket(capacity: 1)
        }
    }

    private let buckets: UnsafeMutablePointer<Bucket>
    private(set) var count = 0

    init(capacity: Int = 512) {
        // Room for a little more than an even share, so that few buckets grow.
        let share = max(16, capacity / 32 + capacity / 256)
        buckets = .allocate(capacity: 32)
        for b in 0..<32 { (buckets + b).initialize(to: Bucket(capacity: share)) }
    }

    deinit {
        for b in 0..<32 { buckets[b].free() }
        buckets.deinitialize(count: 32)
        buckets.deallocate()
    }

    /// Adds a key; `origin` is reported if the key turns out to be there twice. (`hash` is for
    /// tests, which give colliding ones.)
    func append(_ key: consuming Bytes, _ entry: consuming Entry, origin: Int, hash: UInt64? = nil) {
        precondition(origin != Self.movedMark, "origin \(origin) is reserved")
        let hash = hash ?? KeyTable.hash(key)
        let bucket = buckets + Int(hash & 31)
        if bucket.pointee.count == bucket.pointee.capacity { bucket.pointee.grow() }
        (bucket.pointee.items + bucket.pointee.count).initialize(to: KeyTableItem(hash: hash, key: key, entry: entry))
        bucket.pointee.origins[bucket.pointee.count] = origin
        bucket.pointee.count += 1
        count += 1
    }

    /// The table of every key appended (the builder is left empty, whether this throws or not).
    /// `threads` build the root's children, each taking every `threads`-th bucket (this thread
    /// one of them): on two cores, the build of 1M keys took 45-60 ms on one, 20-40 on two.
    func build(threads: Int = 1) throws(DuplicateKey) -> KeyTable {
        precondition(threads >= 1 && threads <= 32, "\(threads) threads to build with")
        let n = count
        defer {
            for b in 0..<32 { buckets[b].release() }
            count = 0
        }
        // The root: a bucket of one key is its item, of more a child built from the bucket.
        var itemMap: UInt32 = 0, childMap: UInt32 = 0
        for b in 0..<32 {
            if buckets[b].count == 1 { itemMap |= 1 << UInt32(b) } else if buckets[b].count > 1 { childMap |= 1 << UInt32(b) }
        }
        let root = KeyTableNode.make(itemCapacity: itemMap.nonzeroBitCount, childCapacity: childMap.nonzeroBitCount)
        root.head.pointee.itemMap = itemMap
        root.head.pointee.childMap = childMap
        var map = itemMap
        while map != 0 {
            Self.move(0, of: buckets[map.trailingZeroBitCount], into: root)
            map &= map - 1
        }
        var digits: [Int] = []
        map = childMap
        while map != 0 {
            digits.append(map.trailingZeroBitCount)
            map &= map - 1
        }
        // Each root digit's child, or why it could not be built; each written by one thread.
        nonisolated(unsafe) let children = UnsafeMutablePointer<KeyTableNode?>.allocate(capacity: 32)
        children.initialize(repeating: nil, count: 32)
        nonisolated(unsafe) let failures = UnsafeMutablePointer<DuplicateKey?>.allocate(capacity: 32)
        failures.initialize(repeating: nil, count: 32)
        defer {
            children.deinitialize(count: 32)
            children.deallocate()
            failures.deinitialize(count: 32)
            failures.deallocate()
        }
        let largest = (0..<32).reduce(1) { max($0, buckets[$1].count) }
        let workers = min(threads, max(1, digits.count))
        let finished = (1..<workers).map { _ in Latch() }
        for worker in 1..<workers {
            startThread(name: "cairn-keytable-build") { [self, digits] in
                buildChildren(digits: digits, from: worker, by: workers, largest: largest, into: children, failures: failures)
                finished[worker - 1].raise()
            }
        }
        buildChildren(digits: digits, from: 0, by: workers, largest: largest, into: children, failures: failures)
        for latch in finished { latch.wait() }
        // The first bucket in digit order that holds a key twice, as a build on one thread finds.
        for digit in digits { if let failure = failures[digit] { throw failure } }
        for digit in digits { Self.adopt(children[digit].take()!, into: root) }
        return KeyTable(root: root, count: n)
    }

    /// Builds the child of the root for every `stride`-th of `digits` from `first` (each a
    /// bucket of more than one key, `largest` keys at most), with scratch space of its own.
    private func buildChildren(digits: [Int], from first: Int, by stride: Int, largest: Int,
                               into children: UnsafeMutablePointer<KeyTableNode?>, failures: UnsafeMutablePointer<DuplicateKey?>) {
        let slots = UnsafeMutablePointer<Slot>.allocate(capacity: largest)
        let scratch = UnsafeMutablePointer<Slot>.allocate(capacity: largest)
        // Each level's digit counts, starts and cursors (3 x 32), kept apart per level so a
        // parent's survive the recursion into its children.
        let counters = UnsafeMutablePointer<Int>.allocate(capacity: Self.countersPerLevel * (KeyTableNode.collisionShift / KeyTableNode.bitsPerLevel + 1))
        defer {
            slots.deallocate()
            scratch.deallocate()
            counters.deallocate()
        }
        for k in Swift.stride(from: first, to: digits.count, by: stride) {
            let digit = digits[k]
            let bucket = buckets[digit]
            for i in 0..<bucket.count { slots[i] = Slot(hash: bucket.items[i].hash, index: i) }
            do throws(DuplicateKey) {
                children[digit] = try node(bucket, slots, scratch, counters, 0..<bucket.count, shift: KeyTableNode.bitsPerLevel)
            } catch {
                failures[digit] = error
            }
            // Its memory goes back now, for the next buckets' nodes: the load's peak is lower
            // by the items' size, and fewer fresh pages are touched.
            buckets[digit].release()
        }
    }

    private static let countersPerLevel = 96

    /// The node at `shift` for the slots in `range` of `source` (items of `bucket`, whose
    /// hashes agree below `shift`). The slots are partitioned by this level's digit into
    /// `target`, whose ranges the children then partition back into `source` (no copying back).
    private func node(_ bucket: Bucket, _ source: UnsafeMutablePointer<Slot>, _ target: UnsafeMutablePointer<Slot>, _ counters: UnsafeMutablePointer<Int>,
                      _ range: Range<Int>, shift: Int) throws(DuplicateKey) -> KeyTableNode {
        let items = bucket.items, origins = bucket.origins
        if shift >= KeyTableNode.collisionShift {
            // Every hash here is the same: the keys must differ, checked before any moves.
            for i in range {
                for j in (i + 1)..<range.upperBound where items[source[i].index].key == items[source[j].index].key {
                    let (a, b) = (origins[source[i].index], origins[source[j].index])
                    throw DuplicateKey(key: items[source[i].index].key, firstOrigin: min(a, b), secondOrigin: max(a, b))
                }
            }
            let node = KeyTableNode.make(itemCapacity: range.count, childCapacity: 0, isCollision: true)
            for i in range { Self.move(source[i].index, of: bucket, into: node) }
            return node
        }
        if range.count <= Self.smallRange { return try smallNode(bucket, source, target, counters, range, shift: shift) }
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
        // This node's own items first (they lie scattered in the bucket: all prefetched, then
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
            Self.move(target[starts[map.trailingZeroBitCount]].index, of: bucket, into: node)
            map &= map - 1
        }
        map = childMap
        while map != 0 {
            let digit = map.trailingZeroBitCount
            let child = try self.node(bucket, target, source, counters, starts[digit]..<(starts[digit] + counts[digit]), shift: shift + KeyTableNode.bitsPerLevel)
            Self.adopt(child, into: node)
            map &= map - 1
        }
        return node
    }

    /// Below this many keys a node is made without the counting sort: most nodes deep in a
    /// large table hold two or three keys, and three passes over 32 digits each were most of
    /// the build's time.
    private static let smallRange = 8

    /// ``node(_:_:_:_:_:shift:)`` for a few keys: the digits present once and more than once
    /// are found as bit sets, and each digit's keys picked out by a scan of the range.
    private func smallNode(_ bucket: Bucket, _ source: UnsafeMutablePointer<Slot>, _ target: UnsafeMutablePointer<Slot>, _ counters: UnsafeMutablePointer<Int>,
                           _ range: Range<Int>, shift: Int) throws(DuplicateKey) -> KeyTableNode {
        @inline(__always) func digit(_ i: Int) -> Int { Int((source[i].hash &>> UInt64(shift)) & 31) }
        var seen: UInt32 = 0, repeated: UInt32 = 0
        for i in range {
            let bit: UInt32 = 1 << UInt32(digit(i))
            repeated |= seen & bit
            seen |= bit
        }
        let itemMap = seen & ~repeated, childMap = repeated
        let node = KeyTableNode.make(itemCapacity: itemMap.nonzeroBitCount, childCapacity: childMap.nonzeroBitCount)
        node.head.pointee.itemMap = itemMap
        node.head.pointee.childMap = childMap
        var map = itemMap
        while map != 0 {
            let d = map.trailingZeroBitCount
            for i in range where digit(i) == d {
                Self.move(source[i].index, of: bucket, into: node)
                break
            }
            map &= map - 1
        }
        // Every repeated digit's slots gathered into `target` first, in digit order: a child
        // partitions its slots back into `source`, over the slots still to be gathered.
        var end = range.lowerBound
        map = childMap
        while map != 0 {
            let d = map.trailingZeroBitCount
            for i in range where digit(i) == d {
                target[end] = source[i]
                end += 1
            }
            map &= map - 1
        }
        var start = range.lowerBound
        while start < end {
            let d = Int((target[start].hash &>> UInt64(shift)) & 31)
            var stop = start + 1
            while stop < end && Int((target[stop].hash &>> UInt64(shift)) & 31) == d { stop += 1 }
            let child = try self.node(bucket, target, source, counters, start..<stop, shift: shift + KeyTableNode.bitsPerLevel)
            Self.adopt(child, into: node)
            start = stop
        }
        return node
    }

    /// Appends `child` to `node`'s children (made in digit order, so appended in it).
    private static func adopt(_ child: KeyTableNode, into node: KeyTableNode) {
        (node.children + node.childCount).initialize(to: child)
        node.head.pointee.childCount += 1
    }

    /// Moves item `index` of `bucket` to the end of `node`'s items and marks it moved.
    private static func move(_ index: Int, of bucket: Bucket, into node: KeyTableNode) {
        (node.items + node.itemCount).moveInitialize(from: bucket.items + index, count: 1)
        node.head.pointee.itemCount += 1
        bucket.origins[index] = movedMark
    }
}
