import Cairn
import HashTreeCollections

/// The key-value commands: each turns its arguments into a ``CommandPlan`` (Redis 7's argument
/// forms and errors), over the store's KV operations and committed reads.
enum DataCommands {
    typealias Planner = @Sendable (Arguments, Store) throws -> CommandPlan
    /// A plain read: the reply from the arguments and the committed keyspace.
    typealias ReadBody = @Sendable (Arguments, KeyspaceReader) throws -> RESPValue

    /// A data command's arity, key positions and body. A class: a connection resolves a
    /// command per request, and copying a struct of two closures retained both each time.
    final class Spec: Sendable {
        /// Redis's arity: exact when positive, at least |arity| when negative (name included).
        let arity: Int
        let isWrite: Bool
        let firstKey: Int
        let lastKey: Int
        let step: Int
        let plan: Planner
        /// For a plain read, its body: the connection runs it at once, with no plan and no
        /// closure made per request (two allocations of every pipelined GET).
        let read: ReadBody?

        init(arity: Int, isWrite: Bool, firstKey: Int, lastKey: Int, step: Int, plan: @escaping Planner, read: ReadBody? = nil) {
            (self.arity, self.isWrite, self.firstKey, self.lastKey, self.step) = (arity, isWrite, firstKey, lastKey, step)
            self.plan = plan
            self.read = read
        }
    }

    // MARK: Helpers

    static func stringValue(_ store: KeyspaceReader, _ key: Bytes) -> Result<Bytes?, CommandError> {
        stringValue(of: store.liveEntry(key))
    }

    /// A live entry's string, nil when absent; WRONGTYPE for any other value.
    static func stringValue(of entry: Entry?) -> Result<Bytes?, CommandError> {
        guard let entry else { return .success(nil) }
        guard case .string(let bytes) = entry.value else { return .failure(CommandError(KVError.wrongType.message)) }
        return .success(bytes)
    }

    static func read(_ body: @escaping @Sendable (KeyspaceReader) throws -> RESPValue) -> CommandPlan {
        .read { store in answering { try body(store) } }
    }

    /// A read's reply, or the error reply it threw.
    static func answering(_ body: () throws -> RESPValue) -> RESPValue {
        do { return try body() } catch let error as CommandError { return .error(error.message) } catch { return .error("ERR \(error)") }
    }

    /// `EX`/`PX`/`EXAT`/`PXAT`/`KEEPTTL`/`PERSIST` options shared by SET and GETEX.
    static func expiryOption(_ args: Arguments, _ i: inout Int, _ allowKeep: Bool, _ allowPersist: Bool) throws(CommandError) -> Expiry?? {
        let option = args.upper(i)
        switch option {
        case "EX", "PX", "EXAT", "PXAT":
            guard i + 1 < args.count else { throw CommandError(RedisErrors.syntax) }
            let n = try args.integer(i + 1)
            i += 1
            switch option {
            case "EX": return .some(.seconds(n))
            case "PX": return .some(.milliseconds(n))
            case "EXAT": return .some(.unixSeconds(n))
            default: return .some(.unixMilliseconds(n))
            }
        case "KEEPTTL" where allowKeep: return .some(.keep)
        case "PERSIST" where allowPersist: return .some(nil)
        default: return nil
        }
    }

    static func resolve(_ store: Store, _ expiry: Expiry?, _ command: String) throws(CommandError) -> ExpiryChange {
        do { return try store.resolveExpiry(expiry, command: command) } catch { throw CommandError(error.message) }
    }

    static func list(_ store: KeyspaceReader, _ key: Bytes) throws(CommandError) -> PersistentList? {
        guard let entry = store.liveEntry(key) else { return nil }
        guard case .list(let list) = entry.value else { throw CommandError(KVError.wrongType.message) }
        return list
    }

    static func hash(_ store: KeyspaceReader, _ key: Bytes) throws(CommandError) -> TreeDictionary<Bytes, Bytes>? {
        guard let entry = store.liveEntry(key) else { return nil }
        guard case .hash(let hash) = entry.value else { throw CommandError(KVError.wrongType.message) }
        return hash
    }

