import ArgumentParser
import Cairn
import CairnBench
import CairnStorage
import Foundation
import SystemPackage

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure Cairn: throughput and latency, side by side with baselines in one run.",
        subcommands: [StoreBenchCommand.self, LogBenchCommand.self, WheelBenchCommand.self, ExpiryBenchCommand.self, SnapshotBenchCommand.self, SnapshotLoadBenchCommand.self, ZKBenchCommand.self],
        defaultSubcommand: StoreBenchCommand.self
    )
}

/// `cairn bench` (`cairn bench store`): the embedded store, each persistence mode and operation.
struct StoreBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Benchmark the embedded store: each fsync policy × operation × client count.",
        discussion: "Operations: \(StoreBenchmark.Workload.allCases.map(\.rawValue).joined(separator: ", ")) (the last three on znodes)."
    )

    @Option(help: "Comma-separated fsync policies.")
    var modes = "always,everysec,no"
    @Option(help: "Comma-separated operations.")
    var ops = "set,get,incr,lpush,create,setData,getData"
    @Option(help: "Comma-separated numbers of concurrent clients.")
    var clients = "1,64"
    @Option(help: "Value size in bytes.")
    var valueSize = 100
    @Option(help: "Seconds per measurement (the defaults finish in under a minute).")
    var seconds = 0.7
    @Option(help: "Keys written for the reopen measurement (0 to skip).")
    var reopenKeys = 1_000_000
    @Option(help: "Scratch directory (removed afterwards).")
    var dir = "/tmp/cairn-bench-store"
    @Flag(help: "Print one JSON object per line instead of a table.")
    var json = false

    func run() async throws {
        let modeList = try modes.split(separator: ",").map { name in
            guard let mode = FsyncPolicy(rawValue: String(name)) else { throw ValidationError("unknown mode '\(name)' (always, everysec, no)") }
            return mode
        }
        let opList = try ops.split(separator: ",").map { name in
            guard let op = StoreBenchmark.Workload(rawValue: String(name)) else {
                throw ValidationError("unknown op '\(name)'; available: \(StoreBenchmark.Workload.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return op
        }
        let clientList = try clients.split(separator: ",").map { text in
            guard let n = Int(text), n >= 1, n <= 4096 else { throw ValidationError("clients must be 1...4096, not '\(text)'") }
            return n
        }
        let root = FilePath(dir)
        removeTree(root)
        try PosixFileSystem().createDirectory(root)
        defer { removeTree(root) }
        let bench = StoreBenchmark(directory: root, seconds: seconds, valueSize: valueSize)
        if !json {
            print("cairn bench: \(valueSize)-byte values, 16-byte keys, \(seconds) s per row, \(dir)")
            print(pad("mode", 10) + pad("op", 8) + pad("clients", 8, right: true) + pad("ops", 11, right: true)
                  + pad("ops/s", 12, right: true) + pad("p50 us", 9, right: true) + pad("p99 us", 9, right: true)
                  + pad("p999 us", 9, right: true) + pad("log MB", 9, right: true) + pad("reopen ms", 11, right: true))
        }
        for mode in modeList {
            for op in opList {
                for clientCount in clientList {
                    let row = try await bench.run(op, mode: mode, clients: clientCount)
                    let r = row.result
                    func micro(_ v: Double?) -> String { String(format: "%.1f", v ?? 0) }
                    if json {
                        print("{\"mode\":\"\(mode.rawValue)\",\"op\":\"\(row.workload)\",\"clients\":\(clientCount),\"ops\":\(r.operations),"
                              + "\"ops_per_sec\":\(String(format: "%.1f", r.perSecond)),\"p50_us\":\(micro(r.p50Microseconds)),"
                              + "\"p99_us\":\(micro(r.p99Microseconds)),\"p999_us\":\(micro(r.p999Microseconds)),"
                              + "\"bytes_on_disk\":\(row.bytesOnDisk),\"reopen_ms\":\(String(format: "%.1f", row.reopenMilliseconds))}")
                    } else {
                        print(pad(mode.rawValue, 10) + pad(row.workload, 8) + pad("\(clientCount)", 8, right: true)
                              + pad("\(r.operations)", 11, right: true) + pad(String(format: "%.0f", r.perSecond), 12, right: true)
                              + pad(micro(r.p50Microseconds), 9, right: true) + pad(micro(r.p99Microseconds), 9, right: true)
                              + pad(micro(r.p999Microseconds), 9, right: true)
                              + pad(String(format: "%.1f", Double(row.bytesOnDisk) / 1e6), 9, right: true)
                              + pad(String(format: "%.0f", row.reopenMilliseconds), 11, right: true))
                    }
                }
            }
        }
        if reopenKeys > 0 {
            let (secondsTaken, bytes) = try bench.reopen(keys: reopenKeys)
            if json {
                print("{\"measure\":\"reopen\",\"keys\":\(reopenKeys),\"log_bytes\":\(bytes),\"seconds\":\(String(format: "%.3f", secondsTaken))}")
            } else {
                print(String(format: "\nreopen of %d keys from the log alone (%.0f MB): %.2f s", reopenKeys, Double(bytes) / 1e6, secondsTaken))
            }
        }
    }
}

/// `cairn bench log`: the transaction log against the disk's raw `pwrite + fdatasync` rate.
struct LogBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Benchmark the transaction log: each fsync policy, group commit, recovery scan, CRC32C."
    )

    @Option(help: "Scratch directory (removed afterwards).")
    var dir = "/tmp/cairn-bench"
    @Option(help: "Payload bytes per record.")
    var recordSize = 128
    @Option(help: "Seconds per measurement.")
    var seconds = 1.5
    @Option(help: "Concurrent appenders for the group-commit row.")
    var appenders = 64
    @Option(name: .customLong("recovery-mib"), help: "Size of the log written for the recovery scan, in MiB.")
    var recoveryMiB = 1024
    @Flag(help: "Print one JSON object per row instead of a table.")
    var json = false
    @Flag(help: "Only the group-commit rows (for profiling).")
    var groupOnly = false
    @Option(help: "Rounds of the side-by-side rows (raw loops, always with 1 and N appenders); medians are reported.")
    var rounds = 5

    func run() async throws {
        let bench = LogBenchmark(directory: FilePath(dir), recordSize: recordSize, duration: seconds, recoveryBytes: recoveryMiB << 20)
        try PosixFileSystem().createDirectory(FilePath(dir))
        defer { removeTree(FilePath(dir)) }
        var rows: [BenchResult] = []
        func emit(_ row: BenchResult) {
            rows.append(row)
            if json { print(jsonLine(row)) } else { print(tableLine(row)) }
        }
        if !json {
            print("cairn bench log: \(recordSize)-byte records, \(seconds) s per row, \(dir)")
            print(tableHeader)
        }
        if groupOnly {
            emit(try bench.eventLoopAppenders(.always, appenders: appenders))
            emit(try await bench.concurrentAppenders(.always, appenders: appenders))
            return
        }
        // The rows whose ratios matter run interleaved, round after round, so that a slow spell
        // of the shared machine hits them alike; each ratio is the median of the rounds' ratios.
        var rawAppending: [BenchResult] = [], rawPreallocated: [BenchResult] = []
        var single: [BenchResult] = [], group: [BenchResult] = [], loopGroup: [BenchResult] = []
        for _ in 0..<max(1, rounds) {
            rawAppending.append(try bench.rawSyncLoop(preallocated: false))
            rawPreallocated.append(try bench.rawSyncLoop(preallocated: true))
            single.append(try bench.singleAppender(.always))
            group.append(try await bench.concurrentAppenders(.always, appenders: appenders))
            loopGroup.append(try bench.eventLoopAppenders(.always, appenders: appenders))
        }
        for series in [rawAppending, rawPreallocated, single, loopGroup, group] {
            var row = median(series)
            row.name += " (median of \(series.count))"
            emit(row)
        }
        emit(try bench.threadAppenders(.always, appenders: appenders))
        for policy in [FsyncPolicy.everysec, .no] {
            emit(try bench.singleAppender(policy, timed: false))
            emit(try bench.singleAppender(policy))
        }
        emit(try await bench.concurrentAppenders(.no, appenders: appenders))
        emit(try bench.recoveryScan())
        for row in LogBenchmark.checksumThroughput() { emit(row) }

        let singleVsRaw = (0..<single.count).map {
            single[$0].perSecond / max(rawAppending[$0].perSecond, rawPreallocated[$0].perSecond)
        }
        let groupVsSingle = (0..<single.count).map { group[$0].perSecond / single[$0].perSecond }
        let loopVsSingle = (0..<single.count).map { loopGroup[$0].perSecond / single[$0].perSecond }
        let ratios = [
            ("always, 1 appender / best raw fdatasync loop", singleVsRaw, "target >= 0.80"),
            ("always, \(appenders) appenders on an event loop / 1 appender", loopVsSingle, "target >= 20"),
            ("always, \(appenders) async tasks / 1 appender", groupVsSingle, "target >= 20"),
        ]
        for (name, values, target) in ratios {
            let middle = values.sorted()[values.count / 2]
            let each = values.map { String(format: "%.2f", $0) }.joined(separator: ", ")
            if json {
                print("{\"ratio\":\"\(name)\",\"median\":\(String(format: "%.3f", middle)),\"rounds\":[\(each)],\"target\":\"\(target)\"}")
            } else {
                if name == ratios.first!.0 { print("") }
                print(pad(name, 60) + String(format: " %8.2f   median of rounds [%@]  (%@)", middle, each, target))
            }
        }
    }

    /// The result with the median rate.
    private func median(_ results: [BenchResult]) -> BenchResult {
        results.sorted { $0.perSecond < $1.perSecond }[results.count / 2]
    }

    private var tableHeader: String {
        pad("workload", 54) + pad("ops", 10, right: true) + pad("ops/s", 13, right: true)
            + pad("p50 us", 10, right: true) + pad("p99 us", 10, right: true) + pad("p999 us", 10, right: true) + "  note"
    }

    private func tableLine(_ row: BenchResult) -> String {
        func micro(_ value: Double?) -> String { value.map { String(format: "%.1f", $0) } ?? "-" }
        return pad(row.name, 54) + pad("\(row.operations)", 10, right: true)
            + pad(String(format: "%.0f", row.perSecond), 13, right: true)
            + pad(micro(row.p50Microseconds), 10, right: true) + pad(micro(row.p99Microseconds), 10, right: true)
            + pad(micro(row.p999Microseconds), 10, right: true) + "  " + row.note
    }

    private func jsonLine(_ row: BenchResult) -> String {
        func number(_ value: Double?) -> String { value.map { String(format: "%.3f", $0) } ?? "null" }
        return "{\"workload\":\"\(row.name)\",\"ops\":\(row.operations),\"seconds\":\(String(format: "%.3f", row.seconds)),"
            + "\"ops_per_sec\":\(String(format: "%.1f", row.perSecond)),\"p50_us\":\(number(row.p50Microseconds)),"
            + "\"p99_us\":\(number(row.p99Microseconds)),\"p999_us\":\(number(row.p999Microseconds)),\"note\":\"\(row.note)\"}"
    }
}

