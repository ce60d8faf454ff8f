/// ZooKeeper's watch event types, with its wire codes.
public enum WatchEventType: Int32, Sendable, Equatable {
    case nodeCreated = 1
    case nodeDeleted = 2
    case nodeDataChanged = 3
    case nodeChildrenChanged = 4
}

/// A change a watcher is told about, with the zxid (txn index) of the change.
public struct WatchEvent: Sendable, Equatable {
    public var type: WatchEventType
    public var path: String
    public var zxid: Int64

    public init(type: WatchEventType, path: String, zxid: Int64) {
        self.type = type
        self.path = path
        self.zxid = zxid
    }
}

/// What a watch waits for.
public enum WatchKind: Sendable, Hashable {
    /// Set by `getData`, or `exists` on a node that exists: data changed or node deleted. One-shot.
    case data
    /// Set by `exists` on a node that does not exist: node created. One-shot.
    case exists
    /// Set by `getChildren`: a child created or deleted, or the node deleted. One-shot.
    case children
    /// `addWatch` PERSISTENT: every event on the node, until removed.
    case persistent
    /// `addWatch` PERSISTENT_RECURSIVE: created, deleted and data-changed events on the node and
    /// every descendant, until removed.
    case persistentRecursive
}

public typealias WatchHandler = @Sendable (WatchEvent) -> Void

/// Identifies a registered watch (to remove it).
public struct WatchID: Hashable, Sendable {
    let raw: UInt64
}

/// The registered watches by path and kind. Guarded by the store's read lock, so registering
/// with a read and firing with the change that follows it can never miss each other.
struct WatchRegistry {
    private var next: UInt64 = 1
    /// Each watch's id, handler, and whether it is called at once (under the store's read lock,
    /// as the change commits) rather than queued and called after.
    private var byKind: [Kind: [String: [(WatchID, WatchHandler, Bool)]]] = [:]
    private var locations: [WatchID: (Kind, String)] = [:]

    private enum Kind: Hashable { case data, exists, children, persistent, recursive }

    private static func kind(_ kind: WatchKind) -> Kind {
        switch kind {
        case .data: return .data
        case .exists: return .exists
        case .children: return .children
        case .persistent: return .persistent
        case .persistentRecursive: return .recursive
        }
    }

    var isEmpty: Bool { locations.isEmpty }
    var count: Int { locations.count }

    mutating func add(_ kind: WatchKind, path: String, immediate: Bool = false, _ handler: @escaping WatchHandler) -> WatchID {
        let id = WatchID(raw: next)
        next += 1
        let k = Self.kind(kind)
        byKind[k, default: [:]][path, default: []].append((id, handler, immediate))
        locations[id] = (k, path)
        return id
    }

    @discardableResult
    mutating func remove(_ id: WatchID) -> Bool {
        guard let (kind, path) = locations.removeValue(forKey: id) else { return false }
        byKind[kind]?[path]?.removeAll { $0.0 == id }
        if byKind[kind]?[path]?.isEmpty == true { byKind[kind]?[path] = nil }
        return true
    }

    private mutating func take(_ kind: Kind, _ path: String, into fired: inout [(WatchHandler, WatchEvent)], _ event: WatchEvent) {
        guard let watchers = byKind[kind]?.removeValue(forKey: path) else { return }
        for (id, handler, immediate) in watchers {
            locations[id] = nil
            if immediate { handler(event) } else { fired.append((handler, event)) }
        }
    }

    private func peek(_ kind: Kind, _ path: String, into fired: inout [(WatchHandler, WatchEvent)], _ event: WatchEvent) {
        for (_, handler, immediate) in byKind[kind]?[path] ?? [] {
            if immediate { handler(event) } else { fired.append((handler, event)) }
        }
    }

    /// The handlers `event` fires, in registration order; one-shot watches are removed.
    /// Immediate handlers are called here; the others are appended to `fired`.
    mutating func fire(_ event: WatchEvent, into fired: inout [(WatchHandler, WatchEvent)]) {
        switch event.type {
        case .nodeCreated:
            take(.exists, event.path, into: &fired, event)
        case .nodeDeleted:
            take(.data, event.path, into: &fired, event)
            take(.exists, event.path, into: &fired, event)
            take(.children, event.path, into: &fired, event)
        case .nodeDataChanged:
            take(.data, event.path, into: &fired, event)
            take(.exists, event.path, into: &fired, event)
        case .nodeChildrenChanged:
            take(.children, event.path, into: &fired, event)
        }
        peek(.persistent, event.path, into: &fired, event)
        if event.type != .nodeChildrenChanged {
            var path = event.path
            while true {
                peek(.recursive, path, into: &fired, event)
                if path == "/" { break }
                path = ZPath.parent(path)
            }
        }
    }
}
