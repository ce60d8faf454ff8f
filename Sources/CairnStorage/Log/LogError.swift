/// Why the log could not open, append or commit.
public enum LogError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A disk operation failed while opening, checking or repairing.
    case disk(DiskError)
    /// Invalid bytes where valid records must be: in a sealed segment, or in the last segment
    /// with intact records after them. Run `cairn check DIR` to see it, `--fix` to cut there.
    case corruption(file: String, offset: Int, defect: LogFormat.Defect, validRecordsAfter: Int)
    /// The segments do not join up: a segment is missing or holds the wrong records.
    case indexGap(file: String, expected: UInt64, found: UInt64)
    /// A segment other than the last holds no record.
    case emptySegment(file: String)
    /// Another process (or another `Log` in this one) has the directory open.
    case locked(directory: String)
    /// A write or sync failed; the writer accepts nothing more until the log is reopened,
    /// because after a failed `fdatasync` the page cache can no longer be trusted.
    case writerFailed(DiskError)
    case closed
    case payloadTooLarge(size: Int, limit: Int)
    /// `truncate(after:)` was asked to keep an index the log does not have.
    case indexOutOfRange(index: UInt64, first: UInt64, last: UInt64)

    public var description: String {
        switch self {
        case .disk(let error): return "disk error: \(error)"
        case .corruption(let file, let offset, let defect, let after):
            return "corrupt log: \(file) at offset \(offset): \(defect.rawValue)"
                + (after > 0 ? " (\(after) valid records follow it)" : "")
                + "; `cairn check` shows the damage, `cairn check --fix` truncates there"
        case .indexGap(let file, let expected, let found):
            return "log index gap: \(file) starts at index \(found), expected \(expected) (a segment is missing or misnamed)"
        case .emptySegment(let file): return "corrupt log: \(file) is empty but is not the last segment"
        case .locked(let directory): return "\(directory) is in use by another process (LOCK is held)"
        case .writerFailed(let error): return "log writer stopped after a failed write or sync: \(error); reopen to recover"
        case .closed: return "log is closed"
        case .payloadTooLarge(let size, let limit): return "record of \(size) bytes exceeds the limit of \(limit) bytes"
        case .indexOutOfRange(let index, let first, let last):
            return "index \(index) is outside the log's range \(first)...\(last)"
        }
    }
}
