import Cairn
import CairnStorage
import Foundation
import Histogram
import SystemPackage

/// The embedded store's workloads: one operation, one fsync policy, N clients, measured with
/// HdrHistogram. Used by `cairn bench`.
public struct StoreBenchmark: Sendable {
    /// The operations `cairn bench --ops` accepts.
    public enum Workload: String, Sendable, CaseIterable {
        case set, get, incr, lpush, create, setData, getData
    }

    /// 1000 znode paths under /bench, for setData and getData.
    static let nodePaths = (0..<1000).map { "/bench/n\($0)" }

    public struct Row: Sendable {
        public var mode: FsyncPolicy
        public var workload: String
        public var clients: Int
        public var result: BenchResult
        public var bytesOnDisk: UInt64
        public var reopenMilliseconds: Double
    }

    public var directory: FilePath
    public var seconds: Double
    public var valueSize: Int
    public var keySpace = 100_000

    public init(directory: FilePath, seconds: Double, valueSize: Int) {
        self.directory = directory
        self.seconds = seconds
        self.valueSize = valueSize
    }

    /// 16-byte keys: "key:" and 12 digits.
    func keys(_ count: Int) -> [Bytes] {
        (0..<count).map { i in
            let digits = String(i)
            return Bytes("key:" + String(repeating: "0", count: 12 - digits.count) + digits)
        }
    }

    private func newDirectory(_ name: String) throws -> FilePath {
        let path = directory.appending("\(name)-\(UUID().uuidString.prefix(8))")
        try PosixFileSystem().createDirectory(path)
        return path
    }

    public func run(_ workload: Workload, mode: FsyncPolicy, clients: Int) async throws -> Row {
        let path = try newDirectory("\(mode.rawValue)-\(workload.rawValue)-\(clients)")
        let store = try Store.open(directory: path, options: StoreOptions(fsyncPolicy: mode))
        let keys = keys(keySpace)
        let value = Bytes([UInt8](repeating: 0x61, count: valueSize))
        if workload == .create || workload == .setData || workload == .getData {
            _ = try await store.execute([.createNode(path: "/bench", data: Bytes([]), kind: .persistent, sequential: false, ttl: 0, owner: 0)])
        }
        if workload == .setData || workload == .getData {
            for start in stride(from: 0, to: Self.nodePaths.count, by: 100) {
                _ = try await store.execute(Self.nodePaths[start..<start + 100].map {
                    .createNode(path: $0, data: value, kind: .persistent, sequential: false, ttl: 0, owner: 0)
                })
            }
        }
        if workload == .get {
            // Preload in batches of 1000 keys a txn.
            for start in stride(from: 0, to: keys.count, by: 1000) {
                let slice = Array(keys[start..<min(start + 1000, keys.count)])
                _ = try await store.execute([.setMany(keys: slice, values: Array(repeating: value, count: slice.count), onlyIfNoneExist: false)])
            }
        }
        // Start every row from a quiet page cache: otherwise the kernel is still writing back
        // the hundreds of megabytes the previous rows logged while this one is measured (and
        // write-protecting mapped pages as it goes), which made a row depend on its neighbours.
        sync()
        let end = monotonicNanoseconds() + UInt64(seconds * 1e9)
        let start = monotonicNanoseconds()
        let (count, histogram): (Int, Histogram<UInt64>)
        if clients == 1 {
            (count, histogram) = try Self.loop(store, workload, keys, value, offset: 0, end: end)
        } else {
            (count, histogram) = try await withThrowingTaskGroup(of: (Int, Histogram<UInt64>).self) { group in
                for client in 0..<clients {
                    group.addTask { try await Self.asyncLoop(store, workload, keys, value, offset: client * 7919, end: end) }
                }
                var total = 0
                var merged = Histogram<UInt64>(highestTrackableValue: 60_000_000_000)
                for try await (n, part) in group { total += n; merged.add(part) }
                return (total, merged)
            }
        }
        let elapsed = Double(monotonicNanoseconds() - start) / 1e9
        let bytes = store.log.stats.appendedBytes
        try store.close()
        let reopenStart = monotonicNanoseconds()
        let reopened = try Store.open(directory: path, options: StoreOptions(fsyncPolicy: mode))
        let reopenMilliseconds = Double(monotonicNanoseconds() - reopenStart) / 1e6
        try reopened.close()
        let result = BenchResult(
            name: workload.rawValue, operations: count, seconds: elapsed,
            p50Microseconds: Double(histogram.valueAtPercentile(50)) / 1000,
            p99Microseconds: Double(histogram.valueAtPercentile(99)) / 1000,
            p999Microseconds: Double(histogram.valueAtPercentile(99.9)) / 1000)
        return Row(mode: mode, workload: workload.rawValue, clients: clients, result: result,
                   bytesOnDisk: bytes, reopenMilliseconds: reopenMilliseconds)
    }

