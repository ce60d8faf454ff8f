import Cairn

/// What a command does, decided from its arguments before anything runs: a read of the
/// committed state, a write (one store operation and how to answer its reply), or an answer
/// that needs neither. MULTI/EXEC folds the writes of a block into one txn from these plans.
enum CommandPlan {
    case read(@Sendable (KeyspaceReader) -> RESPValue)
    case write(Cairn.Operation, answer: @Sendable (Reply) -> RESPValue)
    case reply(RESPValue)

    static func error(_ message: String) -> CommandPlan { .reply(.error(message)) }

    /// Answers a store reply as it is (errors become `-ERR ...`, `WRONGTYPE ...`).
    static let plain: @Sendable (Reply) -> RESPValue = { RESPValue($0) }

    /// `:1` for OK, `:0` for a refused conditional write (SETNX, MSETNX-like).
    static let okAsOne: @Sendable (Reply) -> RESPValue = { reply in
        switch reply {
        case .ok: return .integer(1)
        case .null: return .integer(0)
        default: return RESPValue(reply)
        }
    }
}

/// Redis's argument errors, word for word.
enum RedisErrors {
    static let notInteger = "ERR value is not an integer or out of range"
    static let notFloat = "ERR value is not a valid float"
    static let syntax = "ERR syntax error"
    static func arity(_ name: String) -> String { "ERR wrong number of arguments for '\(name)' command" }
    static func unknown(_ arguments: Arguments) -> String {
        var text = "ERR unknown command '\(String(arguments[0].string.prefix(128)))', with args beginning with: "
        for argument in arguments.values(from: 1, to: min(arguments.count, 21)) { text += "'\(String(argument.string.prefix(128)))' " }
        return text
    }
    static func invalidExpire(_ command: String) -> String { "ERR invalid expire time in '\(command)' command" }
}

/// A command's arguments, parsed with Redis's rules and errors.
///
/// Where a connection runs a command as it parses it, the arguments are views of its read
/// buffer, valid only during that call: nothing is copied until the command takes an argument
/// as ``Bytes`` (`args[1]` copies that one). What outlives the call (MULTI's queue, a read
/// waiting for a commit) takes ``owned()`` or ``values``; a closure a plan returns runs within
/// the call or is dropped (EXEC plans from owned arguments). `@unchecked Sendable`: the views
/// never leave the connection's event loop.
struct Arguments: @unchecked Sendable {
    private let copies: [Bytes]
    /// The read buffer's bytes and where each argument lies in them; nil for copies.
    private let base: UnsafeRawPointer?
    private let ranges: UnsafeBufferPointer<Range<Int>>
    let count: Int
    #if DEBUG
    /// Debug builds (the tests') mark a view spent once its call returns (``expire()``), and
    /// any later use traps: a view that escapes into a closure or a queue is caught there,
    /// not left to read whatever the buffer holds by then.
    final class Lease { var live = true }
    private let lease: Lease?
    #endif

    init(_ values: [Bytes]) {
        copies = values
        base = nil
        ranges = UnsafeBufferPointer(start: nil, count: 0)
        count = values.count
        #if DEBUG
        lease = nil
        #endif
    }

    /// Views of the arguments at `ranges` in `bytes`, valid while both are.
    init(viewing bytes: UnsafeRawBufferPointer, at ranges: UnsafeBufferPointer<Range<Int>>) {
        // (The parser's ranges are in order: the last one ends furthest.)
        precondition(!ranges.isEmpty && ranges[0].lowerBound >= 0 && ranges[ranges.count - 1].upperBound <= bytes.count, "argument ranges outside the bytes viewed")
        copies = []
        base = bytes.baseAddress
        self.ranges = ranges
        count = ranges.count
        #if DEBUG
        lease = Lease()
        #endif
    }

    /// Marks a view spent: its call has returned (checked in debug builds only).
    func expire() {
        #if DEBUG
        lease?.live = false
        #endif
    }

    /// Traps (debug builds) when a view is used after its call returned.
    @inline(__always) private func checkLive() {
        #if DEBUG
        precondition(lease?.live ?? true, "a view of the read buffer was used after its command returned: keep owned() copies")
        #endif
    }

    /// The arguments' bytes together (about: a view counts the framing between them).
    var byteCount: Int {
        guard base != nil else { return copies.reduce(0) { $0 + $1.count } }
        return ranges[ranges.count - 1].upperBound - ranges[0].lowerBound
    }

    /// The argument, copied when viewed.
    subscript(_ i: Int) -> Bytes {
        guard let base else { return copies[i] }
        checkLive()
        let range = ranges[i]
        return Bytes(UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count))
    }

    /// Every argument (copies when viewed).
    var values: [Bytes] { base == nil ? copies : values(from: 0) }

    /// The arguments from `first` up to `end` (the last one when nil), copied when viewed.
    func values(from first: Int, to end: Int? = nil) -> [Bytes] {
        let end = end ?? count
        guard first < end else { return [] }
        if base == nil { return Array(copies[first..<end]) }
        // Made at its size (appending after reserveCapacity allocated twice).
        return [Bytes](unsafeUninitializedCapacity: end - first) { buffer, initialized in
            for i in first..<end { (buffer.baseAddress! + (i - first)).initialize(to: self[i]) }
            initialized = end - first
        }
    }

    /// The arguments owning their bytes: what may outlive the call that was given them.
    func owned() -> Arguments { base == nil ? self : Arguments(values) }

    /// Runs `body` on the argument's bytes, copying nothing.
    func withBytes<R>(_ i: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        guard let base else { return copies[i].storage.withUnsafeBytes(body) }
        checkLive()
        let range = ranges[i]
        return body(UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count))
    }

    func upper(_ i: Int) -> String { self[i].string.uppercased() }

    func integer(_ i: Int) throws(CommandError) -> Int64 {
        guard let n = RedisNumbers.parseInteger(self[i]) else { throw CommandError(RedisErrors.notInteger) }
        return n
    }

    func double(_ i: Int) throws(CommandError) -> Double {
        guard let d = RedisNumbers.parseFloat(self[i]), !d.isNaN else { throw CommandError(RedisErrors.notFloat) }
        return d
    }
}

/// An error reply a command's argument parsing produced.
struct CommandError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

/// Reads of one database of the store (the client's `SELECT`ed one).
struct KeyspaceReader: Sendable {
    let store: Store
    let db: Int

    func liveEntry(_ key: Bytes) -> Entry? { store.liveEntry(key, db: db) }
    func liveEntry(bytes key: UnsafeRawBufferPointer) -> Entry? { store.liveEntry(bytes: key, db: db) }
    func keys(_ pattern: Bytes) -> [Bytes] { store.keys(pattern, db: db) }
    func scan(cursor: UInt64, match: Bytes?, count: Int) -> (cursor: UInt64, keys: [Bytes]) { store.scan(cursor: cursor, match: match, count: count, db: db) }
    func type(_ key: Bytes) -> String { store.type(key, db: db) }
    func ttl(_ key: Bytes) -> Int64 { store.ttl(key, db: db) }
    func pttl(_ key: Bytes) -> Int64 { store.pttl(key, db: db) }
    func dbsize() -> Int { store.dbsize(db: db) }
}
