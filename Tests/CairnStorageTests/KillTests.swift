import CairnStorage
import CairnTesting
import Foundation
import SystemPackage
import Testing

struct CairnTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A child process whose standard output is collected on a background thread.
final class ChildProcess: @unchecked Sendable {
    let process = Process()
    private let pipe = Pipe()
    private let output: OutputCollector

    init(_ executable: URL, _ arguments: [String]) throws {
        process.executableURL = executable
        process.arguments = arguments
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        output = OutputCollector(pipe.fileHandleForReading)
    }

    /// Waits (bounded) until the child has printed `line` as a whole line.
    func waitForLine(_ line: String, seconds: Double) -> Bool { output.waitForLine(line, seconds: seconds) }

    /// Kills with SIGKILL (by process id) and waits for it and for its output to end.
    func killAndCollect() -> String {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        return output.finish()
    }
}

@Suite struct KillTests {
    @Test func kill9DuringAlwaysAppendsLosesNothingAcknowledged() throws {
        let executable = try cairnExecutable()
        let directory = TemporaryDirectory("kill")
        defer { directory.cleanup() }
        var rng = SplitMix64(seed: UInt64(Date().timeIntervalSince1970))
        var acks: [LogHistoryChecker.Ack] = []
        let kills = 20
        for run in 0..<kills {
            let child = try ChildProcess(executable, [
                "log-writer", "--dir", directory.path.string, "--mode", "always", "--writers", "4",
                "--segment-size", "65536", "--writer-offset", "\(run * 10)", "--max-records", "200000",
            ])
            // Let it open the log (recovery included: on a slow, busy disk that alone took more
            // than the shortest wait), write for a random while, then kill -9.
            #expect(child.waitForLine("opened", seconds: 10), "kill \(run): the child did not open the log in 10 s")
            let wait = Double.random(in: 0.15...0.5, using: &rng)
            Thread.sleep(forTimeInterval: wait)
            let output = child.killAndCollect()
            var runAcks = 0
            for line in output.split(separator: "\n") {
                let fields = line.split(separator: " ")
                guard fields.count == 4, fields[0] == "ack",
                      let writer = UInt32(fields[1]), let sequence = UInt32(fields[2]), let index = UInt64(fields[3])
                else { continue }
                acks.append(.init(writer: writer, sequence: sequence, index: index))
                runAcks += 1
            }
            var checker = LogHistoryChecker()
            let log = try Log.open(directory: directory.path) { record in
                checker.observe(index: record.index, payload: record.payload)
            }
            try log.close()
            checker.check(acks: acks, mustBePresent: true)
            #expect(checker.violations.isEmpty, "kill \(run): \(checker.violations.prefix(5))")
            #expect(runAcks > 0 || run == 0, "kill \(run): the child acknowledged nothing in \(wait) s")
        }
        #expect(acks.count > 100, "too few acknowledged appends to mean anything: \(acks.count)")
    }
}