    static func expireCondition(_ args: Arguments, from: Int) throws(CommandError) -> ExpireCondition {
        var condition = ExpireCondition.always
        for i in from..<args.count {
            let flag: ExpireCondition
            switch args.upper(i) {
            case "NX": flag = .ifNoExpiry
            case "XX": flag = .ifHasExpiry
            case "GT": flag = .ifGreater
            case "LT": flag = .ifLess
            default: throw CommandError("ERR Unsupported option \(args[i].string)")
            }
            if condition != .always && condition != flag {
                let both = Set([condition, flag])
                if both == [.ifNoExpiry, .ifHasExpiry] || both.contains(.ifNoExpiry) {
                    throw CommandError("ERR NX and XX, GT or LT options at the same time are not compatible")
                }
                throw CommandError("ERR GT and LT options at the same time are not compatible")
            }
            condition = flag
        }
        return condition
    }

    static func expirePlan(_ name: String, scale: Int64, absolute: Bool) -> Planner {
        { (args: Arguments, store: Store) throws -> CommandPlan in
            let n = try args.integer(2)
            let condition = try expireCondition(args, from: 3)
            let (scaled, o1) = n.multipliedReportingOverflow(by: scale)
            let (at, o2) = absolute ? (scaled, false) : scaled.addingReportingOverflow(store.now())
            if o1 || o2 { throw CommandError(RedisErrors.invalidExpire(name)) }
            return .write(.expire(args[1], at: at, condition: condition), answer: CommandPlan.plain)
        }
    }

    static func pushPlan(left: Bool, onlyIfExists: Bool) -> Planner {
        { (args: Arguments, _: Store) throws -> CommandPlan in
            .write(.push(args[1], args.values(from: 2), left: left, onlyIfExists: onlyIfExists), answer: CommandPlan.plain)
        }
    }

    static func popPlan(left: Bool) -> Planner {
        { (args: Arguments, _: Store) throws -> CommandPlan in
            guard args.count <= 3 else { throw CommandError(RedisErrors.arity(left ? "lpop" : "rpop")) }
            var count: Int64?
            if args.count == 3 {
                let n = try args.integer(2)
                guard n >= 0 else { throw CommandError("ERR value is out of range, must be positive") }
                count = n
            }
            return .write(.pop(args[1], count: count, left: left), answer: CommandPlan.plain)
        }
    }

    /// HMSET answers OK where HSET answers the count of new fields.
    static let hmsetAnswer: @Sendable (Reply) -> RESPValue = { reply in
        if case .error = reply { return RESPValue(reply) }
        return .ok
    }

    // MARK: The table

    static let table: [String: Spec] = {
        var t = Table()
        addStrings(&t)
        addKeys(&t)
        addLists(&t)
        addHashes(&t)
        return t.specs
    }()

    /// The command table as it is built.
    struct Table {
        var specs: [String: Spec] = [:]

        mutating func add(_ name: String, _ arity: Int, write: Bool, keys: (Int, Int, Int) = (1, 1, 1), _ plan: @escaping Planner) {
            specs[name] = Spec(arity: arity, isWrite: write, firstKey: keys.0, lastKey: keys.1, step: keys.2, plan: plan)
        }

        /// A plain read (see ``Spec/read``); its plan, for MULTI, runs the same body.
        mutating func addRead(_ name: String, _ arity: Int, keys: (Int, Int, Int) = (1, 1, 1), _ body: @escaping ReadBody) {
            specs[name] = Spec(
                arity: arity, isWrite: false, firstKey: keys.0, lastKey: keys.1, step: keys.2,
                plan: { args, _ in read { store in try body(args, store) } }, read: body)
        }
    }

