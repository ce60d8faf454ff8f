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
    static func unknown(_ name: String, _ arguments: ArraySlice<Bytes>) -> String {
        var text = "ERR unknown command '\(String(name.prefix(128)))', with args beginning with: "
        for argument in arguments.prefix(20) { text += "'\(String(argument.string.prefix(128)))' " }
        return text
    }
    static func invalidExpire(_ command: String) -> String { "ERR invalid expire time in '\(command)' command" }
}

/// Parses arguments with Redis's rules and errors.
struct Arguments: Sendable {
    let values: [Bytes]
    init(_ values: [Bytes]) { self.values = values }

    var count: Int { values.count }
    subscript(_ i: Int) -> Bytes { values[i] }

    func upper(_ i: Int) -> String { values[i].string.uppercased() }

    func integer(_ i: Int) throws(CommandError) -> Int64 {
        guard let n = RedisNumbers.parseInteger(values[i]) else { throw CommandError(RedisErrors.notInteger) }
        return n
    }

    func double(_ i: Int) throws(CommandError) -> Double {
        guard let d = RedisNumbers.parseFloat(values[i]), !d.isNaN else { throw CommandError(RedisErrors.notFloat) }
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
    func keys(_ pattern: Bytes) -> [Bytes] { store.keys(pattern, db: db) }
    func scan(cursor: UInt64, match: Bytes?, count: Int) -> (cursor: UInt64, keys: [Bytes]) { store.scan(cursor: cursor, match: match, count: count, db: db) }
    func type(_ key: Bytes) -> String { store.type(key, db: db) }
    func ttl(_ key: Bytes) -> Int64 { store.ttl(key, db: db) }
    func pttl(_ key: Bytes) -> Int64 { store.pttl(key, db: db) }
    func dbsize() -> Int { store.dbsize(db: db) }
}
