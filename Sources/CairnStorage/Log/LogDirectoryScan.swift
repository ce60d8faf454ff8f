import SystemPackage

/// Reads every segment of a log directory in index order and verifies it: checksums, the index
/// sequence inside each segment, and that each segment starts where the previous one ended.
/// Used by ``Log/open(directory:options:fileSystem:replay:)`` and by `cairn check`.
public struct LogDirectoryScan: Sendable {
    public struct Segment: Sendable, Equatable {
        public var name: String
        public var firstIndex: UInt64
        public var fileSize: Int
        public var scan: SegmentScanner.Result

        /// Intact, with zeros past its records: never cut to its last record, as a seal does.
        /// (Always true of the active segment; of the one before it after a crash that came
        /// before its background seal.)
        public var isUnsealed: Bool { scan.damage == nil && fileSize > scan.validEnd }
    }

    /// A crash-torn tail: cut by `open`, reported here. It is in the last segment, or in the one
    /// before it when that one was still being sealed in the background (FORMAT.md, "Sealing"):
    /// the last segment was then begun after it and is removed with the cut.
    public struct TornTail: Sendable, Equatable, CustomStringConvertible {
        public var file: String
        public var offset: Int
        /// Bytes from `offset` to the last non-zero byte of the segment.
        public var bytes: Int
        public var defect: LogFormat.Defect
        /// Records after the damage that checked out but cannot be kept (they follow a hole).
        public var discardedRecords: Int
        /// Segments after `file`, removed by the cut (none were synced: a segment's records
        /// count as durable only once the one before it is sealed), and the records they held.
        public var removedSegments: [String] = []
        public var removedRecords: Int = 0

        public var description: String {
            "torn tail in \(file): \(bytes) bytes cut at offset \(offset) (\(defect.rawValue))"
                + (discardedRecords > 0 ? ", \(discardedRecords) unsynced records past a hole discarded" : "")
                + (removedSegments.isEmpty ? "" : "; \(removedSegments.joined(separator: ", ")) begun while it was unsealed, "
                    + "with \(removedRecords) unsynced records, removed")
        }
    }

    public enum Problem: Sendable, Equatable {
        case tornTail(TornTail)
        case corruption(LogError)
    }

    public var segments: [Segment] = []
    /// The first problem found; scanning stops visiting records there.
    public var problem: Problem?

    /// Index of the first record present, if any.
    public var firstIndex: UInt64? { segments.first(where: { $0.scan.recordCount > 0 })?.firstIndex }
    /// The segments whose records survive the problem, if any (a damaged one included: its
    /// records before the damage survive).
    public var survivingSegments: ArraySlice<Segment> {
        func position(_ name: String) -> Int { segments.firstIndex { $0.name == name } ?? segments.count }
        switch problem {
        case nil: return segments[...]
        case .tornTail(let tail): return segments[..<min(segments.count, position(tail.file) + 1)]
        case .corruption(.indexGap(let file, _, _)), .corruption(.emptySegment(let file)):
            return segments[..<position(file)]
        case .corruption(.corruption(let file, _, _, _)): return segments[..<min(segments.count, position(file) + 1)]
        case .corruption: return segments[...]
        }
    }

    /// Index of the last valid record before any problem.
    public var lastValidIndex: UInt64? { survivingSegments.compactMap(\.scan.lastIndex).last }
    public var recordCount: Int { survivingSegments.reduce(0) { $0 + $1.scan.recordCount } }

    /// Segment file names in `directory`, sorted by first index.
    public static func segmentNames(in directory: FilePath, fileSystem: any FileSystem) throws(LogError) -> [(String, UInt64)] {
        let names: [String]
        do { names = try fileSystem.listDirectory(directory) } catch { throw .disk(error) }
        return names.compactMap { name in LogFormat.segmentFirstIndex(fileName: name).map { (name, $0) } }
            .sorted { $0.1 < $1.1 }
    }

