import HashTreeCollections

/// The key-value space: a persistent hash trie (``KeyTable``), so a copy (a read view, a
/// snapshot) is O(1) and writes copy only the path they touch.
public struct Keyspace: Sendable, Equatable {
    public internal(set) var entries = KeyTable()

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
    /// Values pushed onto a list that existed (at its front when `left`), with its new version.
    /// Applied in place to each state's own copy, so the head and committed states (apart
    /// under `always`) do not share a list that keeps changing and copy it on every push.
    case listPushed(Bytes, [Bytes], left: Bool, version: UInt64)
    /// `count` values popped from the front (`left`) or back of a list that stays non-empty.
    case listPopped(Bytes, count: Int, left: Bool, version: UInt64)
    /// Bytes appended to a live string (APPEND), with its new version: in place in each state,
    /// as for lists (a string shared by the two states was copied whole by every APPEND).
    case appended(Bytes, Bytes, version: UInt64)

    /// The key changed; nil for a ``clear``.
    var key: Bytes? {
        switch self {
        case .put(let key, _), .remove(let key), .listPushed(let key, _, _, _), .listPopped(let key, _, _, _), .appended(let key, _, _): return key
        case .clear: return nil
        }
    }
}

/// What one txn changed in a keyspace, recorded as far as its consumer needs it.
///
/// A txn applied to a state that is the committed one already (under `no` and `everysec` when
/// nothing is pending) needs its changes only to move timers: there, recording every put cost
/// a pipelined SET a retain and a release of its key and its value, and the record's own
/// upkeep (6% of the server's CPU). `made` counts every change, recorded or not: a txn that
/// made none is not logged.
public struct KeyspaceChanges: Sendable {
    /// Which changes are kept in ``recorded``.
    public enum Recording: Sendable, Equatable {
        /// Every change, in order: what the committed state replays (`always`, pending txns).
        case all
        /// What the expiry tracker acts on: every change while some key has a timer (a
        /// removal or a plain put cancels the key's), else only puts with a deadline.
        case timers(anyKeyTimer: Bool)
        /// None (replay, where the state is all that is wanted).
        case none
    }

    /// The changes kept, in the order they were made.
    public internal(set) var recorded: [KeyspaceChange] = []
    /// Changes made, kept or not.
    public internal(set) var made = 0
    public var recording: Recording = .all

    public init(recording: Recording = .all) { self.recording = recording }

    /// True when the txn changed nothing.
    public var isEmpty: Bool { made == 0 }

    /// Whether a change that starts no timer (anything but a put with a deadline) is kept.
    @inlinable var keepsUntimed: Bool {
        switch recording {
        case .all: return true
        case .timers(let anyKeyTimer): return anyKeyTimer
        case .none: return false
        }
    }

    /// Whether a put of an entry with this deadline (0: none) is kept. Asked before the record
    /// is made, so a put not kept costs nothing.
    @inlinable func keepsPut(expiresAt: Int64) -> Bool {
        expiresAt != 0 ? recording != .none : keepsUntimed
    }

    /// Whether a change made in place to a value (a list's push or pop, an APPEND) is kept:
    /// only a state that replays the record needs one. Asked before the record is made.
    @inlinable var keepsInPlaceChanges: Bool { recording == .all }

    /// Records a change (kept or only counted, see ``Recording``).
    mutating func append(_ change: KeyspaceChange) {
        made += 1
        let keep: Bool
        switch change {
        case .put(_, let entry): keep = keepsPut(expiresAt: entry.expiresAt)
        case .remove, .clear: keep = keepsUntimed
        case .listPushed, .listPopped, .appended: keep = keepsInPlaceChanges
        }
        guard keep else { return }
        // A timer started in this txn: a later change of the same txn may have to move it.
        if case .timers(false) = recording { recording = .timers(anyKeyTimer: true) }
        recorded.append(change)
    }

    /// Counts a change the caller found not kept (see ``keepsPut(expiresAt:)``).
    mutating func skip() { made += 1 }

