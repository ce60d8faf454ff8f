import HashTreeCollections

/// The key-value space: a persistent hash trie, so a copy (a read view, a snapshot) is O(1)
/// and writes copy only the path they touch.
public struct Keyspace: Sendable, Equatable {
    public internal(set) var entries = TreeDictionary<Bytes, Entry>()

    public init() {}

    /// The key's entry unless it has expired by `now`.
    @inlinable public func live(_ key: Bytes, at now: Int64) -> Entry? {
        guard let entry = entries[key], !entry.isExpired(at: now) else { return nil }
        return entry
    }

    public var count: Int { entries.count }
}

/// One change a txn made to the keyspace: what the committed state replays by assignment, so
/// that head and committed share values instead of computing them twice.
public enum KeyspaceChange: Sendable {
    case put(Bytes, Entry)
    case remove(Bytes)
    case clear
}

extension Keyspace {
    mutating func apply(_ change: KeyspaceChange) {
        switch change {
        case .put(let key, let entry): entries[key] = entry
        case .remove(let key): entries[key] = nil
        case .clear: entries = TreeDictionary()
        }
    }
}
