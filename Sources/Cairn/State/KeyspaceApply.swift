import HashTreeCollections

/// Applying txns to the keyspace: deterministic in (state, txn, index). Lazy expiry is judged
/// against the txn's own time, so replay decides exactly as validation did.
extension Keyspace {
    /// Redis's limit on a string value (proto-max-bulk-len).
    public static let maxStringLength = 512 << 20

    /// Applies one key-value operation of a txn decided at `time`, logged at `index`. An
    /// operation that fails changes nothing; the txn's others still apply, as in Redis's `EXEC`.
    mutating func apply(_ operation: Operation, time: Int64, index: UInt64, changes: inout KeyspaceChanges) -> Reply {
        var context = ApplyContext(time: time, index: index)
        return apply(operation, &context, &changes)
    }

    struct ApplyContext {
        let time: Int64
        let index: UInt64
    }

    // MARK: Primitives that record what they change

    /// The value is consumed: it moves into the trie (and the change record, when kept).
    private mutating func put(_ key: Bytes, _ value: consuming Value, expiresAt: Int64, _ context: ApplyContext, _ changes: inout KeyspaceChanges) {
        let entry = Entry(value: value, expiresAt: expiresAt, version: context.index)
        // Recorded first, so that the trie's set is the entry's last use and moves it.
        if changes.keepsPut(expiresAt: expiresAt) { changes.append(.put(key, entry)) } else { changes.skip() }
        entries.set(entry, forKey: key)
    }

    private mutating func remove(_ key: Bytes, _ changes: inout KeyspaceChanges) {
        if entries.removeValue(forKey: key) != nil { changes.append(.remove(key)) }
    }

    /// The live entry; an expired one is removed as it is met (Redis deletes on access too).
    private mutating func lookup(_ key: Bytes, _ context: ApplyContext, _ changes: inout KeyspaceChanges) -> Entry? {
        guard let entry = entries[key] else { return nil }
        if entry.isExpired(at: context.time) {
            remove(key, &changes)
            return nil
        }
        return entry
    }

    private mutating func lookupString(_ key: Bytes, _ context: ApplyContext, _ changes: inout KeyspaceChanges) throws(KVError) -> (Bytes, Entry)? {
        guard let entry = lookup(key, context, &changes) else { return nil }
        guard case .string(let value) = entry.value else { throw .wrongType }
        return (value, entry)
    }

    /// The key's hash (empty when the key is absent) and its entry; WRONGTYPE for another type.
    private mutating func lookupHash(_ key: Bytes, _ context: ApplyContext, _ changes: inout KeyspaceChanges) throws(KVError) -> (TreeDictionary<Bytes, Bytes>, Entry?) {
        guard let entry = lookup(key, context, &changes) else { return ([:], nil) }
        guard case .hash(let hash) = entry.value else { throw .wrongType }
        return (hash, entry)
    }

    /// The length of the live list at `key` (an expired one is removed here), nil when the key
    /// is absent; WRONGTYPE for another type. The entry read is let go before returning, so the
    /// list is referenced by the trie alone and ``changeList`` changes it in place.
    private mutating func listLength(_ key: Bytes, _ context: ApplyContext, _ changes: inout KeyspaceChanges) throws(KVError) -> Int? {
        guard let entry = lookup(key, context, &changes) else { return nil }
        guard case .list(let list) = entry.value else { throw .wrongType }
        return list.count
    }