    mutating func removeAll() {
        made = 0
        // Guarded: an array's removeAll goes through its generic replaceSubrange even when
        // there is nothing to remove.
        if !recorded.isEmpty { recorded.removeAll(keepingCapacity: true) }
    }
}

extension KeyspaceChange {
    /// A put of an entry with a deadline (the only change that starts a timer). Borrowed: a
    /// binding of the enum's payload retained and released its key and value, two pairs of
    /// atomic operations on every write.
    static func setsDeadline(_ change: borrowing KeyspaceChange) -> Bool {
        switch change {
        case .put(_, let entry): return entry.expiresAt != 0
        default: return false
        }
    }
}

extension Keyspace {
    mutating func apply(_ change: KeyspaceChange) {
        switch change {
        case .put(let key, let entry): entries[key] = entry
        case .remove(let key): entries[key] = nil
        case .clear: entries = KeyTable()
        case .listPushed(let key, let values, let left, let version):
            entries.changeList(key, version: version) { list in
                if left { for value in values { list.prepend(value) } } else { for value in values { list.append(value) } }
            }
        case .listPopped(let key, let count, let left, let version):
            entries.changeList(key, version: version) { list in
                precondition(list.count > count, "a pop of \(count) from \(key), which is not a longer list in this state")
                for _ in 0..<count { _ = left ? list.removeFirst() : list.removeLast() }
            }
        case .appended(let key, let suffix, let version):
            entries.changeValue(key, version: version, "string", take: { if case .string(let bytes) = $0 { bytes.storage } else { nil } },
                                wrap: { Cairn.Value.string(Bytes($0)) }) { $0.append(contentsOf: suffix.storage) }
        }
    }
}

extension KeyTable {
    /// Changes the list at `key`, which must be there, in place with one lookup, and sets its
    /// entry's version when given (see ``changeValue(_:version:_:take:wrap:_:)``).
    @discardableResult
    mutating func changeList<R>(_ key: Bytes, version: UInt64?, _ body: (inout PersistentList) -> R) -> R {
        changeValue(key, version: version, "list", take: { if case .list(let list) = $0 { list } else { nil } }, wrap: Cairn.Value.list, body).result
    }

    /// Changes the hash at `key`, which must be there, in place (see ``changeList``); also the
    /// changed entry, which a hash write records whole (no second lookup to read it back).
    @discardableResult
    mutating func changeHash<R>(_ key: Bytes, version: UInt64?, _ body: (inout TreeDictionary<Bytes, Bytes>) -> R) -> (result: R, entry: Entry) {
        let (result, entry) = changeValue(key, version: version, "hash", keepEntry: true,
                                          take: { if case .hash(let hash) = $0 { hash } else { nil } }, wrap: Cairn.Value.hash, body)
        return (result, entry!)
    }

    /// Changes the value at `key` in place with one lookup. The entry lets go of the value while
    /// `body` runs, so this state's copy is referenced once and changes where it lies: a push
    /// touches one chunk of a list, a field set one path of a hash. (With the value left in the
    /// entry it would be copied; taken out of the trie and put back, it cost three trie
    /// operations.) With `keepEntry`, also a copy of the changed entry (for a change that
    /// records it whole); without, no copy is made.
    @discardableResult
    mutating func changeValue<Payload, R>(
        _ key: Bytes, version: UInt64?, _ kind: String, keepEntry: Bool = false,
        take: (Cairn.Value) -> Payload?, wrap: (Payload) -> Cairn.Value, _ body: (inout Payload) -> R
    ) -> (result: R, entry: Entry?) {
        updateValue(forKey: key, default: Self.missing(key, kind)) { entry in
            guard var payload = take(entry.value) else { preconditionFailure("\(key) is not a \(kind) in this state") }
            entry.value = .string(Bytes([]))
            let result = body(&payload)
            entry.value = wrap(payload)
            if let version { entry.version = version }
            return (result, keepEntry ? entry : nil)
        }
    }

    private static func missing(_ key: Bytes, _ kind: String) -> Entry {
        preconditionFailure("\(kind) \(key) is missing from this state")
    }
}