    private static func loop(_ store: Store, _ workload: Workload, _ keys: [Bytes], _ value: Bytes, offset: Int, end: UInt64) throws -> (Int, Histogram<UInt64>) {
        let nodePaths = Self.nodePaths
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000)
        var i = offset
        var now = monotonicNanoseconds()
        while now < end {
            let t0 = now
            let key = keys[i % keys.count]
            switch workload {
            case .set: try store.set(key, value)
            case .get: _ = try store.get(key)
            case .incr: try store.incrby(keys[i % 1000], 1)
            case .lpush: _ = try store.push(keys[i % 100], [value], left: true, onlyIfExists: false)
            case .create: try store.create("/bench/c\(i)", data: value)
            case .setData: try store.setData(nodePaths[i % nodePaths.count], data: value)
            case .getData: _ = try store.getData(nodePaths[i % nodePaths.count])
            }
            now = monotonicNanoseconds()
            _ = histogram.record(now - t0)
            i += 1
        }
        return (i - offset, histogram)
    }

    private static func asyncLoop(_ store: Store, _ workload: Workload, _ keys: [Bytes], _ value: Bytes, offset: Int, end: UInt64) async throws -> (Int, Histogram<UInt64>) {
        let nodePaths = Self.nodePaths
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000)
        var i = offset
        var now = monotonicNanoseconds()
        while now < end {
            let t0 = now
            let key = keys[i % keys.count]
            switch workload {
            case .set: try await store.set(key, value)
            case .get: _ = try store.get(key)
            case .incr: try await store.incrby(keys[i % 1000], 1)
            case .lpush: _ = try await store.execute([.push(keys[i % 100], [value], left: true, onlyIfExists: false)])
            case .create: try await store.create("/bench/c\(offset)-\(i)", data: value)
            case .setData: try await store.setData(nodePaths[i % nodePaths.count], data: value)
            case .getData: _ = try store.getData(nodePaths[i % nodePaths.count])
            }
            now = monotonicNanoseconds()
            _ = histogram.record(now - t0)
            i += 1
        }
        return (i - offset, histogram)
    }

    /// Writes `keys` keys (in txns of 1000) under `no`, closes, and times reopening from the log.
    public func reopen(keys count: Int) throws -> (seconds: Double, logBytes: UInt64) {
        let path = try newDirectory("reopen")
        let store = try Store.open(directory: path, options: StoreOptions(fsyncPolicy: .no))
        let value = Bytes([UInt8](repeating: 0x62, count: valueSize))
        let all = keys(count)
        for start in stride(from: 0, to: count, by: 1000) {
            let slice = Array(all[start..<min(start + 1000, count)])
            _ = try store.execute([.setMany(keys: slice, values: Array(repeating: value, count: slice.count), onlyIfNoneExist: false)])
        }
        let bytes = store.log.stats.appendedBytes
        try store.close()
        let begin = monotonicNanoseconds()
        let reopened = try Store.open(directory: path, options: StoreOptions(fsyncPolicy: .no))
        let seconds = Double(monotonicNanoseconds() - begin) / 1e9
        precondition(reopened.dbsize() == count, "reopened \(reopened.dbsize()) keys, expected \(count)")
        try reopened.close()
        return (seconds, bytes)
    }
}