    private static func addStrings(_ t: inout Table) {
        t.addRead("get", 2) { args, store in
            // The key looked up in place: no copy of it made (an allocation a GET).
            switch stringValue(of: args.withBytes(1, { store.liveEntry(bytes: $0) })) {
            case .success(let value): return value.map { .bulk($0) } ?? .null
            case .failure(let error): throw error
            }
        }
        t.add("set", -3, write: true) { args, store in
            var condition = SetCondition.always
            var expiry: Expiry?
            var haveExpiry = false
            var returnOld = false
            var i = 3
            while i < args.count {
                switch args.upper(i) {
                case "NX" where condition == .always: condition = .ifAbsent
                case "XX" where condition == .always: condition = .ifPresent
                case "GET": returnOld = true
                default:
                    guard !haveExpiry, let option = try expiryOption(args, &i, true, false) else { throw CommandError(RedisErrors.syntax) }
                    expiry = option
                    haveExpiry = true
                }
                i += 1
            }
            let change = try resolve(store, expiry, "set")
            return .write(.set(args[1], args[2], condition: condition, expiry: change, returnOld: returnOld), answer: CommandPlan.plain)
        }
        t.add("setnx", 3, write: true) { args, _ in
            .write(.set(args[1], args[2], condition: .ifAbsent, expiry: .clear, returnOld: false), answer: CommandPlan.okAsOne)
        }
        t.add("setex", 4, write: true) { args, store in
            let change = try resolve(store, .seconds(try args.integer(2)), "setex")
            return .write(.set(args[1], args[3], condition: .always, expiry: change, returnOld: false), answer: CommandPlan.plain)
        }
        t.add("psetex", 4, write: true) { args, store in
            let change = try resolve(store, .milliseconds(try args.integer(2)), "psetex")
            return .write(.set(args[1], args[3], condition: .always, expiry: change, returnOld: false), answer: CommandPlan.plain)
        }
        t.add("getset", 3, write: true) { args, _ in
            .write(.set(args[1], args[2], condition: .always, expiry: .clear, returnOld: true), answer: CommandPlan.plain)
        }
        t.add("del", -2, write: true, keys: (1, -1, 1)) { args, _ in .write(.delete(args.values(from: 1)), answer: CommandPlan.plain) }
        t.add("unlink", -2, write: true, keys: (1, -1, 1)) { args, _ in .write(.delete(args.values(from: 1)), answer: CommandPlan.plain) }
        t.addRead("exists", -2, keys: (1, -1, 1)) { args, store in .integer(Int64(args.values(from: 1).filter { store.liveEntry($0) != nil }.count)) }
        t.addRead("mget", -2, keys: (1, -1, 1)) { args, store in
            .array(args.values(from: 1).map { key in
                if case .success(let value?) = stringValue(store, key) { return .bulk(value) }
                return .null
            })
        }
        for (name, onlyIfNoneExist) in [("mset", false), ("msetnx", true)] {
            t.add(name, -3, write: true, keys: (1, -1, 2)) { args, _ in
                guard args.count % 2 == 1 else { throw CommandError(RedisErrors.arity(name)) }
                let keys = stride(from: 1, to: args.count, by: 2).map { args[$0] }
                let values = stride(from: 2, to: args.count, by: 2).map { args[$0] }
                return .write(.setMany(keys: keys, values: values, onlyIfNoneExist: onlyIfNoneExist), answer: CommandPlan.plain)
            }
        }
        t.add("append", 3, write: true) { args, _ in .write(.append(args[1], args[2]), answer: CommandPlan.plain) }
        t.addRead("strlen", 2) { args, store in
            switch stringValue(store, args[1]) {
            case .success(let value): return .integer(Int64(value?.count ?? 0))
            case .failure(let error): throw error
            }
        }
        t.add("getdel", 2, write: true) { args, _ in .write(.getDelete(args[1]), answer: CommandPlan.plain) }
        t.add("getex", -2, write: true) { args, store in
            var change = ExpiryChange.keep
            var i = 2
            var seen = false
            while i < args.count {
                guard !seen, let option = try expiryOption(args, &i, false, true) else { throw CommandError(RedisErrors.syntax) }
                seen = true
                change = option == nil ? .clear : try resolve(store, option!, "getex")
                i += 1
            }
            return .write(.getExpire(args[1], change), answer: CommandPlan.plain)
        }
        t.add("incr", 2, write: true) { args, _ in .write(.incrementBy(args[1], 1), answer: CommandPlan.plain) }
        t.add("decr", 2, write: true) { args, _ in .write(.incrementBy(args[1], -1), answer: CommandPlan.plain) }
        t.add("incrby", 3, write: true) { args, _ in .write(.incrementBy(args[1], try args.integer(2)), answer: CommandPlan.plain) }
        t.add("decrby", 3, write: true) { args, _ in
            let n = try args.integer(2)
            guard n != Int64.min else { throw CommandError("ERR decrement would overflow") }
            return .write(.incrementBy(args[1], -n), answer: CommandPlan.plain)
        }
        t.add("incrbyfloat", 3, write: true) { args, _ in
            let delta = try args.double(2)
            guard delta.isFinite else { throw CommandError("ERR increment would produce NaN or Infinity") }
            return .write(.incrementByFloat(args[1], delta), answer: CommandPlan.plain)
        }

    }