func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
    let padding = String(repeating: " ", count: max(0, width - text.count))
    return right ? padding + text : text + padding
}

/// `cairn bench wheel`: the expiry wheel's schedule/cancel cost, memory and firing lateness.
struct WheelBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wheel", abstract: "Benchmark the timing wheel: schedule + cancel, memory per timer, lateness.")

    @Option(help: "Timers scheduled and cancelled.")
    var timers = 10_000_000
    @Option(help: "Timers pending for the lateness measurement.")
    var pending = 1_000_000
    @Option(help: "Seconds the pending timers are spread over.")
    var seconds = 5.0

    func run() throws {
        let cost = WheelBenchmark.cost(timers: timers)
        print(String(format: "schedule: %.1f ns/timer, cancel: %.1f ns/timer, schedule+cancel: %.1f ns per operation (%d timers)",
                     cost.scheduleNanoseconds, cost.cancelNanoseconds, (cost.scheduleNanoseconds + cost.cancelNanoseconds) / 2, cost.timers))
        print(String(format: "memory per pending timer: %d bytes in the slab, %.1f bytes resident (with growth slack)",
                     cost.bytesPerTimerSlab, cost.bytesPerTimerResident))
        let lateness = WheelBenchmark.lateness(timers: pending, seconds: seconds)
        print(String(format: "lateness of %d firings at a 1 ms tick: p50 %.2f ms, p99 %.2f ms, p999 %.2f ms, max %.2f ms",
                     lateness.totalCount, Double(lateness.valueAtPercentile(50)) / 1e6, Double(lateness.valueAtPercentile(99)) / 1e6,
                     Double(lateness.valueAtPercentile(99.9)) / 1e6, Double(lateness.max) / 1e6))
    }
}