    /// A string command's read, check and replace in one trie lookup (INCRBY, INCRBYFLOAT,
    /// APPEND). `body` gets the key's bytes, empty and `live` false when the key is missing or
    /// expired, and changes them in place (the entry lets go of them meanwhile, so an APPEND
    /// grows the one copy instead of copying the string), or throws having changed nothing.
    /// Success replaces the entry (an expired one loses its deadline, as a removal and a put
    /// would leave it), recorded as `delta` for a live key when given, else as a put; a refusal
    /// leaves it as it was, but a missing key's placeholder is taken
    /// out again and an expired key is removed, as a lookup would have. Kept out of `perform`:
    /// inside it, this closure's state slowed every other operation's path (SET 5-8%).
    @inline(never)
    private mutating func changeString<R>(
        _ key: Bytes, _ context: ApplyContext, _ changes: inout KeyspaceChanges,
        delta: KeyspaceChange? = nil,
        _ body: (_ bytes: inout [UInt8], _ live: Bool) throws(KVError) -> R
    ) throws(KVError) -> R {
        var outcome: Result<R, KVError>?
        var missing = false
        let version = context.index, time = context.time
        // The placeholder is marked by the flag, not by a field: txns are applied at any time,
        // 0 included (replay, the crash drill's model).
        let placeholder = { () -> Entry in
            missing = true
            return Entry(value: .string(Bytes([])), version: 0)
        }
        var wasLive = false
        // What the change record needs of the entry, taken inside: returning the entry retained
        // and released its value on every INCR, kept or not.
        var kept: Entry?
        var expiredBefore = false
        entries.updateValue(forKey: key, default: placeholder()) { entry in
            let live = !missing && !entry.isExpired(at: time)
            wasLive = live
            var bytes: [UInt8] = []
            if live {
                guard case .string(let current) = entry.value else {
                    outcome = .failure(.wrongType)
                    return
                }
                entry.value = .string(Bytes([]))
                bytes = (consume current).storage
            }
            do throws(KVError) {
                let result = try body(&bytes, live)
                entry.value = .string(Bytes(bytes))
                if !live { entry.expiresAt = 0 }
                entry.version = version
                outcome = .success(result)
                if !(live && delta != nil) && changes.keepsPut(expiresAt: entry.expiresAt) { kept = entry }
            } catch {
                if live { entry.value = .string(Bytes(bytes)) }
                expiredBefore = !missing && !live
                outcome = .failure(error)
            }
        }
        switch outcome! {
        case .success(let result):
            // A live string changed in place is recorded as `delta` when the caller has one (the
            // committed state then changes its own copy in place too), else as the new entry.
            if wasLive, let delta {
                changes.append(delta)
            } else if let kept {
                changes.append(.put(key, kept))
            } else {
                changes.skip()
            }
            return result
        case .failure(let error):
            if missing {
                entries.removeValue(forKey: key)
            } else if expiredBefore {
                remove(key, &changes)
            }
            throw error
        }
    }

    private func deadline(_ expiry: ExpiryChange, current: Entry?) -> Int64 {
        switch expiry {
        case .clear: return 0
        case .keep: return current?.expiresAt ?? 0
        case .at(let time): return time
        }
    }

    // MARK: Operations

    private mutating func apply(_ operation: Operation, _ context: inout ApplyContext, _ changes: inout KeyspaceChanges) -> Reply {
        do {
            return try perform(operation, context, &changes)
        } catch {
            return .error(error)
        }
    }

