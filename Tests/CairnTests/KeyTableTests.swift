@testable import Cairn
import CairnTesting
import Testing

/// The keyspace's hash trie against a plain `Dictionary`, with copies taken along the way
/// (each must keep what it saw), colliding hashes forced, and the bulk builder.
@Suite struct KeyTableTests {
    /// How a test places keys: the real hash, or a weak one that piles keys into few slots,
    /// chains of one-child nodes and collision nodes.
    enum Hashing: CaseIterable {
        case real, fewBits, constant

        func hash(_ key: Bytes) -> UInt64 {
            switch self {
            case .real: return KeyTable.hash(key)
            // Digits agree for the first levels, then differ: long chains.
            case .fewBits: return (KeyTable.hash(key) & 0b11) << 40
            case .constant: return 0x5eed
            }
        }
    }

    static func entry(_ n: UInt64) -> Entry { Entry(value: .string(Bytes("v\(n)")), version: n) }

    @Test(arguments: Hashing.allCases)
    func randomOperationsMatchADictionaryAndCopiesKeepTheirState(hashing: Hashing) {
        var rng = SplitMix64(seed: 0xCA1)
        var table = KeyTable()
        var model: [Bytes: Entry] = [:]
        var copies: [(KeyTable, [Bytes: Entry])] = []
        let keySpace = hashing == .constant ? 40 : 3000
        for step in 0..<20_000 {
            let key = Bytes("k\(rng.next() % UInt64(keySpace))")
            let hash = hashing.hash(key)
            switch rng.next() % 10 {
            case 0...4:
                let value = Self.entry(UInt64(step))
                #expect(table.updateValue(value, forKey: key, hash: hash) == model.updateValue(value, forKey: key))
            case 5...7:
                #expect(table.removeValue(forKey: key, hash: hash) == model.removeValue(forKey: key))
            default:
                // In place, inserting a default when absent.
                let result = KeyTable.modify(&table.root, key: key, hash: hash, default: { Self.entry(0) }) { entry, inserted -> Bool in
                    entry.version += 1
                    return inserted
                }
                if result { table.storedCount += 1 }
                #expect(result == (model[key] == nil))
                model[key, default: Self.entry(0)].version += 1
            }
            #expect(table.find(key, hash: hash) == model[key])
            if step % 2000 == 0 {
                table.checkInvariants()
                copies.append((table, model))
            }
        }
        table.checkInvariants()
        #expect(table.count == model.count)
        var seen: [Bytes: Entry] = [:]
        for (key, entry) in table { #expect(seen.updateValue(entry, forKey: key) == nil, "visited twice: \(key)") }
        #expect(seen == model)
        for (copy, expected) in copies {
            copy.checkInvariants()
            #expect(copy.count == expected.count)
            #expect(Dictionary(uniqueKeysWithValues: copy.map { ($0.key, $0.value) }) == expected)
        }
        // Emptied key by key, the trie folds back to an empty root.
        for key in model.keys { table.removeValue(forKey: key, hash: hashing.hash(key)) }
        table.checkInvariants()
        #expect(table.isEmpty && table.root.itemCount == 0 && table.root.childCount == 0)
    }

    @Test func publicOperationsUseTheRealHash() {
        var table = KeyTable()
        table["a"] = Self.entry(1)
        table["b"] = Self.entry(2)
        let copy = table
        #expect(table.removeValue(forKey: "a") == Self.entry(1))
        #expect(table.removeValue(forKey: "a") == nil)
        table["b"] = nil
        #expect(table.isEmpty && copy.count == 2 && copy["a"] == Self.entry(1))
        let added = table.updateValue(forKey: "c", default: Self.entry(7)) { entry -> UInt64 in
            entry.version += 1
            return entry.version
        }
        #expect(added == 8 && table["c"]?.version == 8 && table.count == 1)
        #expect(table != copy && copy == copy && KeyTable() == KeyTable())
    }

    /// A lookup by the key's bytes in place (a GET's) finds what a lookup by `Bytes` does: every
    /// present key, and nothing for absent ones, prefixes, extensions or the empty key.
    @Test func lookupsByBytesMatchLookupsByKey() {
        var table = KeyTable()
        for n in 0..<3000 where n % 3 != 0 { table[Bytes("k\(n)")] = Self.entry(UInt64(n)) }
        table[Bytes([0, 0xFF])] = Self.entry(9)
        var probes = (0..<3100).map { Bytes("k\($0)") }
        probes += [Bytes([]), Bytes("k"), Bytes("k10000"), Bytes([0]), Bytes([0, 0xFF]), Bytes([0, 0xFF, 0])]
        var found = 0
        for key in probes {
            let byBytes = key.storage.withUnsafeBytes { table[bytes: $0] }
            #expect(byBytes == table[key], "key \(key)")
            if byBytes != nil { found += 1 }
        }
        #expect(found == table.count)
        #expect(KeyTable()[bytes: UnsafeRawBufferPointer(start: nil, count: 0)] == nil)
    }

    /// Every key's item is in the table's nodes, a million of them in a large store: a list
    /// is one reference, so a string key does not pay for a list's fields.
    @Test func itemsStaySmall() {
        print("layout: PersistentList \(MemoryLayout<PersistentList>.size), Value \(MemoryLayout<Value>.size), Entry \(MemoryLayout<Entry>.size), item \(MemoryLayout<KeyTableItem>.stride)")
        #expect(MemoryLayout<PersistentList>.size == 8)
        #expect(MemoryLayout<Entry>.size <= 40 && MemoryLayout<KeyTableItem>.stride <= 56)
    }

    @Test(arguments: Hashing.allCases)
    func builtTablesEqualInsertedOnes(hashing: Hashing) throws {
        for (size, threads) in [(0, 1), (1, 1), (2, 2), (33, 1), (33, 3), (5000, 1), (5000, 2), (5000, 32)] {
            let builder = KeyTableBuilder(capacity: 1)
            var inserted = KeyTable()
            for i in 0..<size {
                let key = Bytes("key:\(i)")
                builder.append(key, Self.entry(UInt64(i)), origin: i, hash: hashing.hash(key))
                inserted.updateValue(Self.entry(UInt64(i)), forKey: key, hash: hashing.hash(key))
                if hashing == .constant && i == 60 { break }
            }
            let built = try builder.build(threads: threads)
            built.checkInvariants()
            #expect(built.count == inserted.count)
            var visited = 0
            built.forEachItem { item in
                #expect(inserted.find(item.pointee.key, hash: item.pointee.hash) == item.pointee.entry)
                visited += 1
            }
            #expect(visited == inserted.count)
            for (key, entry) in inserted { #expect(built.find(key, hash: hashing.hash(key)) == entry) }
            // Left empty, and usable again.
            #expect(builder.count == 0)
            builder.append("again", Self.entry(1), origin: 0, hash: hashing.hash("again"))
            let again = try builder.build()
            again.checkInvariants()
            #expect(again.count == 1 && again.find("again", hash: hashing.hash("again")) == Self.entry(1))
        }
    }

    @Test(arguments: Hashing.allCases)
    func aKeyBuiltTwiceIsReportedWithBothOrigins(hashing: Hashing) {
        let builder = KeyTableBuilder()
        for i in 0..<300 { builder.append(Bytes("key:\(i)"), Self.entry(1), origin: i * 10, hash: hashing.hash(Bytes("key:\(i)"))) }
        builder.append("key:123", Self.entry(2), origin: 5000, hash: hashing.hash("key:123"))
        #expect {
            try builder.build()
        } throws: { error in
            guard let duplicate = error as? KeyTableBuilder.DuplicateKey else { return false }
            return duplicate.key == "key:123" && duplicate.firstOrigin == 1230 && duplicate.secondOrigin == 5000
        }
        #expect(builder.count == 0, "the builder lets go of every item, moved or not")
    }

    /// Built on several threads, a table with keys appended twice in several buckets reports
    /// the one a build on one thread reports (the first bucket in digit order).
    @Test(arguments: Hashing.allCases)
    func severalThreadsReportTheDuplicateOneThreadDoes(hashing: Hashing) {
        func duplicate(threads: Int) -> KeyTableBuilder.DuplicateKey? {
            let builder = KeyTableBuilder()
            for i in 0..<300 { builder.append(Bytes("key:\(i)"), Self.entry(1), origin: i, hash: hashing.hash(Bytes("key:\(i)"))) }
            for i in [299, 17, 150, 64] { builder.append(Bytes("key:\(i)"), Self.entry(2), origin: 10_000 + i, hash: hashing.hash(Bytes("key:\(i)"))) }
            do {
                _ = try builder.build(threads: threads)
                return nil
            } catch {
                #expect(builder.count == 0)
                return error
            }
        }
        let one = duplicate(threads: 1)
        #expect(one != nil)
        for threads in [2, 3, 8] {
            let found = duplicate(threads: threads)
            #expect(found?.key == one?.key && found?.firstOrigin == one?.firstOrigin && found?.secondOrigin == one?.secondOrigin)
        }
    }
}

/// The keyspace's SipHash against the reference implementation's published SipHash-2-4
/// vectors (key 00..0f, messages 00, 00 01, ...), then the 1-3 variant the tables use.
@Suite struct KeyHashTests {
    static let referenceKey: (UInt64, UInt64) = (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908)

