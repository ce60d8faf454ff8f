import CairnBench
import Foundation
import SystemPackage
import Testing

/// `cairn bench snapshot` on small states: every figure is measured, and the benchmark's own
/// checks hold (it once trapped on a state under 1000 keys, which its log phase grows). No
/// timing is asserted: these machines are shared.
@Suite struct SnapshotBenchmarkTests {
    @Test(arguments: [0, 300])
    func theBenchmarkRunsAndMeasuresEveryFigure(keys: Int) throws {
        let directory = FilePath(FileManager.default.temporaryDirectory.path).appending("snapshot-bench-test-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(atPath: directory.string, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory.string) }
        var benchmark = SnapshotBenchmark(directory: directory, keys: keys, znodes: 20, valueSize: 16, logTxns: 50)
        benchmark.writeSeconds = 0.1
        let result = try benchmark.run(rounds: 1, loadRounds: 1)
        #expect(result.contentBytes > 0 && result.fileBytes > 0)
        #expect(result.ourWrite.count == 1 && result.ourLoad.count == 1 && result.decodeOnly.count == 1 && result.serialiseOnly.count == 1)
        // (Writes during a snapshot of a tiny state may be none: it is over before the first.)
        #expect(result.reopenSeconds > 0 && result.writesWithout.ops > 0 && result.writesDuring.snapshotSeconds > 0)
        #expect(result.freshLoad.isEmpty, "no loader command was given")
        #expect(result.lines.contains { $0.hasPrefix("snapshot load:") })
        // Too few writes during the snapshot are reported as such, not as a rate of 0%.
        let during = try #require(result.lines.first { $0.hasPrefix("writes during a snapshot") })
        #expect(result.writesDuring.count >= SnapshotBenchmark.Result.fewestWritesDuring ? during.contains("set/s") : during.contains("too few to compare"), "\(during)")
        // The benchmark leaves nothing behind in its directory.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.string).isEmpty)
    }
}
