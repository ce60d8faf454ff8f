// `swift package benchmark` (ordo-one/benchmark): per-append cost of the log under each policy,
// the raw pwrite+fdatasync loop it is compared with, and CRC32C. `cairn bench log` prints the
// side-by-side table with ratios, group commit and the recovery scan.
import Benchmark
import CairnBench
import CairnStorage
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// What setup opens and teardown closes, so that samples measure appends, not opening.
final class OpenLog: @unchecked Sendable {
    var log: Log?
    let directory: FilePath
    init(_ name: String) { directory = FilePath("/tmp/cairn-benchmark-\(name)") }

    func open(_ policy: FsyncPolicy) throws {
        removeTree(directory)
        log = try Log.open(directory: directory, options: LogOptions(fsyncPolicy: policy))
    }

    func close() {
        try? log?.close()
        log = nil
        removeTree(directory)
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        maxDuration: .seconds(3), maxIterations: 100_000)
    let payload = [UInt8](repeating: 0x42, count: 128)

    let raw = OpenLog("raw")
    nonisolated(unsafe) var rawDescriptor: Int32 = -1
    nonisolated(unsafe) var rawOffset = 0
    Benchmark("raw pwrite+fdatasync 160 B", closure: { benchmark in
        let record = [UInt8](repeating: 0x5A, count: LogFormat.recordSize(payloadLength: 128))
        for _ in benchmark.scaledIterations {
            record.withUnsafeBytes { _ = pwrite(rawDescriptor, $0.baseAddress, $0.count, off_t(rawOffset)) }
            fdatasync(rawDescriptor)
            rawOffset = (rawOffset + record.count) % (60 << 20)
        }
    }, setup: {
        try PosixFileSystem().createDirectory(raw.directory)
        rawDescriptor = open(raw.directory.appending("raw.dat").string, O_RDWR | O_CREAT | O_TRUNC, 0o644)
        _ = posix_fallocate(rawDescriptor, 0, off_t(64 << 20))
        fsync(rawDescriptor)
    }, teardown: {
        close(rawDescriptor)
        raw.close()
    })

    for policy in FsyncPolicy.allCases {
        let holder = OpenLog(policy.rawValue)
        // A thousand appends a sample when no sync is waited for, so the clock reads are amortised.
        let scaling: BenchmarkScalingFactor = policy == .always ? .one : .kilo
        Benchmark(
            "log append \(policy.rawValue) 128 B",
            configuration: .init(scalingFactor: scaling),
            closure: { benchmark in
                let log = holder.log!
                payload.withUnsafeBytes { bytes in
                    for _ in benchmark.scaledIterations { _ = try? log.append(bytes) }
                }
            },
            setup: { try holder.open(policy) },
            teardown: { holder.close() })
    }

    Benchmark("crc32c 1 MiB", configuration: .init(metrics: [.wallClock, .throughput])) { benchmark in
        let buffer = [UInt8](repeating: 0xA5, count: 1 << 20)
        for _ in benchmark.scaledIterations { blackHole(CRC32C.checksum(buffer)) }
    }
}
