import HashTreeCollections

/// A list with O(1) copies, pushes and pops at both ends in O(1) amortised time, and reads by
/// position in O(log n): chunks of at most ``chunkCapacity`` consecutive elements (position `p`
/// lives in chunk `p >> 6`), between `head` (first position) and `tail` (one past the last).
/// The two end chunks are held apart (`front`, and `back` when the list spans more than one
/// chunk); the full chunks between them live in a persistent map from chunk number to chunk.
///
/// A push or pop touches one end chunk, which stays in the cache however long the list is
/// (with one map entry per element, each push went to a cold part of a growing trie: a queue's
/// pushes slowed by a third between 300 000 and 1.2M elements), and reaches the map only when
/// an end chunk fills up or runs empty, once per 64 elements (going through the map on every
/// push, hashing the chunk number and walking the trie, cost LPUSH `-P 16` about 4% more server
/// CPU in paired rounds). A
/// copy shared between the committed and head states, or with a snapshot, stays shared on a
/// push except for that chunk, which is copied once (at most 64 references); a `Deque` would be
/// copied whole.
public struct PersistentList: Sendable, Equatable, Sequence {
    /// Elements per chunk: a power of two, so a position's chunk is a shift away.
    public static let chunkCapacity = 64
    private static let shift = Int64(chunkCapacity.trailingZeroBitCount)
    private static let mask = Int64(chunkCapacity - 1)

    /// Consecutive elements of one chunk: `elements[0]` sits at slot `first` (0..<64).
    fileprivate struct Chunk: Sendable {
        var first: Int
        var elements: [Bytes]

        /// A chunk holding `element` alone, at `position`.
        init(_ element: Bytes, at position: Int64) {
            first = Int(position & PersistentList.mask)
            elements = []
            elements.reserveCapacity(4)
            elements.append(element)
        }
    }

    /// The list's fields behind one reference, so that a list is one word and a key's
    /// `Value` and `Entry` stay small (a keyspace item was 72 bytes, most of them this struct's
    /// for every string key). Copied before a change when shared.
    ///
    /// A non-empty list has `front`, the chunk of position `head`; `back`, the chunk of position
    /// `tail - 1` when that is another chunk (else nil); and in `middle` every chunk between
    /// them, all full. An empty list has neither end chunk and an empty `middle`.
    fileprivate final class Storage: @unchecked Sendable {
        var middle: TreeDictionary<Int64, Chunk>
        var front: Chunk?
        var back: Chunk?
        var head: Int64
        var tail: Int64

        init(middle: TreeDictionary<Int64, Chunk> = [:], front: Chunk? = nil, back: Chunk? = nil, head: Int64 = 0, tail: Int64 = 0) {
            self.middle = middle
            self.front = front
            self.back = back
            self.head = head
            self.tail = tail
        }

        func copy() -> Storage { Storage(middle: middle, front: front, back: back, head: head, tail: tail) }

        /// The chunk holding `position` (which must be in the list).
        func chunk(holding position: Int64) -> Chunk {
            let number = position >> PersistentList.shift
            if number == head >> PersistentList.shift { return front! }
            if number == (tail - 1) >> PersistentList.shift { return back! }
            guard let chunk = middle[number] else { preconditionFailure("list chunk \(number) is missing") }
            return chunk
        }
    }

    private var storage: Storage

    /// The storage, copied first if another list shares it.
    private var unique: Storage {
        mutating get {
            if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
            return storage
        }
    }

    public init() { storage = Storage() }

    public init<S: Sequence>(_ elements: S) where S.Element == Bytes {
        storage = Storage()
        for element in elements { append(element) }
    }

    public var count: Int { Int(storage.tail - storage.head) }
    public var isEmpty: Bool { storage.head == storage.tail }

    public mutating func append(_ element: Bytes) {
        let s = unique
        let position = s.tail
        s.tail += 1
        if position == s.head {
            s.front = Chunk(element, at: position)  // was empty
        } else if position & Self.mask == 0 {
            // A new chunk at the end: the old back chunk, full, joins the middle.
            if let full = s.back {
                assert(full.first == 0 && full.elements.count == Self.chunkCapacity, "a list's middle chunks must be full")
                s.middle[(position - 1) >> Self.shift] = full
            }
            s.back = Chunk(element, at: position)
        } else if s.back != nil {
            assert(s.back!.first + s.back!.elements.count == Int(position & Self.mask), "a list's back chunk must end where the list does")
            s.back!.elements.append(element)
        } else {
            assert(s.front!.first + s.front!.elements.count == Int(position & Self.mask), "a list's only chunk must end where the list does")
            s.front!.elements.append(element)
        }
    }

