#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Cairn
import CairnStorage
import CairnTesting
import Foundation
import SystemPackage

/// `cairn drill`: kill -9 a writer at random moments and prove what survives.
struct DrillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill",
        abstract: "Crash drill: kill -9 a child writer at random moments, reopen, and check what survived.",
        discussion: """
            The child works through a seeded mix of key-value and znode writes under --mode and reports \
            each acknowledged one. After each kill the directory is reopened and checked: the state \
            must equal the state after some prefix of the issued writes, and under 'always' contain \
            every acknowledged one. A kill -9 leaves the OS page cache intact, so 'no' and 'everysec' \
            lose nothing here either; a power cut is what separates them (the crash tests simulate it). \
            One kill in five lands at a random moment from the child's start, often while it is still \
            recovering the directory; the others a random moment after it reports itself open, so that \
            they land among its writes however long recovery takes.
            """
    )

    @Option(help: "fsync policy of the writer: always, everysec or no.")
    var mode: FsyncPolicy = .always
    @Option(help: "How many times to kill the writer.")
    var kills = 20
    @Option(help: "Seed of the writes and of the kill moments (default: random, printed).")
    var seed: UInt64?
    @Option(help: "Data directory (default: a new one under /tmp, removed afterwards).")
    var dir: String?
    @Option(help: "Longest wait before a kill, in milliseconds (from the child's start, or from when it is open).")
    var maxWaitMs = 400
    @Option(help: "The writer snapshots (and compacts its log) every this many txns, so kills land in snapshots, manifest switches and compactions too (0: the store's default, a million).")
    var snapshotEvery: UInt64 = 0
    @Option(help: "String keys the writes pick from (thousands make snapshots big enough for the loader's parallel paths).")
    var keys = 64
    @Option(help: "Znodes the writes pick from under each of the four top znodes.")
    var znodes = 8
    @Flag(help: "Print the summary as one JSON object.")
    var json = false

    func validate() throws {
        guard keys >= 2 else { throw ValidationError("--keys must be at least 2") }
        guard znodes >= 1 else { throw ValidationError("--znodes must be at least 1") }
        guard kills >= 1 else { throw ValidationError("--kills must be at least 1") }
    }

    func run() throws {
        let seed = self.seed ?? UInt64.random(in: 1...UInt64(Int64.max))
        var rng = SplitMix64(seed: seed)
        let directory = dir ?? "/tmp/cairn-drill-\(getpid())"
        defer { if dir == nil { try? FileManager.default.removeItem(atPath: directory) } }
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var model = DrillModel(workload: DrillWorkload(seed: seed, keys: keys, znodesPerParent: znodes))
        var nextOperation = 0
        var totalAcked = 0
        var lostAcked = 0
        var prefixOK = true
        var maxLossWindow: Int64 = 0
        var recoveredTxns = 0
        var killsDuringOpen = 0
        var newestSnapshot: UInt64 = 0  // the index of the newest snapshot a reopen found
        var finalKeys = 0, finalZnodes = 0  // the size of the state the last reopen recovered
        var snapshotKeys = 0, snapshotZnodes = 0  // ... and of the snapshot it started from
        if !json {
            print("cairn drill: mode \(mode.rawValue), \(kills) kills, seed \(seed), \(directory)"
                  + (snapshotEvery > 0 ? ", a snapshot every \(snapshotEvery) txns" : ""))
        }

        for kill in 0..<kills {
            let child = Process()
            child.executableURL = executable
            child.arguments = ["drill-child", "--dir", directory, "--mode", mode.rawValue, "--seed", "\(seed)", "--start", "\(nextOperation)",
                               "--snapshot-every", "\(snapshotEvery)", "--keys", "\(keys)", "--znodes", "\(znodes)"]
            let pipe = Pipe()
            child.standardOutput = pipe
            child.standardError = FileHandle.nullDevice
            try child.run()
            let collector = OutputCollector(pipe.fileHandleForReading)
            let duringRecovery = Int.random(in: 0..<5, using: &rng) == 0
            let wait = UInt32(Int.random(in: 1...max(1, maxWaitMs), using: &rng))
            // Bounded: a child that never reports itself open (it failed) is killed after 60 s.
            if !duringRecovery { _ = collector.waitForLine("ready", seconds: 60) }
            usleep(wait * 1000)
            Glibc.kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
            let output = collector.finish()
            let wasOpen = output.split(separator: "\n").contains("ready")
            if !wasOpen { killsDuringOpen += 1 }

            // Acknowledged operations, in order, with the time each was acknowledged.
            var acks: [(number: Int, ms: Int64)] = []
            for line in output.split(separator: "\n") {
                let fields = line.split(separator: " ")
                if fields.count == 3, fields[0] == "ack", let n = Int(fields[1]), let ms = Int64(fields[2]) { acks.append((n, ms)) }
            }
            totalAcked += acks.count

            let store = try Store.open(directory: FilePath(directory), options: drillOptions(mode, snapshotEvery: snapshotEvery))
            let recovered = Int(store.log.lastIndex)
            newestSnapshot = store.snapshotStatus.manifest?.snapshots.first ?? newestSnapshot
            let state = store.stateView()
            try store.close()
            (finalKeys, finalZnodes) = (state.keyCount, state.tree.count)
            if kill == kills - 1, let newest = store.snapshotStatus.manifest?.snapshots.first {
                let path = FilePath(directory).appending(SnapshotFormat.fileName(index: newest))
                let (_, stats) = try SnapshotFile.read(path, fileSystem: PosixFileSystem())
                (snapshotKeys, snapshotZnodes) = (stats.header.keys, stats.header.nodes)
            }
            recoveredTxns = recovered
            let highestAck = acks.last?.number ?? (nextOperation - 1)
            model.advance(through: max(highestAck + 1, nextOperation) + 1)
            while model.loggedCount < recovered { model.advance(through: model.loggedBefore.count + 64) }
            let statePrefixOK = model.matches(state, afterLogged: recovered)
            model.forget(before: recovered)  // durable now: no later reopen recovers less
            prefixOK = prefixOK && statePrefixOK
            // Acknowledged txns the recovered log does not hold.
            let ackedTxns = model.loggedBefore[highestAck + 1]
            let lost = max(0, ackedTxns - recovered)
            lostAcked += lost
            if lost > 0, let lastAck = acks.last {
                let firstLost = acks.first { model.loggedBefore[$0.number + 1] > recovered }
                maxLossWindow = max(maxLossWindow, lastAck.ms - (firstLost?.ms ?? lastAck.ms))
            }
            nextOperation = model.firstOperation(afterLogged: recovered)
            if !json {
                print("kill \(kill + 1)\(wasOpen ? "" : " (while opening)"): \(acks.count) writes acknowledged, \(recovered) txns recovered, "
                      + "prefix \(statePrefixOK ? "ok" : "WRONG"), acknowledged lost \(lost)")
            }
        }
        let verdict = prefixOK && (mode != .always || lostAcked == 0)
        if json {
            print("{\"mode\":\"\(mode.rawValue)\",\"kills\":\(kills),\"seed\":\(seed),\"acked\":\(totalAcked),"
                  + "\"lost_acked\":\(lostAcked),\"prefix_ok\":\(prefixOK),\"max_loss_window_ms\":\(maxLossWindow),"
                  + "\"recovered_txns\":\(recoveredTxns),\"kills_while_opening\":\(killsDuringOpen),"
                  + "\"newest_snapshot\":\(newestSnapshot),\"keys\":\(finalKeys),\"znodes\":\(finalZnodes),"
                  + "\"snapshot_keys\":\(snapshotKeys),\"snapshot_znodes\":\(snapshotZnodes),\"passed\":\(verdict)}")
        } else {
            print("\(verdict ? "PASSED" : "FAILED"): \(totalAcked) acknowledged writes over \(kills) kills "
                  + "(\(killsDuringOpen) while the writer was opening the store), "
                  + "\(lostAcked) acknowledged lost, prefix \(prefixOK ? "ok" : "WRONG"), longest loss window \(maxLossWindow) ms"
                  + (newestSnapshot > 0 ? ", recovered from a snapshot as late as index \(newestSnapshot)" : "")
                  + "; the last reopen held \(finalKeys) keys and \(finalZnodes) znodes")
        }
        if !verdict { throw ExitCode(1) }
    }
}

