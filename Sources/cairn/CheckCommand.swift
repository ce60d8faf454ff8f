import ArgumentParser
import Cairn
import CairnStorage
import Foundation
import SystemPackage

/// `cairn check DIR [--fix]`: verifies a data directory, like `redis-check-aof`.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Verify a data directory's log and snapshots; with --fix, cut the log at the first damage.",
        discussion: """
            Snapshots are checked too: the LZ4 frame's checksums, the content checksum and \
            counts, and that the log continues each one without a gap. Exit status: 0 when \
            everything is intact (a crash-torn log tail, which opening cuts by itself, counts \
            as intact), 1 when something is damaged, 2 when the directory cannot be read.
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
        let snapshotsIntact = checkSnapshots(path, fs, scan)

        switch scan.problem {
        case nil:
            print("OK: the log is intact")
            if !snapshotsIntact { throw ExitCode(1) }
            return
        case .tornTail(let tail):
            print("torn tail (a crash mid-write; opening the store cuts it): \(tail)")
        case .corruption(let error):
            print("DAMAGED: \(error)")
        }
        guard fix, let repair = LogRepair.plan(for: scan) else {
            if case .corruption = scan.problem { throw ExitCode(1) }
            if !snapshotsIntact { throw ExitCode(1) }
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

extension CheckCommand {
    /// Verifies every snapshot the manifest names and that the log continues the newest usable
    /// one; prints what it finds. False when something is damaged.
    func checkSnapshots(_ path: FilePath, _ fs: PosixFileSystem, _ scan: LogDirectoryScan) -> Bool {
        let manifest: Manifest?
        do { manifest = try Manifest.read(directory: path, fileSystem: fs) } catch {
            print("DAMAGED: \(error)")
            return false
        }
        guard let manifest else {
            let strays = ((try? fs.listDirectory(path)) ?? []).filter { SnapshotFormat.index(fromFileName: $0) != nil }
            print("snapshots: none (no MANIFEST)" + (strays.isEmpty ? "" : "; not in use: \(strays.sorted().joined(separator: ", "))"))
            if let first = scan.firstIndex, first > 1 {
                print("DAMAGED: without a snapshot the log must start at index 1, but it starts at \(first)")
                return false
            }
            return true
        }
        var intact = true
        var usable: UInt64?
        for index in manifest.snapshots {
            let name = SnapshotFormat.fileName(index: index)
            let progress = Progress(label: "checking \(name)")
            do {
                let (_, stats) = try SnapshotFile.read(path.appending(name), fileSystem: fs, frameChecksum: true)
                progress.finish()
                print("  \(name)  index \(stats.header.index)  \(stats.header.keys) keys, \(stats.header.nodes) znodes, "
                      + "\(stats.header.sessions) sessions, \(formatBytes(stats.fileBytes)) (ratio "
                      + String(format: "%.2f", stats.compressionRatio) + "): checksums and counts OK")
                if usable == nil { usable = index }
            } catch {
                progress.finish()
                intact = false
                // A load skips the frame's XXH32 (the content's CRC32C covers the same bytes): a
                // file damaged only there still loads, and says so.
                if case .compression = error, (try? SnapshotFile.read(path.appending(name), fileSystem: fs)) != nil {
                    print("  \(name)  DAMAGED: \(error); its content's CRC32C and counts are right, so the store still loads it, but `lz4 -d` refuses it")
                    if usable == nil { usable = index }
                } else {
                    print("  \(name)  DAMAGED: \(error)")
                }
            }
        }
        let first = scan.firstIndex
        let last = scan.lastValidIndex ?? 0
        guard let base = usable else {
            if let first, first > 1 {
                print("DAMAGED: no snapshot is usable and the log starts at index \(first), not 1")
            } else {
                print("no snapshot is usable, but the log holds everything from index 1")
            }
            return false
        }
        if let first, first > base + 1 {
            print("DAMAGED: the snapshot at index \(base) needs the log from index \(base + 1), but it starts at \(first)")
            return false
        }
        if last < base && scan.recordCount > 0 {
            print("DAMAGED: the log ends at index \(last), before the snapshot's index \(base)")
            return false
        }
        print("the log continues snapshot \(base) without a gap" + (base == manifest.snapshots.first ? "" : " (an older snapshot: the newest is damaged)"))
        return intact
    }
}

func formatBytes(_ bytes: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
}