    func siphash24(_ length: Int) -> UInt64 {
        let message = (0..<length).map { UInt8($0) }
        return message.withUnsafeBytes { KeyHash.siphash($0, key: Self.referenceKey, compressionRounds: 2, finalizationRounds: 4) }
    }

    @Test func matchesTheReferenceVectors() {
        #expect(siphash24(0) == 0x726f_db47_dd0e_0e31)
        #expect(siphash24(1) == 0x74f8_39c5_93dc_67fd)
        #expect(siphash24(15) == 0xa129_ca61_49be_45e5, "the SipHash paper's own example")
    }

    @Test func theTablesHashSpreadsAndDependsOnEveryByte() {
        // Stable within the process; every byte and the length matter; digits spread evenly.
        #expect(KeyHash.hash("user:1") == KeyHash.hash("user:1"))
        #expect(KeyHash.hash("user:1") != KeyHash.hash("user:2") && KeyHash.hash("") != KeyHash.hash(Bytes([0])))
        #expect(KeyHash.hash(Bytes([0])) != KeyHash.hash(Bytes([0, 0])))
        var buckets = [Int](repeating: 0, count: 32)
        for i in 0..<32_000 { buckets[Int(KeyHash.hash(Bytes("key:\(i)")) & 31)] += 1 }
        #expect(buckets.allSatisfy { $0 > 800 && $0 < 1200 }, "\(buckets)")
    }
}

/// Hints of lookup paths (``KeyTable/prefetchPaths(_:)``, what a group commit's replay and a
/// pipeline's keys use): they follow each key's path to its item and change nothing.
@Suite struct KeyTablePrefetchTests {
    @Test(arguments: KeyTableTests.Hashing.allCases)
    func hintsFollowEachPathToItsItemAndChangeNothing(hashing: KeyTableTests.Hashing) {
        var table = KeyTable()
        let keys = (0..<5000).map { Bytes("key:\($0)") }
        for (i, key) in keys.enumerated() { table.updateValue(KeyTableTests.entry(UInt64(i)), forKey: key, hash: hashing.hash(key)) }
        let before = table
        var reached = 0
        for start in stride(from: 0, to: keys.count, by: KeyTable.maxPrefetchedPaths) {
            let hashes = keys[start..<min(start + KeyTable.maxPrefetchedPaths, keys.count)].map { hashing.hash($0) }
            reached += hashes.withUnsafeBufferPointer { table.prefetchPaths($0) }
        }
        switch hashing {
        case .real: #expect(reached == keys.count, "every present key's path ends at its item")
        // Four hashes, or one: every path runs down to a collision node, whose list is not followed.
        case .fewBits, .constant: #expect(reached == 0)
        }
        // Keys that are absent, more hashes than one call takes, none at all.
        let absent = (0..<100).map { hashing.hash(Bytes("absent:\($0)")) }
        #expect(absent.withUnsafeBufferPointer { table.prefetchPaths($0) } <= KeyTable.maxPrefetchedPaths)
        #expect([UInt64]().withUnsafeBufferPointer { table.prefetchPaths($0) } == 0)
        #expect([KeyTable.hash("k")].withUnsafeBufferPointer { KeyTable().prefetchPaths($0) } == 0, "an empty table")
        table.checkInvariants()
        #expect(table == before)
        for (i, key) in keys.enumerated() { #expect(table.find(key, hash: hashing.hash(key)) == KeyTableTests.entry(UInt64(i))) }
    }

    @Test func hintsRetainNothing() {
        var table = KeyTable()
        for i in 0..<2000 { table[Bytes("k\(i)")] = KeyTableTests.entry(UInt64(i)) }
        let hashes = (0..<32).map { KeyTable.hash(Bytes("k\($0 * 7)")) }
        _ = hashes.withUnsafeBufferPointer { table.prefetchPaths($0) }
        // Still referenced once: a write after the hints changes the root in place.
        #expect(isKnownUniquelyReferenced(&table.root))
    }
}
