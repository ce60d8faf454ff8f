/// A binary-safe byte string: keys, values, fields. Hashes its bytes in one call (an `[UInt8]`
/// hashes byte by byte).
///
/// ```swift
/// let key: Bytes = "user:1"
/// let raw = Bytes([0, 255, 10])
/// ```
public struct Bytes: Hashable, Sendable, Comparable, ExpressibleByStringLiteral, CustomStringConvertible {
    public var storage: [UInt8]

    @inlinable public init(_ storage: [UInt8]) { self.storage = storage }
    @inlinable public init(_ string: String) { storage = Array(string.utf8) }
    @inlinable public init(stringLiteral value: String) { storage = Array(value.utf8) }
    @inlinable public init<S: Sequence>(_ bytes: S) where S.Element == UInt8 { storage = Array(bytes) }

    @inlinable public var count: Int { storage.count }
    @inlinable public var isEmpty: Bool { storage.isEmpty }

    @inlinable public func hash(into hasher: inout Hasher) {
        storage.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    @inlinable public static func < (lhs: Bytes, rhs: Bytes) -> Bool {
        lhs.storage.lexicographicallyPrecedes(rhs.storage)
    }

    /// The bytes as UTF-8 text (invalid sequences replaced), for messages and tests.
    public var string: String { String(decoding: storage, as: UTF8.self) }

    public var description: String { string }
}
