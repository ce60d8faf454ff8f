import ArgumentParser
import Cairn
import CairnStorage
import SystemPackage

/// `cairn snapshot DIR`: takes a snapshot of a stopped store and compacts its log.
struct SnapshotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Take a snapshot of a data directory (not in use by a server) and compact its log behind it."
    )

    @Argument(help: "The data directory.")
    var directory: String

    @Option(help: "LZ4 level: 1 (fast) to 12; 3 and above use LZ4 HC.")
    var level: Int32 = 1

    @Option(help: "Snapshots to keep; the log is kept from the oldest of them (--keep 1 compacts the most).")
    var keep = 2

    func run() throws {
        guard (1...12).contains(level) else { throw ValidationError("--level must be between 1 and 12") }
        guard keep >= 1 else { throw ValidationError("--keep must be at least 1") }
        let path = FilePath(directory)
        guard PosixFileSystem().fileExists(path) else {
            print("error: \(directory) does not exist")
            throw ExitCode(2)
        }
        let store: Store
        do {
            // Nothing expires while the tool runs: it records the state as it is.
            store = try Store.open(directory: path, options: StoreOptions(
                fsyncPolicy: .always, activeExpiry: false, snapshotEveryTxns: 0, snapshotEveryBytes: 0,
                snapshotsRetained: keep, snapshotCompressionLevel: level))
        } catch {
            print("error: \(error)")
            throw ExitCode(2)
        }
        for note in store.recoveryNotes { print("note: \(note)") }
        let segmentsBefore = store.log.segmentNames.count
        let progress = Progress(label: "snapshot", verb: "serialised")
        do {
            let stats = try store.snapshot { bytes in progress.set(bytes: bytes) }
            progress.finish()
            let removed = segmentsBefore - store.log.segmentNames.count
            print("\(stats.file): index \(stats.header.index), \(stats.header.keys) keys, \(stats.header.nodes) znodes, "
                  + "\(stats.header.sessions) sessions")
            print(String(format: "  %@ serialised, %@ on disk (ratio %.2f), %.2f s; %d log segment(s) compacted",
                         formatBytes(stats.contentBytes), formatBytes(stats.fileBytes), stats.compressionRatio, stats.seconds, removed))
            try store.close()
        } catch {
            progress.finish()
            print("error: \(error)")
            try? store.close()
            throw ExitCode(1)
        }
    }
}