    private mutating func perform(_ operation: Operation, _ context: ApplyContext, _ changes: inout KeyspaceChanges) throws(KVError) -> Reply {
        switch operation {
        case .set(let key, let value, let condition, let expiry, let returnOld):
            // A plain SET does not depend on what the key held: overwrite without looking.
            if condition == .always && !returnOld, case let deadline = self.deadline(expiry, current: nil), expiry != .keep,
               deadline == 0 || deadline > context.time {
                put(key, .string(value), expiresAt: deadline, context, &changes)
                return .ok
            }
            let current = lookup(key, context, &changes)
            var old: Reply = .null
            if returnOld, let current {
                guard case .string(let bytes) = current.value else { throw .wrongType }
                old = .bulk(bytes)
            }
            let skip = (condition == .ifAbsent && current != nil) || (condition == .ifPresent && current == nil)
            if skip { return returnOld ? old : .null }
            let expiresAt = deadline(expiry, current: current)
            if expiresAt != 0 && expiresAt <= context.time {
                remove(key, &changes)  // a deadline already past: the key is gone at once
            } else {
                put(key, .string(value), expiresAt: expiresAt, context, &changes)
            }
            return returnOld ? old : .ok

        case .setMany(let keys, let values, let onlyIfNoneExist):
            if onlyIfNoneExist {
                for key in keys where lookup(key, context, &changes) != nil { return .integer(0) }
            }
            for (key, value) in zip(keys, values) { put(key, .string(value), expiresAt: 0, context, &changes) }
            return onlyIfNoneExist ? .integer(1) : .ok

        case .delete(let keys):
            var removed: Int64 = 0
            for key in keys where lookup(key, context, &changes) != nil {
                remove(key, &changes)
                removed += 1
            }
            return .integer(removed)

        case .incrementBy(let key, let delta):
            return .integer(try changeString(key, context, &changes) { (bytes, live) throws(KVError) in
                var number: Int64 = 0
                if live {
                    guard let parsed = RedisNumbers.parseInteger(Bytes(bytes)) else { throw .notAnInteger }
                    number = parsed
                }
                let (sum, overflow) = number.addingReportingOverflow(delta)
                if overflow { throw .overflow }
                // Rewritten in place: the entry let go of them, so no copy and no new array
                // (formatting through a `String` allocated twice a counter's increment).
                bytes.removeAll(keepingCapacity: true)
                RedisNumbers.appendDecimal(sum, to: &bytes)
                return sum
            })

        case .incrementByFloat(let key, let delta):
            return .bulk(try changeString(key, context, &changes) { (bytes, live) throws(KVError) in
                var number = 0.0
                if live {
                    guard let parsed = RedisNumbers.parseFloat(Bytes(bytes)) else { throw .notAFloat }
                    number = parsed
                }
                let sum = number + delta
                guard sum.isFinite else { throw .nanOrInfinity }
                let formatted = RedisNumbers.format(sum)
                bytes = formatted.storage
                return formatted
            })

        case .append(let key, let suffix):
            let delta = KeyspaceChange.appended(key, suffix, version: context.index)
            return .integer(try changeString(key, context, &changes, delta: delta) { (bytes, _) throws(KVError) in
                guard bytes.count + suffix.count <= Keyspace.maxStringLength else { throw .stringTooLong }
                bytes.append(contentsOf: suffix.storage)
                return Int64(bytes.count)
            })

        case .getDelete(let key):
            guard let (bytes, _) = try lookupString(key, context, &changes) else { return .null }
            remove(key, &changes)
            return .bulk(bytes)

        case .getExpire(let key, let expiry):
            guard let (bytes, entry) = try lookupString(key, context, &changes) else { return .null }
            let expiresAt = deadline(expiry, current: entry)
            if expiresAt != 0 && expiresAt <= context.time {
                remove(key, &changes)
            } else if expiresAt != entry.expiresAt {
                put(key, entry.value, expiresAt: expiresAt, context, &changes)
            }
            return .bulk(bytes)

        case .expire(let key, let at, let condition):
            guard let entry = lookup(key, context, &changes) else { return .integer(0) }
            let current = entry.expiresAt
            let allowed: Bool
            switch condition {
            case .always: allowed = true
            case .ifNoExpiry: allowed = current == 0
            case .ifHasExpiry: allowed = current != 0
            case .ifGreater: allowed = current != 0 && at > current
            case .ifLess: allowed = current == 0 || at < current
            }
            guard allowed else { return .integer(0) }
            if at <= context.time {
                remove(key, &changes)
            } else {
                put(key, entry.value, expiresAt: at, context, &changes)
            }
            return .integer(1)

        case .persist(let key):
            guard let entry = lookup(key, context, &changes), entry.expiresAt != 0 else { return .integer(0) }
            put(key, entry.value, expiresAt: 0, context, &changes)
            return .integer(1)

        case .rename(let source, let destination, let onlyIfAbsent):
            guard let entry = lookup(source, context, &changes) else { throw .noSuchKey }
            if source == destination { return onlyIfAbsent ? .integer(0) : .ok }
            if onlyIfAbsent && lookup(destination, context, &changes) != nil { return .integer(0) }
            remove(source, &changes)
            put(destination, entry.value, expiresAt: entry.expiresAt, context, &changes)
            return onlyIfAbsent ? .integer(1) : .ok

        case .flushAll:
            entries = KeyTable()
            changes.append(.clear)
            return .ok

        case .push(let key, let values, let left, let onlyIfExists):
            guard try listLength(key, context, &changes) != nil else {
                if onlyIfExists { return .integer(0) }
                var list = PersistentList()
                if left { for value in values { list.prepend(value) } } else { for value in values { list.append(value) } }
                put(key, .list(list), expiresAt: 0, context, &changes)
                return .integer(Int64(list.count))
            }
            let count = entries.changeList(key, version: context.index) { list in
                if left { for value in values { list.prepend(value) } } else { for value in values { list.append(value) } }
                return list.count
            }
            if changes.keepsInPlaceChanges { changes.append(.listPushed(key, values, left: left, version: context.index)) } else { changes.skip() }
            return .integer(Int64(count))

        case .pop(let key, let count, let left):
            if let count, count < 0 { throw .mustBePositive }
            guard let length = try listLength(key, context, &changes) else { return count == nil ? .null : .nullArray }
            let take = Int(min(count ?? 1, Int64(length)))
            var popped: [Reply] = []
            popped.reserveCapacity(take)
            if take == length {
                // Emptied: an empty list is never stored.
                guard case .list(let list)? = entries.removeValue(forKey: key)?.value else { preconditionFailure("\(key) was a list") }
                for element in list { popped.append(.bulk(element)) }
                if !left { popped.reverse() }
                changes.append(.remove(key))
            } else if take > 0 {
                entries.changeList(key, version: context.index) { list in
                    for _ in 0..<take { popped.append(.bulk(left ? list.removeFirst() : list.removeLast())) }
                }
                changes.append(.listPopped(key, count: take, left: left, version: context.index))
            }
            if count == nil { return popped.first ?? .null }
            return .array(popped)

        case .listRemove(let key, let count, let value):
            guard let current = lookup(key, context, &changes) else { return .integer(0) }
            guard case .list(let list) = current.value else { throw .wrongType }
            var kept = Array(list)
            var removed: Int64 = 0
            let limit = count == 0 ? Int64.max : count.magnitude > UInt64(Int64.max) ? Int64.max : Int64(count.magnitude)
            if count >= 0 {
                var result: [Bytes] = []
                for item in kept { if item == value && removed < limit { removed += 1 } else { result.append(item) } }
                kept = result
            } else {
                var result: [Bytes] = []
                for item in kept.reversed() { if item == value && removed < limit { removed += 1 } else { result.append(item) } }
                kept = result.reversed()
            }
            if removed > 0 {
                if kept.isEmpty { remove(key, &changes) } else { put(key, .list(PersistentList(kept)), expiresAt: current.expiresAt, context, &changes) }
            }
            return .integer(removed)

        case .listTrim(let key, let start, let stop):
            guard let current = lookup(key, context, &changes) else { return .ok }
            guard case .list(let list) = current.value else { throw .wrongType }
            let range = ListRange.resolve(start: start, stop: stop, count: list.count)
            if range.isEmpty {
                remove(key, &changes)
            } else if range.count != list.count {
                put(key, .list(PersistentList(list.elements(in: range))), expiresAt: current.expiresAt, context, &changes)
            }
            return .ok

        case .hashSet(let key, let fields, let values):
            func set(_ hash: inout TreeDictionary<Bytes, Bytes>) -> Int64 {
                var added: Int64 = 0
                for (field, value) in zip(fields, values) where hash.updateValue(value, forKey: field) == nil { added += 1 }
                return added
            }
            guard try lookupHash(key, context, &changes).1 != nil else {
                var hash = TreeDictionary<Bytes, Bytes>()
                let added = set(&hash)
                put(key, .hash(hash), expiresAt: 0, context, &changes)
                return .integer(added)
            }
            let (added, entry) = entries.changeHash(key, version: context.index, set)
            changes.append(.put(key, entry))
            return .integer(added)

        case .hashDelete(let key, let fields):
            let (hash, current) = try lookupHash(key, context, &changes)
            guard current != nil else { return .integer(0) }
            // Decided before anything changes: a delete that removes nothing changes nothing
            // (not even the version, as no txn is logged for it).
            let present = Set(fields.filter { hash[$0] != nil })
            let emptied = present.count == hash.count
            _ = consume hash
            _ = consume current
            if emptied {
                remove(key, &changes)
            } else if !present.isEmpty {
                let entry = entries.changeHash(key, version: context.index) { hash in for field in present { hash.removeValue(forKey: field) } }.entry
                changes.append(.put(key, entry))
            }
            return .integer(Int64(present.count))

        case .hashIncrementBy(let key, let field, let delta):
            let (hash, current) = try lookupHash(key, context, &changes)
            var number: Int64 = 0
            if let bytes = hash[field] {
                guard let parsed = RedisNumbers.parseInteger(bytes) else { throw .hashValueNotInteger }
                number = parsed
            }
            _ = consume hash
            let (sum, overflow) = number.addingReportingOverflow(delta)
            if overflow { throw .overflow }
            guard current != nil else {
                put(key, .hash([field: RedisNumbers.format(sum)]), expiresAt: 0, context, &changes)
                return .integer(sum)
            }
            _ = consume current
            let entry = entries.changeHash(key, version: context.index) { $0[field] = RedisNumbers.format(sum) }.entry
            changes.append(.put(key, entry))
            return .integer(sum)

        case .compareAndDelete(let key, let token):
            guard let (bytes, _) = try lookupString(key, context, &changes), bytes == token else { return .integer(0) }
            remove(key, &changes)
            return .integer(1)

        case .expireKeys(let keys):
            var removed: Int64 = 0
            for key in keys {
                guard let entry = entries[key], entry.isExpired(at: context.time) else { continue }
                remove(key, &changes)
                removed += 1
            }
            return .integer(removed)

        case .inDatabase:
            throw .syntax  // StoreState routes these; one here is nested, which is refused
        case .createNode, .deleteNode, .setNodeData, .checkNode, .setNodeACL, .multi, .expireNodes, .createSession, .closeSession:
            preconditionFailure("tree operations are applied by ZTree")
        }
    }
}

/// Redis's list index rules: negative counts from the end, out-of-range ends are clamped.
public enum ListRange {
    public static func resolve(start: Int64, stop: Int64, count: Int) -> Range<Int> {
        let n = Int64(count)
        // From the end without overflow: any index below -n means "before the first".
        var from = start < 0 ? (start < -n ? 0 : n + start) : start
        var to = stop < 0 ? (stop < -n ? -1 : n + stop) : stop
        if from < 0 { from = 0 }
        if from > to || from >= n { return 0..<0 }
        if to >= n { to = n - 1 }
        return Int(from)..<Int(to + 1)
    }
}
