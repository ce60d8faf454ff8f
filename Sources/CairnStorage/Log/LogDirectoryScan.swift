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
    }

    /// A crash-torn tail of the last segment: cut by `open`, reported here.
    public struct TornTail: Sendable, Equatable, CustomStringConvertible {
        public var file: String
        public var offset: Int
        /// Bytes from `offset` to the last non-zero byte of the segment.
        public var bytes: Int
        public var defect: LogFormat.Defect
        /// Records after the damage that checked out but cannot be kept (they follow a hole).
        public var discardedRecords: Int

        public var description: String {
            "torn tail in \(file): \(bytes) bytes cut at offset \(offset) (\(defect.rawValue))"
                + (discardedRecords > 0 ? ", \(discardedRecords) unsynced records past a hole discarded" : "")
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
    /// Index of the last valid record before any problem.
    public var lastValidIndex: UInt64? {
        var last: UInt64?
        for segment in segments {
            if let index = segment.scan.lastIndex { last = index }
            if segment.scan.damage != nil { break }
        }
        return last
    }
    public var recordCount: Int {
        var count = 0
        for segment in segments {
            count += segment.scan.recordCount
            if segment.scan.damage != nil { break }
        }
        return count
    }

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
        for (position, (name, firstIndex)) in names.enumerated() {
            let isLast = position == names.count - 1
            let path = directory.appending(name)
            let count: Int
            do {
                let handle = try fileSystem.open(path, create: false)
                defer { try? handle.close() }
                count = try handle.readAll(into: &buffer)
            } catch {
                throw LogError.disk(error)
            }
            let healthy = result.problem == nil
            let scan = try buffer.withUnsafeBytes { raw in
                let bytes = UnsafeRawBufferPointer(rebasing: raw[0..<count])
                return healthy
                    ? try SegmentScanner.scan(bytes, firstIndex: firstIndex, visit: visit)
                    : SegmentScanner.scan(bytes, firstIndex: firstIndex)
            }
            result.segments.append(Segment(name: name, firstIndex: firstIndex, fileSize: count, scan: scan))
            guard healthy else { continue }

            if let expected = expectedNext, firstIndex != expected {
                result.problem = .corruption(.indexGap(file: name, expected: expected, found: firstIndex))
                continue
            }
            if let damage = scan.damage {
                if isLast && damage.isLostWrite {
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
            if scan.recordCount == 0 && !isLast {
                result.problem = .corruption(.emptySegment(file: name))
                continue
            }
            expectedNext = firstIndex + UInt64(scan.recordCount)
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
