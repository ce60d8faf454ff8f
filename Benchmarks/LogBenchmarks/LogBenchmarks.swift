// `swift package benchmark` (ordo-one/benchmark): per-append cost of the log under each policy,
// the raw pwrite+fdatasync loop it is compared with, and CRC32C. `cairn bench log` runs the
// side-by-side table with ratios, group commit and the recovery scan.
import Benchmark
import CairnBench
import CairnStorage
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        maxDuration: .seconds(3), maxIterations: 200_000)
    let payload = [UInt8](repeating: 0x42, count: 128)

    Benchmark("raw pwrite+fdatasync 152 B") { benchmark in
        let path = "/tmp/cairn-benchmark-raw.dat"
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o644)
        defer { close(fd); unlink(path) }
        _ = posix_fallocate(fd, 0, off_t(64 << 20))
        fsync(fd)
        let record = [UInt8](repeating: 0x5A, count: LogFormat.recordSize(payloadLength: 128))
        var offset = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            record.withUnsafeBytes { _ = pwrite(fd, $0.baseAddress, $0.count, off_t(offset % (60 << 20))) }
            fdatasync(fd)
            offset += record.count
        }
    }

    for policy in FsyncPolicy.allCases {
        Benchmark("log append \(policy.rawValue) 128 B") { benchmark in
            let dir = FilePath("/tmp/cairn-benchmark-\(policy.rawValue)")
            removeTree(dir)
            let log = try Log.open(directory: dir, options: LogOptions(fsyncPolicy: policy))
            defer { try? log.close(); removeTree(dir) }
            try payload.withUnsafeBytes { raw in
                benchmark.startMeasurement()
                for _ in benchmark.scaledIterations { try log.append(raw) }
                benchmark.stopMeasurement()
            }
        }
    }

    Benchmark("crc32c 1 MiB", configuration: .init(metrics: [.wallClock, .throughput], scalingFactor: .one)) { benchmark in
        let buffer = [UInt8](repeating: 0xA5, count: 1 << 20)
        for _ in benchmark.scaledIterations { blackHole(CRC32C.checksum(buffer)) }
    }
}
