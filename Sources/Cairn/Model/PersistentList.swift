import HashTreeCollections

/// A list with O(1) copies and O(log n) pushes and pops at both ends: elements live in a
/// persistent map from position to value, between `head` (first position) and `tail` (one past
/// the last). A copy shared between the committed and head states stays shared on a push, where
/// a `Deque` would be copied whole (O(n) per push on a long queue).
public struct PersistentList: Sendable, Equatable, Sequence {
    private var items = TreeDictionary<Int64, Bytes>()
    private var head: Int64 = 0
    private var tail: Int64 = 0

    public init() {}

    public init<S: Sequence>(_ elements: S) where S.Element == Bytes {
        for element in elements { append(element) }
    }

    public var count: Int { Int(tail - head) }
    public var isEmpty: Bool { head == tail }

    public mutating func append(_ element: Bytes) {
        items[tail] = element
        tail += 1
    }

    public mutating func prepend(_ element: Bytes) {
        head -= 1
        items[head] = element
    }

    public mutating func removeFirst() -> Bytes {
        precondition(!isEmpty, "removeFirst on an empty list")
        let element = items.removeValue(forKey: head)!
        head += 1
        return element
    }

    public mutating func removeLast() -> Bytes {
        precondition(!isEmpty, "removeLast on an empty list")
        tail -= 1
        return items.removeValue(forKey: tail)!
    }

    /// The element at a 0-based index.
    public subscript(index: Int) -> Bytes {
        precondition(index >= 0 && index < count, "list index \(index) out of range 0..<\(count)")
        return items[head + Int64(index)]!
    }

    /// The elements of a 0-based range.
    public func elements(in range: Range<Int>) -> [Bytes] {
        range.map { self[$0] }
    }

    public func makeIterator() -> AnyIterator<Bytes> {
        var position = head
        let end = tail
        let items = self.items
        return AnyIterator {
            guard position < end else { return nil }
            defer { position += 1 }
            return items[position]
        }
    }

    /// Lists are equal when they hold the same elements in the same order.
    public static func == (lhs: PersistentList, rhs: PersistentList) -> Bool {
        lhs.count == rhs.count && lhs.elementsEqual(rhs)
    }
}
