import CairnTesting
import Foundation
import Testing

/// `cairn bench log --group-only`: the group-commit rows run and group.
@Suite struct LogBenchCommandTests {
    /// 8 appenders on an event loop put 8 records in every sync (each tick submits one per
    /// appender, then one sync covers them); 8 async tasks put at least one in each.
    @Test func theGroupCommitRowsBatch() throws {
        let directory = TemporaryDirectory("bench-log")
        defer { directory.cleanup() }
        let result = try runCairn(["bench", "log", "--group-only", "--appenders", "8", "--seconds", "0.2",
                                   "--dir", directory.path.appending("scratch").string, "--json"])
        #expect(result.status == 0, "\(result.output)")
        let rows = result.output.split(separator: "\n").filter { $0.hasPrefix("{") }
        #expect(rows.count == 2, "\(result.output)")
        let loop = rows.first { $0.contains("appenders (event loop)") }
        #expect(loop?.contains("\"note\":\"8.0 records/sync, largest batch 8\"") == true, "\(result.output)")
        let tasks = rows.first { $0.contains("appenders (async tasks)") }
        #expect(tasks != nil && !(tasks!.contains("\"ops\":0,")), "\(result.output)")
    }
}
