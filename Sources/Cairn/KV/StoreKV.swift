import HashTreeCollections

/// A key's lifetime as a caller states it; the store turns it into an absolute deadline.
public enum Expiry: Sendable, Equatable {
    case seconds(Int64)
    case milliseconds(Int64)
    case unixSeconds(Int64)
    case unixMilliseconds(Int64)
    /// `KEEPTTL`: leave the deadline as it is.
    case keep
}

/// The Redis-style key-value API (Redis 7 semantics and errors). Writes block until committed
/// under the fsync policy; reads answer from the committed state at once. `execute` and its
/// async form run any operations as one transaction.
extension Store {
    // MARK: Helpers

    /// Turns a caller's expiry into the absolute deadline a txn carries, with Redis's
    /// `invalid expire time in '<command>' command` for a non-positive or overflowing one.
    public func resolveExpiry(_ expiry: Expiry?, command: String) throws(KVError) -> ExpiryChange {
        try deadline(expiry, command: command)
    }

    private func deadline(_ expiry: Expiry?, command: String) throws(KVError) -> ExpiryChange {
        guard let expiry else { return .clear }
        let now = clock.nowMilliseconds()
        func checked(_ value: Int64, scale: Int64, base: Int64) throws(KVError) -> ExpiryChange {
            guard value > 0 || (base == 0 && value > 0) else { throw .invalidExpireTime(command: command) }
            let (scaled, o1) = value.multipliedReportingOverflow(by: scale)
            let (sum, o2) = scaled.addingReportingOverflow(base)
            if o1 || o2 { throw .invalidExpireTime(command: command) }
            return .at(sum)
        }
        switch expiry {
        case .seconds(let s): return try checked(s, scale: 1000, base: now)
        case .milliseconds(let ms): return try checked(ms, scale: 1, base: now)
        case .unixSeconds(let s): return try checked(s, scale: 1000, base: 0)
        case .unixMilliseconds(let ms): return try checked(ms, scale: 1, base: 0)
        case .keep: return .keep
        }
    }

    private func value(_ reply: Reply) throws -> Reply {
        if case .error(let error) = reply { throw error }
        return reply
    }

    private func integer(_ reply: Reply) throws -> Int64 {
        guard case .integer(let n) = try value(reply) else { preconditionFailure("expected an integer reply, got \(reply)") }
        return n
    }

    private func bulk(_ reply: Reply) throws -> Bytes? {
        switch try value(reply) {
        case .bulk(let bytes): return bytes
        case .null: return nil
        default: preconditionFailure("expected a bulk reply, got \(reply)")
        }
    }

    private func bulks(_ reply: Reply) throws -> [Bytes]? {
        switch try value(reply) {
        case .array(let items): return items.compactMap { if case .bulk(let b) = $0 { return b } else { return nil } }
        case .nullArray, .null: return nil
        default: preconditionFailure("expected an array reply, got \(reply)")
        }
    }

    // MARK: Strings

    /// `SET`: returns whether the value was written (false when NX/XX said no).
    @discardableResult
    public func set(_ key: Bytes, _ value: Bytes, condition: SetCondition = .always, expiry: Expiry? = nil) throws -> Bool {
        let change = try deadline(expiry, command: "set")
        return try self.value(run(.set(key, value, condition: condition, expiry: change, returnOld: false))) == .ok
    }

    /// `SET ... GET`: writes (subject to `condition`) and returns the old value.
    public func setAndGet(_ key: Bytes, _ value: Bytes, condition: SetCondition = .always, expiry: Expiry? = nil) throws -> Bytes? {
        let change = try deadline(expiry, command: "set")
        return try bulk(run(.set(key, value, condition: condition, expiry: change, returnOld: true)))
    }

    public func get(_ key: Bytes) throws -> Bytes? {
        guard let entry = liveEntry(key) else { return nil }
        guard case .string(let bytes) = entry.value else { throw KVError.wrongType }
        return bytes
    }

    public func mget(_ keys: [Bytes]) -> [Bytes?] {
        let (keyspace, now) = readView()
        return keys.map { key in
            guard let entry = keyspace.live(key, at: now), case .string(let bytes) = entry.value else { return nil }
            return bytes
        }
    }

    public func mset(_ pairs: [(Bytes, Bytes)]) throws {
        _ = try value(run(.setMany(keys: pairs.map(\.0), values: pairs.map(\.1), onlyIfNoneExist: false)))
    }

