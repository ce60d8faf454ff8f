import Cairn
import CairnStorage

/// A watch a connection holds: at most one per kind and path, as in ZooKeeper (a second
/// `getData` with a watch on the same node does not make a second notification).
struct ZKWatchKey: Hashable, Sendable {
    let kind: WatchKind
    let path: String

    var isOneShot: Bool { kind != .persistent && kind != .persistentRecursive }
}

/// The events fired for one connection's watches, waiting to be sent. The store calls
/// ``fired(_:_:)`` as the change commits, under its read lock; the connection takes the events
/// before it answers anything that read the state after that change, so a client always gets
/// the notification before any reply that reflects the change (ZooKeeper's guarantee).
final class ZKWatchOutbox: @unchecked Sendable {
    private let lock = Lock()
    private var events: [WatchEvent] = []
    private var active: Set<ZKWatchKey> = []
    private var ids: [ZKWatchKey: WatchID] = [:]
    private var wakeScheduled = false
    /// Schedules the connection's delivery on its event loop (set once, before any watch).
    var wake: @Sendable () -> Void = {}

    /// A store watch handler: one-shot watches are forgotten as they fire; the same event
    /// fired through two watches (data and child watches of a deleted node) is sent once.
    func fired(_ key: ZKWatchKey, _ event: WatchEvent) {
        let schedule: Bool = lock.withLock {
            if key.isOneShot {
                active.remove(key)
                ids[key] = nil
            }
            if let last = events.last, last == event { return false }
            events.append(event)
            defer { wakeScheduled = true }
            return !wakeScheduled
        }
        if schedule { wake() }
    }

    /// Events to send ahead of a reply (`setWatches` catch-up), in order.
    func append(_ event: WatchEvent) {
        lock.withLock { events.append(event) }
    }

    /// Takes the events waiting, in the order they fired.
    func take() -> [WatchEvent] {
        lock.withLock {
            wakeScheduled = false
            guard !events.isEmpty else { return [] }
            defer { events.removeAll(keepingCapacity: true) }
            return events
        }
    }

    /// Call under the store's read lock (in `readTree`'s body): true when the watch is new.
    func claim(_ key: ZKWatchKey) -> Bool {
        lock.withLock { active.insert(key).inserted }
    }

    /// Records the store's id of a claimed watch, unless it fired already.
    func record(_ key: ZKWatchKey, _ id: WatchID) -> Bool {
        lock.withLock {
            guard active.contains(key) else { return false }
            ids[key] = id
            return true
        }
    }

    func has(_ key: ZKWatchKey) -> Bool { lock.withLock { active.contains(key) } }

    /// Forgets watches and returns their store ids (to remove from the store).
    func remove(_ keys: [ZKWatchKey]) -> [WatchID] {
        lock.withLock {
            var removed: [WatchID] = []
            for key in keys where active.remove(key) != nil {
                if let id = ids.removeValue(forKey: key) { removed.append(id) }
            }
            return removed
        }
    }

    /// Every watch held, for removal when the connection closes.
    func removeAll() -> [WatchID] {
        lock.withLock {
            defer { active.removeAll(); ids.removeAll() }
            return Array(ids.values)
        }
    }

    var count: Int { lock.withLock { active.count } }
    var paths: [ZKWatchKey] { lock.withLock { Array(active) } }
}
