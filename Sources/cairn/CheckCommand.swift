import ArgumentParser
import CairnStorage
import Foundation
import SystemPackage

/// `cairn check DIR [--fix]`: verifies a data directory, like `redis-check-aof`.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Verify a data directory's log; with --fix, cut it at the first damage.",
        discussion: """
            Exit status: 0 when the log is intact (a crash-torn tail, which opening cuts by \
            itself, counts as intact), 1 when it is damaged, 2 when it cannot be read.
            """
    )

    @Argument(help: "The data directory.")
    var directory: String

    @Flag(help: "Truncate the log at the first invalid record, after printing what will be lost.")
    var fix = false

    @Flag(name: .shortAndLong, help: "With --fix: do not ask for confirmation.")
    var yes = false

    func run() throws {
        let fs = PosixFileSystem()
        let path = FilePath(directory)
        guard fs.fileExists(path) else {
            print("error: \(directory) does not exist")
            throw ExitCode(2)
        }
        // A fix must not race a live writer; a plain check may read a live directory.
        var lock: (any FileLock)?
        if fix {
            do { lock = try fs.lock(path.appending("LOCK")) } catch {
                print("error: \(directory) is in use by another process (LOCK is held); stop it before --fix")
                throw ExitCode(2)
            }
        }
        defer { lock?.unlock() }

        let scan: LogDirectoryScan
        do {
            let progress = Progress(label: "checking")
            scan = try LogDirectoryScan.run(directory: path, fileSystem: fs) { record in progress.advance(bytes: record.size) }
            progress.finish()
        } catch {
            print("error: \(error)")
            throw ExitCode(2)
        }
        print("Checking \(directory)")
        for segment in scan.segments {
            let range = segment.scan.lastIndex.map { "\(segment.firstIndex)...\($0)" } ?? "(empty)"
            print("  \(segment.name)  records \(range)  \(segment.scan.recordCount) records, "
                  + "\(formatBytes(segment.scan.validEnd)) used of \(formatBytes(segment.fileSize))")
        }
        let first = scan.firstIndex.map(String.init) ?? "-"
        let last = scan.lastValidIndex.map(String.init) ?? "-"
        print("segments: \(scan.segments.count), valid records: \(scan.recordCount), first index: \(first), last valid index: \(last)")

        switch scan.problem {
        case nil:
            print("OK: the log is intact")
            return
        case .tornTail(let tail):
            print("torn tail (a crash mid-write; opening the store cuts it): \(tail)")
        case .corruption(let error):
            print("DAMAGED: \(error)")
        }
        guard fix, let repair = LogRepair.plan(for: scan) else {
            if case .corruption = scan.problem { throw ExitCode(1) }
            return
        }
        print("--fix will: \(repair)")
        if !yes {
            print("Continue? [y/N]: ", terminator: "")
            guard let answer = readLine(), answer.lowercased().hasPrefix("y") else {
                print("Nothing changed.")
                throw ExitCode(1)
            }
        }
        do {
            try repair.apply(directory: path, fileSystem: fs)
        } catch {
            print("error: repair failed: \(error)")
            throw ExitCode(2)
        }
        print("Fixed: \(repair.recordsLost) records dropped; the log now ends at index \(repair.lastKeptIndex.map(String.init) ?? "(empty)").")
    }
}

func formatBytes(_ bytes: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
}