    /// `MSETNX`: sets all or none; true when set.
    public func msetnx(_ pairs: [(Bytes, Bytes)]) throws -> Bool {
        try integer(run(.setMany(keys: pairs.map(\.0), values: pairs.map(\.1), onlyIfNoneExist: true))) == 1
    }

    public func strlen(_ key: Bytes) throws -> Int {
        try get(key)?.count ?? 0
    }

    public func append(_ key: Bytes, _ suffix: Bytes) throws -> Int64 { try integer(run(.append(key, suffix))) }
    public func getdel(_ key: Bytes) throws -> Bytes? { try bulk(run(.getDelete(key))) }

    /// `GETEX`: nil `expiry` leaves the deadline; `persist` removes it.
    public func getex(_ key: Bytes, expiry: Expiry? = nil, persist: Bool = false) throws -> Bytes? {
        let change: ExpiryChange = persist ? .clear : (expiry == nil ? .keep : try deadline(expiry, command: "getex"))
        return try bulk(run(.getExpire(key, change)))
    }

    @discardableResult public func incr(_ key: Bytes) throws -> Int64 { try incrby(key, 1) }
    @discardableResult public func decr(_ key: Bytes) throws -> Int64 { try incrby(key, -1) }
    @discardableResult public func incrby(_ key: Bytes, _ delta: Int64) throws -> Int64 { try integer(run(.incrementBy(key, delta))) }
    @discardableResult public func decrby(_ key: Bytes, _ delta: Int64) throws -> Int64 {
        guard delta != Int64.min else { throw KVError.overflow }
        return try incrby(key, -delta)
    }
    @discardableResult public func incrbyfloat(_ key: Bytes, _ delta: Double) throws -> Bytes {
        guard delta.isFinite else { throw KVError.nanOrInfinity }
        return try bulk(run(.incrementByFloat(key, delta)))!
    }

    /// Async `INCRBY`.
    @discardableResult public func incrby(_ key: Bytes, _ delta: Int64) async throws -> Int64 {
        try integer(await run(.incrementBy(key, delta)))
    }

    /// Async `SET`.
    @discardableResult
    public func set(_ key: Bytes, _ value: Bytes, condition: SetCondition = .always, expiry: Expiry? = nil) async throws -> Bool {
        let change = try deadline(expiry, command: "set")
        return try self.value(await run(.set(key, value, condition: condition, expiry: change, returnOld: false))) == .ok
    }

    // MARK: Keys

    @discardableResult public func del(_ keys: Bytes...) throws -> Int64 { try del(keys) }
    @discardableResult public func del(_ keys: [Bytes]) throws -> Int64 { try integer(run(.delete(keys))) }

    /// `EXISTS`: how many of `keys` exist (a key named twice counts twice).
    public func exists(_ keys: Bytes...) -> Int {
        let (keyspace, now) = readView()
        return keys.filter { keyspace.live($0, at: now) != nil }.count
    }

    /// `TYPE`: "string", "list", "hash", or "none".
    public func type(_ key: Bytes, db: Int = 0) -> String {
        let (keyspace, now) = readView(db: db)
        return keyspace.live(key, at: now)?.value.typeName ?? "none"
    }

    public func rename(_ source: Bytes, _ destination: Bytes) throws {
        _ = try value(run(.rename(source, to: destination, onlyIfAbsent: false)))
    }

    public func renamenx(_ source: Bytes, _ destination: Bytes) throws -> Bool {
        try integer(run(.rename(source, to: destination, onlyIfAbsent: true))) == 1
    }

    /// `DBSIZE`: keys held, including expired ones not yet removed (as Redis counts).
    public func dbsize(db: Int = 0) -> Int { readView(db: db).keyspace.count }

    public func flushall() throws { _ = try value(run(.flushAll)) }

    /// `KEYS pattern`: every live key matching the glob, sorted.
    public func keys(_ pattern: Bytes = "*", db: Int = 0) -> [Bytes] {
        let (keyspace, now) = readView(db: db)
        return keyspace.entries.compactMap { key, entry in
            !entry.isExpired(at: now) && Glob.matches(pattern, key) ? key : nil
        }.sorted()
    }

    /// Scan passes kept now, each a sorted snapshot of one database's keys (at most 8; one
    /// unused for a minute is dropped).
    public var scanPassesKept: Int { scanPasses.count }

