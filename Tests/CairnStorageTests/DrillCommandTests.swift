import CairnTesting
import Foundation
import Testing

/// `cairn drill` run as a user runs it: kill -9 a writer, reopen, and check the verdict.
@Suite struct DrillCommandTests {
    /// Runs `cairn drill ARGUMENTS --json`; its summary, after checking it exited 0.
    func drill(_ arguments: [String]) throws -> [String: Any] {
        let process = Process()
        process.executableURL = try cairnExecutable()
        process.arguments = ["drill"] + arguments + ["--json"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(String(decoding: data, as: UTF8.self))")
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    @Test(arguments: ["always", "everysec", "no"])
    func theDrillPassesAndReportsJSON(mode: String) throws {
        let summary = try drill(["--mode", mode, "--kills", "6", "--max-wait-ms", "300", "--seed", "11"])
        #expect(summary["mode"] as? String == mode)
        #expect(summary["kills"] as? Int == 6)
        #expect(summary["prefix_ok"] as? Bool == true)
        #expect(summary["lost_acked"] as? Int == 0, "kill -9 keeps the page cache: nothing acknowledged is lost")
        #expect((summary["acked"] as? Int ?? 0) > 0)
        #expect(summary["max_loss_window_ms"] is Int)
        let whileOpening = try #require(summary["kills_while_opening"] as? Int)
        #expect(whileOpening >= 0 && whileOpening <= 6)
    }

    /// With snapshots every 2000 txns, kills land in snapshots, manifest switches and
    /// compactions too, and every reopen still recovers a prefix with nothing acknowledged lost.
    @Test func theDrillPassesWithSnapshotsTakenAsItWrites() throws {
        let summary = try drill(["--mode", "always", "--kills", "6", "--max-wait-ms", "400", "--seed", "12", "--snapshot-every", "2000"])
        #expect(summary["prefix_ok"] as? Bool == true && summary["lost_acked"] as? Int == 0)
        let recovered = try #require(summary["recovered_txns"] as? Int)
        let snapshot = try #require(summary["newest_snapshot"] as? Int)
        // (A writer this slow would take no snapshot: then there is nothing to say.)
        if recovered >= 4000 { #expect(snapshot > 0, "\(recovered) txns and no snapshot") }
        #expect(snapshot <= recovered)
    }

    /// With thousands of keys and znodes, the snapshots a reopen loads are large enough for the
    /// loader's parallel paths (the keys' table built on two threads from 65536 keys; the znodes
    /// decoded on their own thread from 4096 keys and 4096 znodes), and kills land among them.
    @Test func theDrillPassesWithSnapshotsLargeEnoughForTheParallelLoad() throws {
        // Seed 90 times all four kills after the writer is open, 6.5 s of writing in all: about
        // 450k txns on this machine in a debug build, four times what 4096 znodes need.
        let summary = try drill(["--mode", "no", "--kills", "4", "--max-wait-ms", "2000", "--seed", "90",
                                 "--keys", "8000", "--znodes", "4000", "--snapshot-every", "10000"])
        #expect(summary["kills_while_opening"] as? Int == 0)
        #expect(summary["passed"] as? Bool == true && summary["prefix_ok"] as? Bool == true)
        let keys = try #require(summary["snapshot_keys"] as? Int), znodes = try #require(summary["snapshot_znodes"] as? Int)
        #expect(try #require(summary["newest_snapshot"] as? Int) > 0)
        #expect(keys >= 4096 && znodes >= 4096, "the last reopen loaded a snapshot past the threaded tree load's threshold: \(keys) keys, \(znodes) znodes")
    }

    @Test func theDrillRefusesWorkloadsWithoutKeysOrZnodes() throws {
        for arguments in [["--keys", "1"], ["--znodes", "0"], ["--kills", "0"]] {
            let process = Process()
            process.executableURL = try cairnExecutable()
            process.arguments = ["drill"] + arguments
            let errors = Pipe()
            process.standardError = errors
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus != 0, "\(arguments) was accepted")
            #expect(message.contains("\(arguments[0]) must be at least"), "the error names \(arguments[0]): \(message)")
        }
    }

    /// The drill times most kills from the child's `ready` line.
    @Test func theCollectorSeesALineAsItArrivesAndNotBefore() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "echo readying; sleep 0.3; echo ready; sleep 0.3; echo done"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let collector = OutputCollector(output.fileHandleForReading)
        #expect(!collector.waitForLine("ready", seconds: 0.1), "only 'readying' is out yet")
        #expect(collector.waitForLine("ready", seconds: 10))
        #expect(!collector.waitForLine("never", seconds: 10), "the output ends without it: false before the 10 s")
        process.waitUntilExit()
        #expect(collector.finish() == "readying\nready\ndone\n")
    }
}
