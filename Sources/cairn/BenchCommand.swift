import ArgumentParser
import CairnBench
import CairnStorage
import Foundation
import SystemPackage

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure Cairn: throughput and latency, side by side with baselines in one run.",
        subcommands: [LogBenchCommand.self],
        defaultSubcommand: LogBenchCommand.self
    )
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
            emit(try await bench.concurrentAppenders(.always, appenders: appenders))
            return
        }
        // The rows whose ratios matter run interleaved, round after round, so that a slow spell
        // of the shared machine hits them alike; each ratio is the median of the rounds' ratios.
        var rawAppending: [BenchResult] = [], rawPreallocated: [BenchResult] = []
        var single: [BenchResult] = [], group: [BenchResult] = []
        for _ in 0..<max(1, rounds) {
            rawAppending.append(try bench.rawSyncLoop(preallocated: false))
            rawPreallocated.append(try bench.rawSyncLoop(preallocated: true))
            single.append(try bench.singleAppender(.always))
            group.append(try await bench.concurrentAppenders(.always, appenders: appenders))
        }
        for series in [rawAppending, rawPreallocated, single, group] {
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
        let ratios = [
            ("always, 1 appender / best raw fdatasync loop", singleVsRaw, "target >= 0.80"),
            ("always, \(appenders) appenders / always, 1 appender", groupVsSingle, "target >= 20"),
        ]
        for (name, values, target) in ratios {
            let middle = values.sorted()[values.count / 2]
            let each = values.map { String(format: "%.2f", $0) }.joined(separator: ", ")
            if json {
                print("{\"ratio\":\"\(name)\",\"median\":\(String(format: "%.3f", middle)),\"rounds\":[\(each)],\"target\":\"\(target)\"}")
            } else {
                if name == ratios.first!.0 { print("") }
                print(String(format: "%-56@ %8.2f   median of rounds [%@]  (%@)", name, middle, each, target))
            }
        }
    }

    /// The result with the median rate.
    private func median(_ results: [BenchResult]) -> BenchResult {
        results.sorted { $0.perSecond < $1.perSecond }[results.count / 2]
    }

    private var tableHeader: String {
        pad("workload", 44) + pad("ops", 10, right: true) + pad("ops/s", 13, right: true)
            + pad("p50 us", 10, right: true) + pad("p99 us", 10, right: true) + pad("p999 us", 10, right: true) + "  note"
    }

    private func tableLine(_ row: BenchResult) -> String {
        func micro(_ value: Double?) -> String { value.map { String(format: "%.1f", $0) } ?? "-" }
        return pad(row.name, 44) + pad("\(row.operations)", 10, right: true)
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