    /// `SCAN cursor [MATCH pattern] [COUNT count]`. Keys are visited in the order of a fixed
    /// hash of their bytes, so every key present for the whole scan is returned at least once,
    /// whatever changes in between. The first step (cursor 0) sorts a snapshot of the keys, in
    /// O(n log n); each later step is O(log n + count) while its pass is kept (``ScanPasses``).
    /// Returns the next cursor (0 when done) and the keys of this step that still exist.
    public func scan(cursor: UInt64, match pattern: Bytes? = nil, count: Int = 10, db: Int = 0) -> (cursor: UInt64, keys: [Bytes]) {
        let (keyspace, now) = readView(db: db)
        let generation = cursor >> ScanPasses.positionBits
        let position = cursor & ScanPasses.positionMask
        var pass = scanPasses.keys(generation: generation, db: db, position: position, now: now).map { (generation, $0) }
        if pass == nil {
            // A new scan, or one whose pass was dropped: a pass of the keys there now, from here on.
            var keys: [(position: UInt64, key: Bytes)] = []
            for (key, entry) in keyspace.entries where !entry.isExpired(at: now) {
                let at = ScanPasses.position(of: key)
                if at >= position { keys.append((at, key)) }
            }
            keys.sort { $0.position < $1.position || ($0.position == $1.position && $0.key < $1.key) }
            pass = (scanPasses.add(db: db, from: position, keys: keys, now: now), keys)
        }
        let (current, keys) = pass!
        // The first key at or after `position` (binary search), then `count` keys, never
        // splitting keys of one position between steps.
        var low = 0, high = keys.count
        while low < high {
            let middle = (low + high) / 2
            if keys[middle].position < position { low = middle + 1 } else { high = middle }
        }
        if low == keys.count { return (0, []) }
        var end = min(keys.count, low + max(1, count))
        while end > low && end < keys.count && keys[end].position == keys[end - 1].position { end += 1 }
        let done = end == keys.count || keys[end - 1].position == ScanPasses.positionMask
        let next = done ? 0 : current << ScanPasses.positionBits | (keys[end - 1].position + 1)
        let page = keys[low..<end].lazy.map(\.key).filter { key in
            keyspace.live(key, at: now) != nil && (pattern == nil || Glob.matches(pattern!, key))
        }
        return (next, Array(page))
    }

    // MARK: Expiry

    /// `EXPIRE` / `PEXPIRE` / `EXPIREAT` / `PEXPIREAT`: true when the deadline was set.
    @discardableResult
    public func expire(_ key: Bytes, _ expiry: Expiry, condition: ExpireCondition = .always) throws -> Bool {
        let now = clock.nowMilliseconds()
        let at: Int64
        switch expiry {
        case .seconds(let s): at = s.multipliedReportingOverflow(by: 1000).partialValue &+ now
        case .milliseconds(let ms): at = ms &+ now
        case .unixSeconds(let s): at = s.multipliedReportingOverflow(by: 1000).partialValue
        case .unixMilliseconds(let ms): at = ms
        case .keep: return false
        }
        return try integer(run(.expire(key, at: at, condition: condition))) == 1
    }

    @discardableResult public func persist(_ key: Bytes) throws -> Bool { try integer(run(.persist(key))) == 1 }

    /// `PTTL`: milliseconds left, -1 without a deadline, -2 when the key does not exist.
    public func pttl(_ key: Bytes, db: Int = 0) -> Int64 {
        let (keyspace, now) = readView(db: db)
        guard let entry = keyspace.live(key, at: now) else { return -2 }
        return entry.expiresAt == 0 ? -1 : entry.expiresAt - now
    }

    /// `TTL`: seconds left (rounded as Redis does), -1 or -2 as ``pttl(_:)``.
    public func ttl(_ key: Bytes, db: Int = 0) -> Int64 {
        let ms = pttl(key, db: db)
        return ms < 0 ? ms : (ms + 500) / 1000
    }

    // MARK: Lists

    @discardableResult public func lpush(_ key: Bytes, _ values: Bytes...) throws -> Int64 { try push(key, values, left: true, onlyIfExists: false) }
    @discardableResult public func rpush(_ key: Bytes, _ values: Bytes...) throws -> Int64 { try push(key, values, left: false, onlyIfExists: false) }
    @discardableResult public func lpushx(_ key: Bytes, _ values: Bytes...) throws -> Int64 { try push(key, values, left: true, onlyIfExists: true) }
    @discardableResult public func rpushx(_ key: Bytes, _ values: Bytes...) throws -> Int64 { try push(key, values, left: false, onlyIfExists: true) }

    public func push(_ key: Bytes, _ values: [Bytes], left: Bool, onlyIfExists: Bool) throws -> Int64 {
        try integer(run(.push(key, values, left: left, onlyIfExists: onlyIfExists)))
    }