/// `cairn bench expiry`: a million keys due at once while a writer runs.
struct ExpiryBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "expiry", abstract: "Expire many keys due at the same moment while a writer runs; report write latency.")

    @Option(help: "Keys that fall due together.")
    var keys = 1_000_000
    @Option(help: "Comma-separated fsync policies.")
    var modes = "everysec,always"
    @Option(help: "Log segment size in MiB.")
    var segmentMib = 64
    @Option(help: "Seconds the writer runs before the keys fall due (the baseline).")
    var warmup = 1.0
    @Option(help: "Timers expired per txn (the store's expirySlice).")
    var slice = StoreOptions().expirySlice
    @Option(help: "Scratch directory (removed afterwards).")
    var dir = FileManager.default.temporaryDirectory.path

    func run() throws {
        let benchmark = ExpiryBenchmark(directory: FilePath(dir), segmentSize: segmentMib << 20, slice: slice)
        for name in modes.split(separator: ",") {
            guard let mode = FsyncPolicy(rawValue: String(name)) else { throw ValidationError("unknown mode \(name)") }
            for line in try benchmark.run(keys: keys, mode: mode, warmup: warmup).summary { print(line) }
        }
    }
}

/// `cairn bench snapshot-load FILE` (hidden): loads one snapshot file in this fresh process and
/// prints the seconds the load took, for `cairn bench snapshot`'s as-at-a-restart figure.
struct SnapshotLoadBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot-load",
        abstract: "Load one snapshot file and print the seconds it took (used by bench snapshot).",
        shouldDisplay: false)

    @Argument(help: "A snapshot-<index>.lz4 file.")
    var file: String

    func run() throws {
        let start = monotonicNanoseconds()
        let (state, _) = try SnapshotFile.read(FilePath(file), fileSystem: PosixFileSystem())
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        print("\(state.keyCount) keys, \(state.tree.count) znodes loaded in seconds: \(seconds)")
        // The state is not freed: exiting is the restart's equivalent.
        fflush(nil)
        Foundation.exit(0)
    }
}

/// `cairn bench snapshot`: snapshot write and load against the `lz4` tool, reopen, writes during.
struct SnapshotBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Snapshot a large state side by side with lz4 -1 / lz4 -d; reopen time; writes during a snapshot.")

    @Option(help: "Keys in the state (100-byte values).")
    var keys = 1_000_000
    @Option(help: "Znodes in the state.")
    var znodes = 100_000
    @Option(help: "Txns of log after the snapshot for the reopen measurement.")
    var logTxns = 100_000
    @Option(help: "Rounds of the write comparison (medians are reported).")
    var rounds = 3
    @Option(help: "Rounds of the load comparison (medians are reported; a load is quicker than a write).")
    var loadRounds = 5
    @Option(help: "Scratch directory (removed afterwards).")
    var dir = FileManager.default.temporaryDirectory.path

    func run() throws {
        var benchmark = SnapshotBenchmark(directory: FilePath(dir), keys: keys, znodes: znodes, logTxns: logTxns)
        if let executable = Bundle.main.executablePath { benchmark.freshLoader = [executable, "bench", "snapshot-load"] }
        print("allocator: \(Allocator.name)")
        for line in try benchmark.run(rounds: rounds, loadRounds: loadRounds).lines { print(line) }
    }
}
