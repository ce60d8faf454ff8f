/// Sessions of the znode tree: ephemeral znodes belong to one and go when it closes or expires.
///
/// ```swift
/// let session = try store.createSession(timeout: 10_000)
/// try store.create("/workers/w-", kind: .ephemeral, sequential: true, session: session)
/// store.touch(session)            // a client's ping: restarts the 10 s timeout, not logged
/// try store.closeSession(session) // or let it time out: its ephemerals are deleted in one txn
/// ```
extension Store {
    /// Opens a session (a logged txn) whose timeout restarts at every ``touch(_:)``; returns its
    /// id. BadArguments for a timeout outside ``Session/timeoutRange``.
    public func createSession(timeout: Int64) throws -> Int64 {
        guard Session.timeoutRange.contains(timeout) else { throw TreeError.badArguments }
        guard case .integer(let id) = try treeReply(run(.createSession(timeout: timeout))) else { preconditionFailure("createSession answered otherwise") }
        return id
    }

    /// Async ``createSession(timeout:)``.
    public func createSession(timeout: Int64) async throws -> Int64 {
        guard Session.timeoutRange.contains(timeout) else { throw TreeError.badArguments }
        guard case .integer(let id) = try treeReply(await run(.createSession(timeout: timeout))) else { preconditionFailure("createSession answered otherwise") }
        return id
    }

    /// Keeps a session alive: its timeout starts again now. Not logged. False when the session
    /// is not open (closed, expired, or its expiry already under way).
    @discardableResult
    public func touch(_ session: Int64) -> Bool {
        let now = clock.nowMilliseconds()
        return withWriterLock { expiry.touch(session, now: now) }
    }

    /// Closes a session, deleting its ephemeral znodes (and firing their watches) in one txn.
    /// False when it was not open.
    @discardableResult
    public func closeSession(_ session: Int64) throws -> Bool {
        try treeReply(run(.closeSession(session))) == .integer(1)
    }

    /// Async ``closeSession(_:)``.
    @discardableResult
    public func closeSession(_ session: Int64) async throws -> Bool {
        try treeReply(await run(.closeSession(session))) == .integer(1)
    }

    /// An open session (committed), or nil.
    public func session(_ id: Int64) -> Session? { stateView().tree.sessions[id] }

    /// The ephemeral znodes a session owns, sorted (`getEphemerals`).
    public func ephemerals(of session: Int64) -> [String] {
        stateView().tree.sessions[session]?.ephemerals.sorted() ?? []
    }
}