    public func lpop(_ key: Bytes) throws -> Bytes? { try bulk(run(.pop(key, count: nil, left: true))) }
    public func rpop(_ key: Bytes) throws -> Bytes? { try bulk(run(.pop(key, count: nil, left: false))) }
    /// `LPOP key count`: nil when the key does not exist.
    public func lpop(_ key: Bytes, count: Int64) throws -> [Bytes]? {
        guard count >= 0 else { throw KVError.mustBePositive }
        return try bulks(run(.pop(key, count: count, left: true)))
    }
    public func rpop(_ key: Bytes, count: Int64) throws -> [Bytes]? {
        guard count >= 0 else { throw KVError.mustBePositive }
        return try bulks(run(.pop(key, count: count, left: false)))
    }

    public func lrem(_ key: Bytes, count: Int64, _ value: Bytes) throws -> Int64 {
        try integer(run(.listRemove(key, count: count, value: value)))
    }

    public func ltrim(_ key: Bytes, _ start: Int64, _ stop: Int64) throws {
        _ = try value(run(.listTrim(key, start: start, stop: stop)))
    }

    private func list(_ key: Bytes) throws -> PersistentList? {
        let (keyspace, now) = readView()
        guard let entry = keyspace.live(key, at: now) else { return nil }
        guard case .list(let list) = entry.value else { throw KVError.wrongType }
        return list
    }

    public func llen(_ key: Bytes) throws -> Int { try list(key)?.count ?? 0 }

    public func lrange(_ key: Bytes, _ start: Int64, _ stop: Int64) throws -> [Bytes] {
        guard let list = try list(key) else { return [] }
        return list.elements(in: ListRange.resolve(start: start, stop: stop, count: list.count))
    }

    public func lindex(_ key: Bytes, _ index: Int64) throws -> Bytes? {
        guard let list = try list(key) else { return nil }
        let i = index < 0 ? (index < -Int64(list.count) ? -1 : Int64(list.count) + index) : index
        return i >= 0 && i < Int64(list.count) ? list[Int(i)] : nil
    }

    // MARK: Hashes

    @discardableResult
    public func hset(_ key: Bytes, _ pairs: [(Bytes, Bytes)]) throws -> Int64 {
        try integer(run(.hashSet(key, fields: pairs.map(\.0), values: pairs.map(\.1))))
    }

    @discardableResult public func hdel(_ key: Bytes, _ fields: Bytes...) throws -> Int64 { try integer(run(.hashDelete(key, fields: fields))) }

    @discardableResult public func hincrby(_ key: Bytes, _ field: Bytes, _ delta: Int64) throws -> Int64 {
        try integer(run(.hashIncrementBy(key, field: field, delta)))
    }

    private func hash(_ key: Bytes) throws -> TreeDictionary<Bytes, Bytes>? {
        let (keyspace, now) = readView()
        guard let entry = keyspace.live(key, at: now) else { return nil }
        guard case .hash(let hash) = entry.value else { throw KVError.wrongType }
        return hash
    }

    public func hget(_ key: Bytes, _ field: Bytes) throws -> Bytes? { try hash(key)?[field] }
    public func hlen(_ key: Bytes) throws -> Int { try hash(key)?.count ?? 0 }
    /// `HGETALL`, sorted by field.
    public func hgetall(_ key: Bytes) throws -> [(Bytes, Bytes)] {
        (try hash(key) ?? [:]).map { ($0.key, $0.value) }.sorted { $0.0 < $1.0 }
    }

    // MARK: Locks

    /// Takes a lock: `SET key token NX PX ttl`. True when taken.
    public func acquireLock(_ key: Bytes, token: Bytes, ttlMilliseconds: Int64) throws -> Bool {
        try set(key, token, condition: .ifAbsent, expiry: .milliseconds(ttlMilliseconds))
    }

    /// Releases a lock only if it still holds `token` (an atomic compare-and-delete).
    public func releaseLock(_ key: Bytes, token: Bytes) throws -> Bool {
        try integer(run(.compareAndDelete(key, token: token))) == 1
    }

    // MARK: Transactions

    /// The version of each key of database `db` now (nil for absent): what `WATCH` records.
    public func versions(_ keys: [Bytes], db: Int = 0) -> [KeyGuard] {
        let (keyspace, now) = readView(db: db)
        return keys.map { KeyGuard(db: db, key: $0, version: keyspace.live($0, at: now)?.version) }
    }
}

/// FNV-1a, 64-bit: a hash fixed across processes, so a `SCAN` cursor means the same thing later.
enum ScanHash {
    static func of(_ key: Bytes) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key.storage { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }
}
