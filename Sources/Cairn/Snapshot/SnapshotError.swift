import CairnStorage

/// Why a snapshot or the manifest could not be written or read. Every case names the file.
public enum SnapshotError: Error, Sendable, Equatable, CustomStringConvertible {
    case disk(DiskError)
    /// The file is not a valid LZ4 frame (truncated, a flipped bit caught by its checksums).
    case compression(file: String, LZ4Error)
    /// The frame decompressed but its content is not a valid snapshot.
    case content(file: String, SnapshotFormat.DecodeError)
    /// The snapshot's header disagrees with its name.
    case misnamed(file: String, headerIndex: UInt64)
    case manifest(file: String, reason: String)

    public var description: String {
        switch self {
        case .disk(let error): return error.description
        case .compression(let file, let error): return "\(file): \(error)"
        case .content(let file, let error): return "\(file): \(error)"
        case .misnamed(let file, let index): return "\(file): its header says index \(index)"
        case .manifest(let file, let reason): return "\(file): \(reason)"
        }
    }
}
