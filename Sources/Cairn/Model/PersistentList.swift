import HashTreeCollections

/// A list with O(1) copies, pushes and pops at both ends in O(1) amortised time, and reads by
/// position in O(log n): a persistent map from chunk number to a chunk of at most
/// ``chunkCapacity`` consecutive elements (position `p` lives in chunk `p >> 6`), between `head`
/// (first position) and `tail` (one past the last).
///
/// A push or pop touches one chunk at an end of the list, which stays in the cache however long
/// the list is (with one map entry per element, each push went to a cold part of a growing trie:
/// a queue's pushes slowed by a third between 300 000 and 1.2M elements). A copy shared between
/// the committed and head states, or with a snapshot, stays shared on a push except for that
/// chunk, which is copied once (at most 64 references); a `Deque` would be copied whole.
public struct PersistentList: Sendable, Equatable, Sequence {
    /// Elements per chunk: a power of two, so a position's chunk is a shift away.
    public static let chunkCapacity = 64
    private static let shift = Int64(chunkCapacity.trailingZeroBitCount)
    private static let mask = Int64(chunkCapacity - 1)

    /// Consecutive elements of one chunk: `elements[0]` sits at slot `first` (0..<64).
    fileprivate struct Chunk: Sendable {
        var first: Int
        var elements: [Bytes]
    }

    /// The list's fields behind one reference, so that a list is one word and a key's
    /// `Value` and `Entry` stay small (a keyspace item was 72 bytes, most of them this struct's
    /// for every string key). Copied before a change when shared.
    private final class Storage: @unchecked Sendable {
        var chunks: TreeDictionary<Int64, Chunk>
        var head: Int64
        var tail: Int64

        init(chunks: TreeDictionary<Int64, Chunk> = [:], head: Int64 = 0, tail: Int64 = 0) {
            self.chunks = chunks
            self.head = head
            self.tail = tail
        }
    }

    private var storage: Storage

    private mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) { storage = Storage(chunks: storage.chunks, head: storage.head, tail: storage.tail) }
    }

    private var chunks: TreeDictionary<Int64, Chunk> {
        get { storage.chunks }
        _modify {
            makeUnique()
            yield &storage.chunks
        }
    }

    private var head: Int64 {
        get { storage.head }
        set {
            makeUnique()
            storage.head = newValue
        }
    }

    private var tail: Int64 {
        get { storage.tail }
        set {
            makeUnique()
            storage.tail = newValue
        }
    }

    public init() { storage = Storage() }

    public init<S: Sequence>(_ elements: S) where S.Element == Bytes {
        storage = Storage()
        for element in elements { append(element) }
    }

    public var count: Int { Int(tail - head) }
    public var isEmpty: Bool { head == tail }

    public mutating func append(_ element: Bytes) {
        let slot = Int(tail & Self.mask)
        chunks.updateValue(forKey: tail >> Self.shift, default: Chunk(first: slot, elements: [])) { chunk in
            assert(chunk.first + chunk.elements.count == slot, "a list's tail chunk must end where the list does")
            if chunk.elements.isEmpty { chunk.elements.reserveCapacity(4) }
            chunk.elements.append(element)
        }
        tail += 1
    }

    public mutating func prepend(_ element: Bytes) {
        head -= 1
        let slot = Int(head & Self.mask)
        chunks.updateValue(forKey: head >> Self.shift, default: Chunk(first: slot + 1, elements: [])) { chunk in
            assert(chunk.first == slot + 1, "a list's head chunk must start where the list does")
            chunk.elements.insert(element, at: 0)  // at most 63 references move
            chunk.first = slot
        }
    }

    public mutating func removeFirst() -> Bytes {
        precondition(!isEmpty, "removeFirst on an empty list")
        let key = head >> Self.shift
        head += 1
        return take(key) { chunk in
            chunk.first += 1
            return chunk.elements.removeFirst()
        }
    }

    public mutating func removeLast() -> Bytes {
        precondition(!isEmpty, "removeLast on an empty list")
        tail -= 1
        return take(tail >> Self.shift) { $0.elements.removeLast() }
    }

    /// Takes an element out of chunk `key` with `body`, and drops the chunk once it is empty.
    private mutating func take(_ key: Int64, _ body: (inout Chunk) -> Bytes) -> Bytes {
        var emptied = false
        let element = chunks.updateValue(forKey: key, default: Self.missingChunk(key)) { chunk -> Bytes in
            let element = body(&chunk)
            emptied = chunk.elements.isEmpty
            return element
        }
        if emptied { chunks[key] = nil }
        return element
    }

    private static func missingChunk(_ key: Int64) -> Chunk {
        preconditionFailure("list chunk \(key) is missing")
    }

    /// The elements from `position` up to `end` that its chunk holds (at least one).
    private static func run(_ chunks: TreeDictionary<Int64, Chunk>, from position: Int64, before end: Int64) -> ArraySlice<Bytes> {
        let chunk = chunks[position >> shift]!
        let from = Int(position & mask) - chunk.first
        let upTo = Swift.min(chunk.elements.count, from + Int(end - position))
        precondition(from >= 0 && upTo > from, "list chunk \(position >> shift) does not hold position \(position)")
        return chunk.elements[from..<upTo]
    }

    /// The element at a 0-based index.
    public subscript(index: Int) -> Bytes {
        precondition(index >= 0 && index < count, "list index \(index) out of range 0..<\(count)")
        let position = head + Int64(index)
        return Self.run(chunks, from: position, before: position + 1).first!
    }

    /// The elements of a 0-based range, chunk by chunk.
    public func elements(in range: Range<Int>) -> [Bytes] {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "list range \(range) out of range 0..<\(count)")
        var result: [Bytes] = []
        result.reserveCapacity(range.count)
        var position = head + Int64(range.lowerBound)
        let end = head + Int64(range.upperBound)
        while position < end {
            let run = Self.run(chunks, from: position, before: end)
            result.append(contentsOf: run)
            position += Int64(run.count)
        }
        return result
    }

    /// Walks the elements chunk by chunk: one map lookup per 64 elements.
    public struct Iterator: IteratorProtocol {
        fileprivate let chunks: TreeDictionary<Int64, Chunk>
        fileprivate var position: Int64
        fileprivate let end: Int64
        fileprivate var current: ArraySlice<Bytes> = []

        public mutating func next() -> Bytes? {
            if let element = current.popFirst() { return element }
            guard position < end else { return nil }
            current = PersistentList.run(chunks, from: position, before: end)
            position += Int64(current.count)
            return current.popFirst()
        }
    }

    public func makeIterator() -> Iterator {
        Iterator(chunks: chunks, position: head, end: tail)
    }

    /// Lists are equal when they hold the same elements in the same order.
    public static func == (lhs: PersistentList, rhs: PersistentList) -> Bool {
        lhs.count == rhs.count && lhs.elementsEqual(rhs)
    }
}
