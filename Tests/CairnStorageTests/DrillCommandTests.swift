import CairnTesting
import Foundation
import Testing

/// `cairn drill` run as a user runs it: kill -9 a writer, reopen, and check the verdict.
@Suite struct DrillCommandTests {
    @Test(arguments: ["always", "everysec", "no"])
    func theDrillPassesAndReportsJSON(mode: String) throws {
        let process = Process()
        process.executableURL = try cairnExecutable()
        process.arguments = ["drill", "--mode", mode, "--kills", "6", "--max-wait-ms", "300", "--seed", "11", "--json"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(String(decoding: data, as: UTF8.self))")
        let summary = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(summary["mode"] as? String == mode)
        #expect(summary["kills"] as? Int == 6)
        #expect(summary["prefix_ok"] as? Bool == true)
        #expect(summary["lost_acked"] as? Int == 0, "kill -9 keeps the page cache: nothing acknowledged is lost")
        #expect((summary["acked"] as? Int ?? 0) > 0)
        #expect(summary["max_loss_window_ms"] is Int)
    }
}
