import Cairn
import Testing

/// What a txn's change record keeps under each recording (see ``KeyspaceChanges``): all of it
/// for a state that replays it, only what moves timers when applied to the committed state in
/// place, nothing for replay; every change is counted either way.
@Suite struct KeyspaceChangesTests {
    let plainSet = Operation.set("k", "v", condition: .always, expiry: .clear, returnOld: false)
    let timedSet = Operation.set("k", "v", condition: .always, expiry: .at(5_000), returnOld: false)

    /// Applies `operations` as one txn on a state holding a list "l" and a string "s".
    func record(_ recording: KeyspaceChanges.Recording, _ operations: [Operation]) -> StoreState.Changes {
        var state = StoreState()
        var scratch = StoreState.Changes()
        _ = state.apply(Txn(time: 1_000, operations: [.push("l", ["a"], left: true, onlyIfExists: false), .set("s", "x", condition: .always, expiry: .clear, returnOld: false)]), index: 1, changes: &scratch)
        var changes = StoreState.Changes(recording: recording)
        _ = state.apply(Txn(time: 1_000, operations: operations), index: 2, changes: &changes)
        return changes
    }

    @Test func everythingIsKeptForReplay() {
        let changes = record(.all, [plainSet, .push("l", ["b"], left: true, onlyIfExists: false), .append("s", "y"), .incrementBy("n", 1)])
        #expect(changes.keyspace.made == 4 && changes.keyspace.recorded.count == 4)
    }

    @Test func withoutKeyTimersOnlyDeadlinesAreKept() {
        let untimed = record(.timers(anyKeyTimer: false), [plainSet, .push("l", ["b"], left: true, onlyIfExists: false), .append("s", "y"), .incrementBy("n", 1), .delete(["s"])])
        #expect(untimed.keyspace.made == 5 && untimed.keyspace.recorded.isEmpty && !untimed.isEmpty)
        let timed = record(.timers(anyKeyTimer: false), [timedSet])
        #expect(timed.keyspace.recorded.count == 1)
    }

    /// A put with a deadline starts a timer, so a later change of the same txn to that key (a
    /// plain SET cancels the timer) must be kept too.
    @Test func aTimerStartedInTheTxnKeepsTheChangesAfterIt() {
        let changes = record(.timers(anyKeyTimer: false), [plainSet, timedSet, plainSet, .push("l", ["b"], left: true, onlyIfExists: false)])
        #expect(changes.keyspace.made == 4)
        #expect(changes.keyspace.recorded.count == 2, "the timed put and the plain put after it; not the list push")
        #expect(changes.recording == .timers(anyKeyTimer: true))
        let elsewhere = record(.timers(anyKeyTimer: false), [.inDatabase(3, timedSet), .inDatabase(3, plainSet)])
        #expect(elsewhere.otherDatabasesMade == 2 && elsewhere.otherDatabases.count == 2)
    }

    @Test func withKeyTimersEveryChangeThatMayMoveOneIsKept() {
        let changes = record(.timers(anyKeyTimer: true), [plainSet, .delete(["s"]), .push("l", ["b"], left: true, onlyIfExists: false)])
        #expect(changes.keyspace.made == 3 && changes.keyspace.recorded.count == 2)
    }

    @Test func replayKeepsNothingButCounts() {
        let changes = record(.none, [timedSet, plainSet, .incrementBy("n", 2)])
        #expect(changes.keyspace.made == 3 && changes.keyspace.recorded.isEmpty)
        let nothing = record(.none, [.delete(["missing"])])
        #expect(nothing.isEmpty, "a txn that changed nothing is not logged")
    }
}