    private static func addKeys(_ t: inout Table) {
        t.addRead("keys", 2, keys: (0, 0, 0)) { args, store in .array(store.keys(args[1]).map { .bulk($0) }) }
        t.add("scan", -2, write: false, keys: (0, 0, 0)) { args, _ in
            guard let cursor = UInt64(args[1].string) else { throw CommandError("ERR invalid cursor") }
            var pattern: Bytes?
            var count = 10
            var type: String?
            var i = 2
            while i < args.count {
                guard i + 1 < args.count else { throw CommandError(RedisErrors.syntax) }
                switch args.upper(i) {
                case "MATCH": pattern = args[i + 1]
                case "COUNT":
                    let n = try args.integer(i + 1)
                    guard n >= 1 else { throw CommandError(RedisErrors.syntax) }
                    count = Int(min(n, 1 << 20))
                case "TYPE": type = args[i + 1].string.lowercased()
                default: throw CommandError(RedisErrors.syntax)
                }
                i += 2
            }
            let (match, limit, kind) = (pattern, count, type)
            return .read { store in
                var (next, keys) = store.scan(cursor: cursor, match: match, count: limit)
                if let kind { keys = keys.filter { store.type($0) == kind } }
                return .array([.bulk(Bytes(String(next))), .array(keys.map { .bulk($0) })])
            }
        }
        t.addRead("type", 2) { args, store in .simple(store.type(args[1])) }
        t.add("rename", 3, write: true, keys: (1, 2, 1)) { args, _ in .write(.rename(args[1], to: args[2], onlyIfAbsent: false), answer: CommandPlan.plain) }
        t.add("renamenx", 3, write: true, keys: (1, 2, 1)) { args, _ in .write(.rename(args[1], to: args[2], onlyIfAbsent: true), answer: CommandPlan.plain) }

        t.add("expire", -3, write: true, expirePlan("expire", scale: 1000, absolute: false))
        t.add("pexpire", -3, write: true, expirePlan("pexpire", scale: 1, absolute: false))
        t.add("expireat", -3, write: true, expirePlan("expireat", scale: 1000, absolute: true))
        t.add("pexpireat", -3, write: true, expirePlan("pexpireat", scale: 1, absolute: true))
        t.addRead("ttl", 2) { args, store in .integer(store.ttl(args[1])) }
        t.addRead("pttl", 2) { args, store in .integer(store.pttl(args[1])) }
        for (name, divisor) in [("expiretime", Int64(1000)), ("pexpiretime", Int64(1))] {
            t.add(name, 2, write: false) { args, _ in
                .read { store in
                    guard let entry = store.liveEntry(args[1]) else { return .integer(-2) }
                    return .integer(entry.expiresAt == 0 ? -1 : entry.expiresAt / divisor)
                }
            }
        }
        t.add("persist", 2, write: true) { args, _ in .write(.persist(args[1]), answer: CommandPlan.plain) }

    }