/// The drill's child: opens the store, prints `ready`, runs the seeded writes from `--start` on
/// and prints `ack NUMBER MS` as each one is acknowledged, until killed.
struct DrillChildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "drill-child", shouldDisplay: false)

    @Option var dir: String
    @Option var mode: FsyncPolicy
    @Option var seed: UInt64
    @Option var start: Int
    @Option var count = 10_000_000
    @Option var snapshotEvery: UInt64 = 0
    @Option var keys = 64
    @Option var znodes = 8

    func run() throws {
        let store = try Store.open(directory: FilePath(dir), options: drillOptions(mode, snapshotEvery: snapshotEvery))
        writeLine(1, "ready")  // the parent times most kills from here
        let workload = DrillWorkload(seed: seed, keys: keys, znodesPerParent: znodes)
        let clock = SystemClock()
        for number in start..<(start + count) {
            _ = try store.execute([workload.operation(number)])
            writeLine(1, "ack \(number) \(clock.nowMilliseconds())")
        }
        try store.close()
    }
}

/// The store's options in a drill: `snapshotEvery` txns between snapshots (0: the default).
func drillOptions(_ mode: FsyncPolicy, snapshotEvery: UInt64) -> StoreOptions {
    var options = StoreOptions(fsyncPolicy: mode)
    if snapshotEvery > 0 { options.snapshotEveryTxns = snapshotEvery }
    return options
}
