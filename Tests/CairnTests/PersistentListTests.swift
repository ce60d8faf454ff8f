import Cairn
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
