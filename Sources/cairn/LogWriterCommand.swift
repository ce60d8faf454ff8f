#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import CairnStorage
import CairnTesting
import SystemPackage

/// The child process of the log kill test: appends self-describing records from several
/// threads and prints `opened` once the log is open, then `ack WRITER SEQ INDEX` for each
/// acknowledged record, until killed.
struct LogWriterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log-writer", abstract: "Append test records until killed (crash tests).", shouldDisplay: false)

    @Option var dir: String
    @Option var mode: FsyncPolicy = .always
    @Option var writers = 4
    @Option var segmentSize = 1 << 20
    @Option var maxRecords = 1_000_000
    @Option(help: "Added to writer ids, so several runs in one directory stay distinguishable.")
    var writerOffset = 0

    func run() throws {
        let log = try Log.open(directory: FilePath(dir), options: LogOptions(fsyncPolicy: mode, segmentSize: segmentSize))
        writeLine(1, "opened")  // the test's cue: writing starts now
        let output = Lock()
        let done = ConditionLock()
        nonisolated(unsafe) var finished = 0
        let perWriter = UInt32(maxRecords / writers)
        for writer in 0..<writers {
            let id = writer + writerOffset
            startThread(name: "writer-\(id)") {
                for sequence in 0..<perWriter {
                    let payload = TestRecord.payload(writer: UInt32(id), sequence: sequence)
                    do {
                        let index = try log.append(payload)
                        output.withLock { writeLine(1, "ack \(id) \(sequence) \(index)") }
                    } catch {
                        output.withLock { writeLine(1, "error \(error)") }
                        break
                    }
                }
                done.withLock { finished += 1; done.broadcast() }
            }
        }
        let count = writers
        done.withLock { while finished < count { done.wait() } }
        try log.close()
    }
}

extension FsyncPolicy: ExpressibleByArgument {}

/// Writes a line straight to a file descriptor: no stdio buffer to lose when the process is killed.
func writeLine(_ fd: Int32, _ text: String) {
    var line = text + "\n"
    line.withUTF8 { bytes in
        var done = 0
        while done < bytes.count {
            let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n <= 0 { return }
            done += n
        }
    }
}