    private static func addLists(_ t: inout Table) {
        t.add("lpush", -3, write: true, pushPlan(left: true, onlyIfExists: false))
        t.add("rpush", -3, write: true, pushPlan(left: false, onlyIfExists: false))
        t.add("lpushx", -3, write: true, pushPlan(left: true, onlyIfExists: true))
        t.add("rpushx", -3, write: true, pushPlan(left: false, onlyIfExists: true))
        t.add("lpop", -2, write: true, popPlan(left: true))
        t.add("rpop", -2, write: true, popPlan(left: false))
        t.addRead("llen", 2) { args, store in .integer(Int64(try list(store, args[1])?.count ?? 0)) }
        t.add("lrange", 4, write: false) { args, _ in
            let start = try args.integer(2), stop = try args.integer(3)
            return read { store in
                guard let items = try list(store, args[1]) else { return .array([]) }
                return .array(items.elements(in: ListRange.resolve(start: start, stop: stop, count: items.count)).map { .bulk($0) })
            }
        }
        t.add("lindex", 3, write: false) { args, _ in
            let index = try args.integer(2)
            return read { store in
                guard let items = try list(store, args[1]) else { return .null }
                let position = index < 0 ? Int64(items.count) + index : index
                guard position >= 0 && position < Int64(items.count) else { return .null }
                return .bulk(items[Int(position)])
            }
        }
        t.add("lrem", 4, write: true) { args, _ in .write(.listRemove(args[1], count: try args.integer(2), value: args[3]), answer: CommandPlan.plain) }
        t.add("ltrim", 4, write: true) { args, _ in .write(.listTrim(args[1], start: try args.integer(2), stop: try args.integer(3)), answer: CommandPlan.plain) }

    }

    private static func addHashes(_ t: inout Table) {
        for name in ["hset", "hmset"] {
            t.add(name, -4, write: true) { args, _ in
                guard args.count % 2 == 0 else { throw CommandError(RedisErrors.arity(name)) }
                let fields = stride(from: 2, to: args.count, by: 2).map { args[$0] }
                let values = stride(from: 3, to: args.count, by: 2).map { args[$0] }
                let answer: @Sendable (Reply) -> RESPValue = name == "hmset" ? hmsetAnswer : CommandPlan.plain
                return .write(.hashSet(args[1], fields: fields, values: values), answer: answer)
            }
        }
        t.addRead("hget", 3) { args, store in (try hash(store, args[1])?[args[2]]).map { .bulk($0) } ?? .null }
        t.addRead("hmget", -3) { args, store in
            let table = try hash(store, args[1])
            return .array(args.values(from: 2).map { field in table?[field].map { .bulk($0) } ?? .null })
        }
        t.add("hdel", -3, write: true) { args, _ in .write(.hashDelete(args[1], fields: args.values(from: 2)), answer: CommandPlan.plain) }
        t.addRead("hgetall", 2) { args, store in
            let pairs = (try hash(store, args[1]) ?? [:]).sorted { $0.key < $1.key }
            return .map(pairs.map { (.bulk($0.key), .bulk($0.value)) })
        }
        t.addRead("hkeys", 2) { args, store in .array((try hash(store, args[1]) ?? [:]).keys.sorted().map { .bulk($0) }) }
        t.addRead("hvals", 2) { args, store in .array((try hash(store, args[1]) ?? [:]).sorted { $0.key < $1.key }.map { .bulk($0.value) }) }
        t.addRead("hexists", 3) { args, store in .integer(try hash(store, args[1])?[args[2]] == nil ? 0 : 1) }
        t.addRead("hlen", 2) { args, store in .integer(Int64(try hash(store, args[1])?.count ?? 0)) }
        t.add("hincrby", 4, write: true) { args, _ in .write(.hashIncrementBy(args[1], field: args[2], try args.integer(3)), answer: CommandPlan.plain) }

        t.addRead("dbsize", 1, keys: (0, 0, 0)) { _, store in .integer(Int64(store.dbsize())) }
        for name in ["flushdb"] {
            t.add(name, -1, write: true, keys: (0, 0, 0)) { args, _ in
                guard args.count <= 2, args.count == 1 || ["ASYNC", "SYNC"].contains(args.upper(1)) else { throw CommandError(RedisErrors.syntax) }
                return .write(.flushAll, answer: CommandPlan.plain)
            }
        }
    }
}