    /// Scans the directory. Records are passed to `visit` in order up to the first problem.
    /// After a problem the remaining segments are still scanned (not visited) so that a report
    /// can say what lies beyond it.
    public static func run(
        directory: FilePath, fileSystem: any FileSystem,
        visit: (LogFormat.Record) throws -> Void = { _ in }
    ) throws -> LogDirectoryScan {
        var result = LogDirectoryScan()
        var buffer: [UInt8] = []
        let names = try segmentNames(in: directory, fileSystem: fileSystem)
        var expectedNext: UInt64?
        /// Whether the segment before the current one still has its preallocated zeros.
        var previousUnsealed = false
        for (position, (name, firstIndex)) in names.enumerated() {
            let isLast = position == names.count - 1
            // Only the last two segments can hold unsynced bytes (one background seal at a time).
            let mayBeUnsealed = position >= names.count - 2
            let path = directory.appending(name)
            let count: Int
            do {
                let handle = try fileSystem.open(path, create: false)
                defer { try? handle.close() }
                count = try handle.readAll(into: &buffer)
            } catch {
                throw LogError.disk(error)
            }
            // Joining up is checked before the records are visited: a segment that does not
            // continue the log is never replayed.
            if result.problem == nil, let expected = expectedNext, firstIndex != expected {
                if isLast && firstIndex > expected && previousUnsealed, let previous = result.segments.last {
                    // The last segment was begun while the one before was still being sealed,
                    // and a crash took that one's unsynced tail: cut it at its end, as a torn tail.
                    result.problem = .tornTail(TornTail(
                        file: previous.name, offset: previous.scan.validEnd, bytes: 0,
                        defect: .endsBeforeNextSegment, discardedRecords: 0))
                } else {
                    result.problem = .corruption(.indexGap(file: name, expected: expected, found: firstIndex))
                }
            }
            let healthy = result.problem == nil
            let scan = try buffer.withUnsafeBytes { raw in
                let bytes = UnsafeRawBufferPointer(rebasing: raw[0..<count])
                return healthy
                    ? try SegmentScanner.scan(bytes, firstIndex: firstIndex, visit: visit)
                    : SegmentScanner.scan(bytes, firstIndex: firstIndex)
            }
            let segment = Segment(name: name, firstIndex: firstIndex, fileSize: count, scan: scan)
            result.segments.append(segment)
            let unsealed = mayBeUnsealed && segment.isUnsealed
            previousUnsealed = unsealed
            guard healthy else { continue }

            if let damage = scan.damage {
                // The segment before the last may not have been sealed when the process died
                // (its seal runs in the background): its lost writes are a torn tail too.
                if mayBeUnsealed && damage.isLostWrite {
                    let end = buffer.withUnsafeBytes { lastNonZero(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                    result.problem = .tornTail(TornTail(
                        file: name, offset: damage.offset, bytes: max(0, end - damage.offset),
                        defect: damage.defect, discardedRecords: damage.validRecordsAfter))
                } else {
                    result.problem = .corruption(.corruption(
                        file: name, offset: damage.offset, defect: damage.defect,
                        validRecordsAfter: damage.validRecordsAfter))
                }
                continue
            }
            // (An unsealed one may have lost every record: the next segment's gap says so.)
            if scan.recordCount == 0 && !isLast && !unsealed {
                result.problem = .corruption(.emptySegment(file: name))
                continue
            }
            expectedNext = firstIndex + UInt64(scan.recordCount)
        }
        if case .tornTail(var tail) = result.problem, let position = result.segments.firstIndex(where: { $0.name == tail.file }) {
            let later = result.segments[(position + 1)...]
            tail.removedSegments = later.map(\.name)
            tail.removedRecords = later.reduce(0) { $0 + $1.scan.recordCount }
            result.problem = .tornTail(tail)
        }
        return result
    }

    /// Offset just past the last non-zero byte.
    static func lastNonZero(_ bytes: UnsafeRawBufferPointer) -> Int {
        var end = bytes.count
        while end >= 8 && bytes.baseAddress!.loadUnaligned(fromByteOffset: end - 8, as: UInt64.self) == 0 { end -= 8 }
        while end > 0 && bytes[end - 1] == 0 { end -= 1 }
        return end
    }
}