    public mutating func prepend(_ element: Bytes) {
        let s = unique
        let wasEmpty = s.head == s.tail
        s.head -= 1
        let position = s.head
        if wasEmpty {
            s.front = Chunk(element, at: position)
        } else if position & Self.mask == Self.mask {
            // A new chunk at the start: the old front chunk, full, becomes the back chunk
            // (when it was the only one) or joins the middle.
            let full = s.front!
            assert(full.first == 0 && full.elements.count == Self.chunkCapacity || s.back == nil, "a list's middle chunks must be full")
            if s.back == nil { s.back = full } else { s.middle[(position + 1) >> Self.shift] = full }
            s.front = Chunk(element, at: position)
        } else {
            assert(s.front!.first == Int(position & Self.mask) + 1, "a list's front chunk must start where the list does")
            s.front!.elements.insert(element, at: 0)  // at most 63 references move
            s.front!.first -= 1
        }
    }

    public mutating func removeFirst() -> Bytes {
        precondition(!isEmpty, "removeFirst on an empty list")
        let s = unique
        let element = s.front!.elements.removeFirst()
        s.front!.first += 1
        s.head += 1
        if s.front!.elements.isEmpty {
            // The next chunk becomes the front one: the middle's first, else the back one.
            if s.head == s.tail {
                s.front = nil
            } else if let next = s.middle.removeValue(forKey: s.head >> Self.shift) {
                s.front = next
            } else {
                s.front = s.back
                s.back = nil
            }
        }
        return element
    }

    public mutating func removeLast() -> Bytes {
        precondition(!isEmpty, "removeLast on an empty list")
        let s = unique
        s.tail -= 1
        guard s.back != nil else {
            let element = s.front!.elements.removeLast()
            if s.head == s.tail { s.front = nil }
            return element
        }
        let element = s.back!.elements.removeLast()
        if s.back!.elements.isEmpty {
            // The chunk before becomes the back one: the middle's last, unless it is the front.
            let number = (s.tail - 1) >> Self.shift
            s.back = number == s.head >> Self.shift ? nil : s.middle.removeValue(forKey: number)
        }
        return element
    }

    /// The elements from `position` up to `end` that its chunk holds (at least one).
    private static func run(_ storage: Storage, from position: Int64, before end: Int64) -> ArraySlice<Bytes> {
        let chunk = storage.chunk(holding: position)
        let from = Int(position & mask) - chunk.first
        let upTo = Swift.min(chunk.elements.count, from + Int(end - position))
        precondition(from >= 0 && upTo > from, "list chunk \(position >> shift) does not hold position \(position)")
        return chunk.elements[from..<upTo]
    }

    /// The element at a 0-based index.
    public subscript(index: Int) -> Bytes {
        precondition(index >= 0 && index < count, "list index \(index) out of range 0..<\(count)")
        let position = storage.head + Int64(index)
        return Self.run(storage, from: position, before: position + 1).first!
    }

    /// The elements of a 0-based range, chunk by chunk.
    public func elements(in range: Range<Int>) -> [Bytes] {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "list range \(range) out of range 0..<\(count)")
        var result: [Bytes] = []
        result.reserveCapacity(range.count)
        var position = storage.head + Int64(range.lowerBound)
        let end = storage.head + Int64(range.upperBound)
        while position < end {
            let run = Self.run(storage, from: position, before: end)
            result.append(contentsOf: run)
            position += Int64(run.count)
        }
        return result
    }

    /// Walks the elements chunk by chunk: one map lookup per 64 elements.
    public struct Iterator: IteratorProtocol {
        fileprivate let storage: Storage
        fileprivate var position: Int64
        fileprivate let end: Int64
        fileprivate var current: ArraySlice<Bytes> = []

        public mutating func next() -> Bytes? {
            if let element = current.popFirst() { return element }
            guard position < end else { return nil }
            current = PersistentList.run(storage, from: position, before: end)
            position += Int64(current.count)
            return current.popFirst()
        }
    }

    public func makeIterator() -> Iterator {
        Iterator(storage: storage, position: storage.head, end: storage.tail)
    }

    /// Lists are equal when they hold the same elements in the same order.
    public static func == (lhs: PersistentList, rhs: PersistentList) -> Bool {
        lhs.count == rhs.count && lhs.elementsEqual(rhs)
    }
}
