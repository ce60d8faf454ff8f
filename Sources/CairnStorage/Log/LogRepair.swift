import SystemPackage

/// What `cairn check --fix` does to a damaged log: cut it at the first invalid record and drop
/// everything after, like `redis-check-aof --fix`. The plan says what will be lost before
/// anything is changed.
public struct LogRepair: Sendable, Equatable, CustomStringConvertible {
    /// The segment that is cut, and where.
    public var file: String
    public var offset: Int
    /// Valid records after the cut in that segment, and the later segments removed with theirs.
    public var recordsLostInFile: Int
    public var removedSegments: [String]
    public var recordsLostInRemovedSegments: Int
    /// Index of the last record kept.
    public var lastKeptIndex: UInt64?

    public var recordsLost: Int { recordsLostInFile + recordsLostInRemovedSegments }

    public var description: String {
        var text = "truncate \(file) at offset \(offset)"
        if recordsLostInFile > 0 { text += ", losing \(recordsLostInFile) valid records after the damage" }
        if !removedSegments.isEmpty {
            text += "; remove \(removedSegments.count) later segment(s) (\(removedSegments.joined(separator: ", "))) "
                + "holding \(recordsLostInRemovedSegments) records"
        }
        text += lastKeptIndex.map { "; the log will end at index \($0)" } ?? "; the log will be empty"
        return text
    }

    /// The repair for a scan's problem, or nil when the log is healthy.
    public static func plan(for scan: LogDirectoryScan) -> LogRepair? {
        guard let problem = scan.problem else { return nil }
        let file: String
        let offset: Int
        var lostInFile = 0
        switch problem {
        case .tornTail(let tail):
            file = tail.file
            offset = tail.offset
            lostInFile = tail.discardedRecords
        case .corruption(let error):
            switch error {
            case .corruption(let name, let at, _, let after):
                file = name
                offset = at
                lostInFile = after
            case .indexGap(let name, _, _), .emptySegment(let name):
                // The segment does not join the log: it and everything after it go; cutting at
                // the end of the previous segment loses nothing in that one.
                guard let position = scan.segments.firstIndex(where: { $0.name == name }), position > 0 else {
                    file = name
                    offset = 0
                    break
                }
                let previous = scan.segments[position - 1]
                file = previous.name
                offset = previous.scan.validEnd
            default:
                return nil
            }
        }
        guard let position = scan.segments.firstIndex(where: { $0.name == file }) else { return nil }
        let later = scan.segments[(position + 1)...]
        // Each segment's scan stops at its first damage, so its last valid index is what stays.
        let lastKept = scan.segments[...position].compactMap(\.scan.lastIndex).last
        return LogRepair(
            file: file, offset: offset, recordsLostInFile: lostInFile,
            removedSegments: later.map(\.name),
            recordsLostInRemovedSegments: later.reduce(0) { $0 + $1.scan.recordCount },
            lastKeptIndex: lastKept)
    }

    /// Carries the plan out: later segments are removed newest first (each removal durable),
    /// then the file is cut and synced. A crash part way leaves a prefix of the log.
    public func apply(directory: FilePath, fileSystem: any FileSystem) throws(DiskError) {
        try Self.remove(removedSegments, directory: directory, fileSystem: fileSystem)
        try Self.cut(file, at: offset, directory: directory, fileSystem: fileSystem)
    }

    /// Removes segments (oldest first in `names`) newest first, each removal made durable, so
    /// that a crash part way leaves a log that is a prefix of the one before.
    static func remove(_ names: [String], directory: FilePath, fileSystem: any FileSystem) throws(DiskError) {
        for name in names.reversed() {
            try fileSystem.remove(directory.appending(name))
            try fileSystem.syncDirectory(directory)
        }
    }

    /// Cuts segment `file` at `offset` and makes the cut durable.
    static func cut(_ file: String, at offset: Int, directory: FilePath, fileSystem: any FileSystem) throws(DiskError) {
        let handle = try fileSystem.open(directory.appending(file), create: false)
        try handle.truncate(to: offset)
        try handle.syncData()
        try handle.close()
    }
}
