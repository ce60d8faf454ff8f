import HashTreeCollections

/// A client session of the znode tree (ZooKeeper's): its timeout and the ephemeral znodes it
/// owns. Opening and closing one are txns; keeping it alive (a touch) is not logged, so after a
/// restart every session gets a full timeout from the moment of recovery, as in ZooKeeper.
public struct Session: Sendable, Equatable {
    /// Milliseconds without a touch after which the session is closed.
    public var timeout: Int64
    /// Paths of the ephemeral znodes it owns: deleted with it, in the txn that closes it.
    public var ephemerals: TreeSet<String>

    public init(timeout: Int64, ephemerals: TreeSet<String> = []) {
        self.timeout = timeout
        self.ephemerals = ephemerals
    }

    /// Bounds of a session timeout in milliseconds (a server negotiates within narrower ones).
    public static let timeoutRange: ClosedRange<Int64> = 1...(24 * 3_600_000)
}
