import Cairn
import CairnStorage
import CairnTesting
import Foundation
import Histogram
import SystemPackage

/// Snapshots of a large state, side by side with the stock `lz4` tool on the same bytes, plus
/// reopening from snapshot + log and the cost of a snapshot to concurrent writes.
public struct SnapshotBenchmark: Sendable {
    public var directory: FilePath
    public var keys: Int
    public var znodes: Int
    public var valueSize: Int
    public var logTxns: Int
    /// A command that loads the snapshot file given as its last argument in a process of its own
    /// and prints the load's seconds: the load as at a restart, on fresh memory, as `lz4 -d`
    /// runs (`cairn bench snapshot` passes `cairn bench snapshot-load`). Nil: not measured.
    public var freshLoader: [String]?
    /// Seconds of writes measured without a snapshot (the comparison for writes during one).
    public var writeSeconds = 2.0

    public init(directory: FilePath, keys: Int = 1_000_000, znodes: Int = 100_000, valueSize: Int = 100, logTxns: Int = 100_000) {
        self.directory = directory
        self.keys = keys
        self.znodes = znodes
        self.valueSize = valueSize
        self.logTxns = logTxns
    }

    /// Median of `values`.
    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
    }

    /// Runs `command` with `file` appended; the seconds it prints last (nil when it failed).
    static func freshLoad(_ command: [String], _ file: String) -> Double? {
        run(command[0], Array(command.dropFirst()) + [file])?.output.split(whereSeparator: \.isWhitespace).last.flatMap { Double($0) }
    }

    /// Runs `tool` with `arguments`; returns the wall time in seconds (nil when it failed).
    static func timeTool(_ tool: String, _ arguments: [String]) -> Double? {
        run(tool, arguments)?.seconds
    }

    /// Runs `executable` with `arguments` to its end: its wall time and standard output, or nil
    /// when it could not start or failed.
    private static func run(_ executable: String, _ arguments: [String]) -> (seconds: Double, output: String)? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        let start = monotonicNanoseconds()
        guard (try? process.run()) != nil else { return nil }
        let printed = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        return (Double(monotonicNanoseconds() - start) / 1e9, String(decoding: printed, as: UTF8.self))
    }

    /// 16-byte keys and values of random letters and digits (the worst case for compression
    /// short of random bytes: the ratio reported is honest, not flattered by repetition).
    static func fill(_ store: Store, keys: Int, znodes: Int, valueSize: Int, seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)
        func value() -> Bytes { Bytes((0..<valueSize).map { _ in alphabet[Int(rng.next() % 36)] }) }
        for start in stride(from: 0, to: keys, by: 1000) {
            _ = try store.execute((start..<min(start + 1000, keys)).map {
                .set(Bytes("key:\(String(repeating: "0", count: 12 - String($0).count))\($0)"), value(), condition: .always, expiry: .clear, returnOld: false)
            })
        }
        let parents = max(1, znodes / 1000)
        _ = try store.execute((0..<parents).map { .createNode(path: "/p\($0)", data: value(), kind: .persistent, sequential: false, ttl: 0, owner: 0) })
        for start in stride(from: 0, to: znodes - parents, by: 1000) {
            _ = try store.execute((start..<min(start + 1000, znodes - parents)).map {
                .createNode(path: "/p\($0 % parents)/n\($0)", data: value(), kind: .persistent, sequential: false, ttl: 0, owner: 0)
            })
        }
    }

    public struct Result: Sendable {
        public var contentBytes = 0
        public var fileBytes = 0
        public var ourWrite: [Double] = []          // seconds, before the file is made durable
        public var ourSync: [Double] = []
        public var toolCompress: [Double] = []
        public var ourDecompress: [Double] = []     // LZ4 frame only
        public var ourLoad: [Double] = []           // read + decompress + decode into a state
        public var freshLoad: [Double] = []         // the same in a process of its own
        public var toolDecompress: [Double] = []
        public var serialiseOnly: [Double] = []     // encode, no compression or I/O
        public var decodeOnly: [Double] = []        // content to state, no I/O or decompression
        public var reopenSeconds = 0.0
        public var writesWithout: (ops: Double, p99: Double) = (0, 0)
        public var writesDuring: (ops: Double, p99: Double, snapshotSeconds: Double, count: Int) = (0, 0, 0, 0)

        /// Fewer writes during the snapshot than this say nothing about its effect (a small
        /// state's snapshot is over before the writer has started).
        public static let fewestWritesDuring = 1000
        public var toolFound = false

        public var lines: [String] {
            let mb = Double(contentBytes) / 1e6
            func rate(_ seconds: [Double]) -> String { String(format: "%.0f MB/s", mb / max(SnapshotBenchmark.median(seconds), 1e-9)) }
            var out = [String(format: "state: %.1f MB serialised, %.1f MB on disk (compression ratio %.2f)", mb, Double(fileBytes) / 1e6, Double(contentBytes) / Double(max(fileBytes, 1)))]
            let write = SnapshotBenchmark.median(ourWrite), sync = SnapshotBenchmark.median(ourSync)
            out.append(String(format: "snapshot write (serialise + LZ4 + write, before it is made durable): %.3f s = %@; fdatasync, rename, directory fsync: %.3f s", write, rate(ourWrite), sync))
            out.append("  rounds: " + ourWrite.map { String(format: "%.3f s", $0) }.joined(separator: ", "))
            if toolFound {
                let compress = SnapshotBenchmark.median(toolCompress)
                out.append(String(format: "lz4 -1 on the same bytes: %.3f s = %@ -> ours is %.0f%% of it (target >= 75%%)", compress, rate(toolCompress), 100 * compress / max(write, 1e-9)))
            } else {
                out.append("lz4 tool not found: no side-by-side figure (apt-get install lz4)")
            }
            let decompress = SnapshotBenchmark.median(ourDecompress), load = SnapshotBenchmark.median(ourLoad)
            out.append(String(format: "snapshot load: LZ4 frame decompress %.3f s = %@; + decode into the state %.3f s = %@", decompress, rate(ourDecompress), load, rate(ourLoad)))
            out.append("  rounds: " + ourLoad.map { String(format: "%.3f s", $0) }.joined(separator: ", "))
            if toolFound {
                let tool = SnapshotBenchmark.median(toolDecompress)
                out.append(String(format: "lz4 -d on the same file: %.3f s = %@ -> decompress %.0f%%, full load %.0f%% of it (target >= 50%%)",
                                  tool, rate(toolDecompress), 100 * tool / max(decompress, 1e-9), 100 * tool / max(load, 1e-9)))
            }
            if !freshLoad.isEmpty {
                let fresh = SnapshotBenchmark.median(freshLoad)
                out.append(String(format: "snapshot load in a fresh process (as at a restart, and as lz4 -d runs): %.3f s = %@", fresh, rate(freshLoad))
                           + (toolFound ? String(format: " -> %.0f%% of lz4 -d (target >= 50%%)", 100 * SnapshotBenchmark.median(toolDecompress) / max(fresh, 1e-9)) : ""))
                out.append("  rounds: " + freshLoad.map { String(format: "%.3f s", $0) }.joined(separator: ", "))
            }
            out.append(String(format: "  of which: serialising alone %.3f s, decoding the content into a state alone %.3f s",
                              SnapshotBenchmark.median(serialiseOnly), SnapshotBenchmark.median(decodeOnly)))
            out.append(String(format: "reopen from snapshot + log: %.3f s (target < 1.5 s)", reopenSeconds))
            out.append(String(format: "writes without a snapshot: %.0f set/s, p99 %.1f us", writesWithout.ops, writesWithout.p99))
            if writesDuring.count < Self.fewestWritesDuring {
                out.append(String(format: "writes during a snapshot (%.3f s): only %d before it ended, too few to compare (a larger state's snapshot lasts longer)",
                                  writesDuring.snapshotSeconds, writesDuring.count))
            } else {
                out.append(String(format: "writes during a snapshot (%.2f s): %.0f set/s (%.0f%%, target >= 70%%), p99 %.1f us (%.2fx, target <= 2x)",
                                  writesDuring.snapshotSeconds, writesDuring.ops, 100 * writesDuring.ops / max(writesWithout.ops, 1), writesDuring.p99,
                                  writesDuring.p99 / max(writesWithout.p99, 1e-9)))
            }
            return out
        }
    }

    /// `rounds` of snapshot writes, then `loadRounds` of loads (interleaved with the `lz4` tool
    /// each way); medians are reported.
    public func run(rounds: Int = 3, loadRounds: Int = 5) throws -> Result {
        let path = directory.appending("snapshot-bench-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(atPath: path.string) }
        let fs = PosixFileSystem()
        try fs.createDirectory(path)
        var options = StoreOptions(fsyncPolicy: .everysec, activeExpiry: false, snapshotEveryTxns: 0, snapshotEveryBytes: 0, snapshotsRetained: 1)
        options.segmentSize = 64 << 20
        var result = Result()
        let tool = ["/usr/bin/lz4", "/usr/local/bin/lz4"].first { FileManager.default.isExecutableFile(atPath: $0) }
        result.toolFound = tool != nil
        var store = try Store.open(directory: path, options: options)
        try Self.fill(store, keys: keys, znodes: znodes, valueSize: valueSize, seed: 42)

        // Writes with and without a snapshot running, 2 s each way.
        let without = try Self.writes(store, seconds: writeSeconds, during: nil)
        result.writesWithout = (without.ops, without.p99)
        let filled = store
        let during = try Self.writes(store, seconds: 10, during: { try filled.snapshot() })
        result.writesDuring = (during.ops, during.p99, during.snapshotSeconds, during.count)

        // Write and compress, interleaved with the tool on the same bytes; then load and
        // decompress, interleaved too (loads allocate a second state: done after the writes, so
        // that the writes walk the store's own memory, as a server's would).
        let raw = directory.appending("snapshot-bench-content.bin")
        let compressed = directory.appending("snapshot-bench-content.lz4")
        let restored = directory.appending("snapshot-bench-restored.bin")
        defer { for p in [raw, compressed, restored] { try? FileManager.default.removeItem(atPath: p.string) } }
        var file = path
        for _ in 0..<rounds {
            let stats = try store.snapshot()
            result.ourWrite.append(stats.seconds - stats.syncSeconds)
            result.ourSync.append(stats.syncSeconds)
            result.contentBytes = stats.contentBytes
            result.fileBytes = stats.fileBytes
            file = path.appending(stats.file)
            let (content, _) = try SnapshotFile.content(file, fileSystem: fs)
            try Data(content).write(to: URL(fileURLWithPath: raw.string))
            if let tool, let seconds = Self.timeTool(tool, ["-1", "-f", "-q", raw.string, compressed.string]) { result.toolCompress.append(seconds) }
            // Their dirty pages would throttle the next round's writes: drop them.
            for p in [raw, compressed] { try? FileManager.default.removeItem(atPath: p.string) }
            let state = store.stateView()
            let start = monotonicNanoseconds()
            var sunk = 0
            try SnapshotFormat.encode(state, header: stats.header) { sunk += $0.count }
            result.serialiseOnly.append(Double(monotonicNanoseconds() - start) / 1e9)
        }
        let (content, _) = try SnapshotFile.content(file, fileSystem: fs)
        let fileBytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file.string)))
        // The writes above left about a GB of log and snapshots for the kernel to write back:
        // done now, not during the load rounds.
        sync()
        // Each result is freed after its time is taken: a load ends with the state built, and
        // freeing 1.1M objects (a third of the decode's own time) is not part of it.
        for _ in 0..<loadRounds {
            var start = monotonicNanoseconds()
            let decoded = try content.withUnsafeBytes { try SnapshotFormat.decode($0) }
            withExtendedLifetime(decoded) { result.decodeOnly.append(Double(monotonicNanoseconds() - start) / 1e9) }
            start = monotonicNanoseconds()
            let decompressed = try fileBytes.withUnsafeBytes { try LZ4Frame.decompress($0) }
            withExtendedLifetime(decompressed) { result.ourDecompress.append(Double(monotonicNanoseconds() - start) / 1e9) }
            start = monotonicNanoseconds()
            let loaded = try SnapshotFile.read(file, fileSystem: fs)
            withExtendedLifetime(loaded) { result.ourLoad.append(Double(monotonicNanoseconds() - start) / 1e9) }
            if let tool, let seconds = Self.timeTool(tool, ["-d", "-f", "-q", file.string, restored.string]) { result.toolDecompress.append(seconds) }
            if let freshLoader, let seconds = Self.freshLoad(freshLoader, file.string) { result.freshLoad.append(seconds) }
            try? FileManager.default.removeItem(atPath: restored.string)
        }

        // Reopen from the snapshot plus `logTxns` txns of log.
        let keyNames = (0..<1000).map { Bytes("key:\(String(repeating: "0", count: 12 - String($0).count))\($0)") }
        let value = Bytes([UInt8](repeating: 0x76, count: valueSize))
        for i in 0..<logTxns { try store.set(keyNames[i % keyNames.count], value) }
        let keysBefore = store.dbsize()
        try store.close()
        let start = monotonicNanoseconds()
        store = try Store.open(directory: path, options: options)
        result.reopenSeconds = Double(monotonicNanoseconds() - start) / 1e9
        guard store.dbsize() == keysBefore else { throw BenchError(message: "reopened \(store.dbsize()) keys, \(keysBefore) before closing") }
        try store.close()
        return result
    }

    /// One writer setting random keys of the store for `seconds`, or for as long as `during`
    /// runs on another thread; ops/s and p99 (us) of the writes in that window.
    static func writes(_ store: Store, seconds: Double, during: (@Sendable () throws -> SnapshotFile.Stats)?) throws -> (ops: Double, p99: Double, snapshotSeconds: Double, count: Int) {
        final class Flag: @unchecked Sendable {
            let lock = Lock()
            var done = false
            var seconds = 0.0
            var failure: String?
        }
        let flag = Flag()
        if let during {
            startThread(name: "bench-snapshot") {
                let start = monotonicNanoseconds()
                do { _ = try during() } catch { flag.lock.withLock { flag.failure = "\(error)" } }
                let elapsed = Double(monotonicNanoseconds() - start) / 1e9
                flag.lock.withLock { flag.done = true; flag.seconds = elapsed }
            }
        }
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000)
        var rng = SplitMix64(seed: 7)
        let value = Bytes([UInt8](repeating: 0x77, count: 100))
        let keys = (0..<100_000).map { Bytes("key:\(String(repeating: "0", count: 12 - String($0).count))\($0)") }
        let start = monotonicNanoseconds()
        let end = start + UInt64(seconds * 1e9)
        var count = 0
        while true {
            let t0 = monotonicNanoseconds()
            if during == nil ? t0 >= end : (count % 64 == 0 && flag.lock.withLock({ flag.done })) || t0 >= end { break }
            try store.set(keys[Int(rng.next() % UInt64(keys.count))], value)
            _ = histogram.record(monotonicNanoseconds() - t0)
            count += 1
        }
        let elapsed = Double(monotonicNanoseconds() - start) / 1e9
        if let failure = flag.lock.withLock({ flag.failure }) { throw BenchError(message: "the snapshot failed: \(failure)") }
        return (Double(count) / elapsed, Double(histogram.valueAtPercentile(99)) / 1000, flag.lock.withLock { flag.seconds }, count)
    }
}
