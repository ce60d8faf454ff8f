/// Reads one segment's bytes record by record, verifying each checksum and the index sequence,
/// and describes the first damage it meets. It never skips a bad record to read on.
///
/// Telling a crash from corruption, in the last segment: bytes past the last `fdatasync` may
/// reach the disk partly and out of order (a torn write; a page cache writing pages back in any
/// order), so the first invalid record there can be followed by valid ones. Corruption of synced
/// data (a flipped bit) leaves every byte in place. The damage is a *lost write* when either
/// - no valid record follows it (a torn tail), or
/// - the byte before the next valid record is zero (a complete record's last byte never is:
///   its trailer is 0xA5), or
/// - some page of the damaged stretch ends in zeros that reach back to the damage or to the
///   page's start (a page the OS never wrote back still reads as the preallocated zeros).
/// Anything else is corruption, and the log refuses to open rather than cut acknowledged data.
public enum SegmentScanner {
    public struct Damage: Sendable, Equatable {
        /// Offset of the first invalid record.
        public var offset: Int
        public var defect: LogFormat.Defect
        /// Offset of the first valid record after the damage, if any.
        public var nextValidOffset: Int?
        /// How many valid records lie after the damage (they are lost if the tail is cut).
        public var validRecordsAfter: Int
        /// True when the damage looks like writes that never reached the disk (see above).
        public var isLostWrite: Bool
    }

    public struct Result: Sendable, Equatable {
        public var recordCount = 0
        public var lastIndex: UInt64?
        public var lastTerm: UInt64 = 0
        /// Offset just past the last valid record.
        public var validEnd = 0
        public var damage: Damage?
    }

    /// Scans `bytes` expecting the first record to have index `firstIndex`; calls `visit` for each
    /// valid record in order, up to the first damage.
    public static func scan<E: Error>(
        _ bytes: UnsafeRawBufferPointer, firstIndex: UInt64,
        visit: (LogFormat.Record) throws(E) -> Void
    ) throws(E) -> Result {
        var result = Result()
        var offset = 0
        var expected = firstIndex
        while true {
            // At the end of the bytes, decode answers `.end`.
            switch LogFormat.decode(bytes, at: offset) {
            case .record(let record):
                guard record.index == expected else {
                    result.damage = describe(bytes, at: offset, defect: .indexOutOfSequence, after: expected &- 1)
                    return result
                }
                try visit(record)
                result.recordCount += 1
                result.lastIndex = record.index
                result.lastTerm = record.term
                expected &+= 1
                offset += record.size
                result.validEnd = offset
            case .end:
                if !isZero(bytes, from: offset) {
                    result.damage = describe(bytes, at: offset, defect: .zeroHeaderBeforeData, after: expected &- 1)
                }
                return result
            case .defect(let defect):
                result.damage = describe(bytes, at: offset, defect: defect, after: expected &- 1)
                return result
            }
        }
    }

    /// Scans without visiting records.
    public static func scan(_ bytes: UnsafeRawBufferPointer, firstIndex: UInt64) -> Result {
        scan(bytes, firstIndex: firstIndex) { (_: LogFormat.Record) throws(Never) in }
    }

    private static func describe(
        _ bytes: UnsafeRawBufferPointer, at offset: Int, defect: LogFormat.Defect, after lastGood: UInt64
    ) -> Damage {
        var damage = Damage(offset: offset, defect: defect, nextValidOffset: nil, validRecordsAfter: 0, isLostWrite: true)
        // Look for valid records after the damage, at every aligned offset. Candidates are
        // rejected on their length before any checksum is computed, so garbage scans quickly.
        var probe = offset + LogFormat.alignment
        while probe + LogFormat.headerSize <= bytes.count {
            if case .record(let record) = LogFormat.decode(bytes, at: probe), record.index > lastGood {
                if damage.nextValidOffset == nil { damage.nextValidOffset = probe }
                damage.validRecordsAfter += 1
                probe += record.size
            } else {
                probe += LogFormat.alignment
            }
        }
        if let next = damage.nextValidOffset {
            damage.isLostWrite = bytes[next - 1] == 0 || hasUnwrittenPage(bytes, from: offset, to: next)
        }
        return damage
    }

    /// True if a page boundary b in (start, end] has zeros from max(start, b - page) up to b.
    private static func hasUnwrittenPage(_ bytes: UnsafeRawBufferPointer, from start: Int, to end: Int) -> Bool {
        let page = LogFormat.pageSize
        var boundary = (start / page + 1) * page
        while boundary <= end {
            let from = max(start, boundary - page)
            if isZero(bytes, from: from, to: boundary) { return true }
            boundary += page
        }
        return false
    }

    static func isZero(_ bytes: UnsafeRawBufferPointer, from start: Int, to end: Int? = nil) -> Bool {
        let end = end ?? bytes.count
        var i = start
        while i < end && i % 8 != 0 { if bytes[i] != 0 { return false }; i += 1 }
        let base = bytes.baseAddress!
        while i + 8 <= end {
            if base.loadUnaligned(fromByteOffset: i, as: UInt64.self) != 0 { return false }
            i += 8
        }
        while i < end { if bytes[i] != 0 { return false }; i += 1 }
        return true
    }
}
