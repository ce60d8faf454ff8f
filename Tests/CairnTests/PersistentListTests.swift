import Cairn
import CairnStorage
import CairnTesting
import Testing

/// `PersistentList` against an array: pushes and pops at both ends across chunk borders (64
/// positions each, negative ones too), reads by index and range, iteration, and copies that
/// stay independent.
@Suite struct PersistentListTests {
    @Test(arguments: UInt64(1)...20)
    func behavesLikeAnArray(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var list = PersistentList()
        var model: [Bytes] = []
        var copies: [(PersistentList, [Bytes])] = []
        var counter = 0
        for step in 0..<3000 {
            // Phases that mostly grow, then mostly shrink, so the list crosses many chunk borders.
            let growing = (step / 500) % 2 == 0
            let roll = Int.random(in: 0..<100, using: &rng)
            let element = Bytes("e\(counter)")
            counter += 1
            switch roll {
            case 0..<(growing ? 35 : 20):
                list.append(element); model.append(element)
            case (growing ? 35 : 20)..<(growing ? 70 : 40):
                list.prepend(element); model.insert(element, at: 0)
            case (growing ? 70 : 40)..<(growing ? 80 : 70):
                if !model.isEmpty { #expect(list.removeFirst() == model.removeFirst()) }
            case (growing ? 80 : 70)..<(growing ? 90 : 97):
                if !model.isEmpty { #expect(list.removeLast() == model.removeLast()) }
            default:
                copies.append((list, model))  // checked at the end: later changes must not reach it
            }
            #expect(list.count == model.count)
            if !model.isEmpty {
                let index = Int.random(in: 0..<model.count, using: &rng)
                #expect(list[index] == model[index], "seed \(seed) step \(step): element \(index)")
                let from = Int.random(in: 0...model.count, using: &rng)
                let to = Int.random(in: from...model.count, using: &rng)
                #expect(list.elements(in: from..<to) == Array(model[from..<to]), "seed \(seed) step \(step): \(from)..<\(to)")
            }
            if step % 100 == 0 { #expect(Array(list) == model, "seed \(seed) step \(step): iteration") }
        }
        #expect(Array(list) == model)
        for (copy, expected) in copies { #expect(Array(copy) == expected && copy.count == expected.count) }
        #expect(PersistentList(model) == list)
        if !model.isEmpty {
            var different = list
            _ = different.removeLast()
            #expect(different != list)
        }
    }

    @Test func emptiedListsTakeNewElementsAtEitherEnd() {
        var list = PersistentList((0..<130).map { Bytes("\($0)") })
        for _ in 0..<130 { _ = list.removeFirst() }
        #expect(list.isEmpty && Array(list) == [])
        list.prepend("a")
        list.append("b")
        #expect(Array(list) == ["a", "b"] && list[0] == "a" && list[1] == "b")
        for _ in 0..<2 { _ = list.removeLast() }
        for i in 0..<200 { list.prepend(Bytes("\(i)")) }
        #expect(list.count == 200 && list[0] == "199" && list[199] == "0")
        #expect(list.elements(in: 63..<66) == ["136", "135", "134"])
    }
}

/// Long lists through the store: under `always` the head and committed states each replay the
/// pushes and pops on their own copy of a list whose chunks they first shared; a snapshot and
/// the log must give back the same list.
@Suite struct LongListStoreTests {
    @Test(arguments: [FsyncPolicy.always, .no])
    func pushesAndPopsAcrossChunksSurviveReplayAndSnapshot(policy: FsyncPolicy) throws {
        var (store, disk, clock) = try makeStore(policy)
        var rng = SplitMix64(seed: 5)
        var model: [Bytes] = []
        for round in 0..<400 {
            let values = (0..<Int.random(in: 1...5, using: &rng)).map { Bytes("r\(round)-\($0)") }
            switch Int.random(in: 0..<6, using: &rng) {
            case 0, 1:
                _ = try store.push("q", values, left: true, onlyIfExists: false)
                model.insert(contentsOf: values.reversed(), at: 0)
            case 2, 3:
                _ = try store.push("q", values, left: false, onlyIfExists: false)
                model.append(contentsOf: values)
            case 4:
                let popped = try store.lpop("q", count: 3) ?? []
                #expect(popped == Array(model.prefix(3)))
                model.removeFirst(min(3, model.count))
            default:
                let popped = try store.rpop("q", count: 2) ?? []
                #expect(popped == Array(model.suffix(2).reversed()))
                model.removeLast(min(2, model.count))
            }
            if round == 200 { try store.snapshot() }
        }
        #expect(model.count > 200, "long enough to span several chunks")
        #expect(try store.lrange("q", 0, -1) == model)
        #expect(try store.lindex("q", 130) == model[130])
        try store.close()
        store = try reopen(disk, clock: clock, policy: policy)
        #expect(try store.lrange("q", 0, -1) == model, "snapshot at round 200 plus the log after it")
        try store.snapshot()
        try store.close()
        store = try reopen(disk, clock: clock, policy: policy)
        #expect(try store.lrange("q", 0, -1) == model, "from the snapshot alone")
        try store.close()
    }
}
