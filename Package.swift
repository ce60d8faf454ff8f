// swift-tools-version: 6.1
// Cairn: a persistent storage engine with a log-structured core.
// Layers point down only (see docs/ARCHITECTURE.md):
//   cairn (CLI) → CairnStorage → CLZ4 / CCRC32C; Cairn also → CPrefetch; CairnServer → CEpoll;
//   cairn alone → CMimalloc
//   CairnTesting (simulated disk, checkers) is shared by tests, benchmarks, drills and fuzzers.
import PackageDescription

// Release builds of the storage, state machine and server modules skip the runtime's dynamic
// exclusivity checks (every inout access to a class's stored property): they were 3% of a
// pipelined SET's server CPU. Debug builds, which the tests run, keep them.
let hotPathSettings: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "Cairn",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "CairnStorage", targets: ["CairnStorage"]),
        .library(name: "Cairn", targets: ["Cairn"]),
        .library(name: "CairnTesting", targets: ["CairnTesting"]),
        .library(name: "CairnServer", targets: ["CairnServer"]),
        .executable(name: "cairn", targets: ["cairn"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        // SHA-1 for ZooKeeper's digest ACLs, HMAC for its session passwords.
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"4.0.0"),
        // Default traits pull a runtime interposer that is not available here.
        .package(url: "https://github.com/ordo-one/benchmark.git", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // Debian's liblz4 (lz4.h, lz4frame.h): snapshots are LZ4 frames the stock `lz4` tool reads.
        .systemLibrary(
            name: "CLZ4",
            pkgConfig: "liblz4",
            providers: [.apt(["liblz4-dev"])]
        ),
        // Debian's mimalloc, the `cairn` executable's allocator (see Sources/CMimalloc/shim.h):
        // the snapshot load allocates a million small objects, and glibc's malloc took a quarter
        // of its time.
        .systemLibrary(
            name: "CMimalloc",
            providers: [.apt(["libmimalloc-dev"])]
        ),
        // Linux's epoll and eventfd headers, for the RESP server's event loop.
        .systemLibrary(name: "CEpoll"),
        // CRC32C with the SSE4.2 / ARMv8 instruction and a slicing-by-8 fallback.
        .target(
            name: "CCRC32C",
            cSettings: [.unsafeFlags(["-O3"])]
        ),
        // A prefetch hint for the walks bound by cache misses (Swift has none of its own).
        .target(name: "CPrefetch"),
        .target(
            name: "CairnStorage",
            dependencies: [
                "CLZ4",
                "CCRC32C",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: hotPathSettings
        ),
        // The state machine (keyspace, later the znode tree) and the embedded Store over one log.
        .target(
            name: "Cairn",
            dependencies: [
                "CairnStorage",
                "CPrefetch",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "HashTreeCollections", package: "swift-collections"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: hotPathSettings
        ),
        .target(
            name: "CairnTesting",
            dependencies: ["CairnStorage", "Cairn", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // Workloads shared by `cairn bench` and the Benchmarks/ targets.
        // The servers: RESP (redis-cli, redis-benchmark, redis-py) on its own epoll loop, ZooKeeper over SwiftNIO.
        .target(
            name: "CairnServer",
            dependencies: [
                "Cairn",
                "CairnStorage",
                "CEpoll",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: hotPathSettings
        ),
        .target(
            name: "CairnBench",
            dependencies: [
                "CairnStorage",
                "Cairn",
                "CairnServer",
                "CairnTesting",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .executableTarget(
            name: "cairn",
            dependencies: [
                "CairnStorage",
                "Cairn",
                "CairnServer",
                "CairnBench",
                "CMimalloc",
                .product(name: "Logging", package: "swift-log"),
                "CairnTesting",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .testTarget(
            name: "CairnStorageTests",
            dependencies: ["CairnStorage", "CairnTesting", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .testTarget(
            name: "CairnServerTests",
            dependencies: ["CairnServer", "Cairn", "CairnStorage", "CairnTesting", .product(name: "SystemPackage", package: "swift-system"),
                           .product(name: "MetricsTestKit", package: "swift-metrics"), .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOEmbedded", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")]
        ),
        .testTarget(
            name: "CairnTests",
            dependencies: ["Cairn", "CairnStorage", "CairnTesting", "CairnBench", .product(name: "SystemPackage", package: "swift-system"),
                           .product(name: "MetricsTestKit", package: "swift-metrics")]
        ),
        .executableTarget(
            name: "LogBenchmarks",
            dependencies: [
                "CairnStorage",
                "CairnBench",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Benchmarks/LogBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
