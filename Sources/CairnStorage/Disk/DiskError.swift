import SystemPackage

/// A failed disk operation: which one, on which path, and the `errno` the OS (or the simulated
/// disk) answered.
public struct DiskError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Operation: String, Sendable {
        case open, read, write, sync, truncate, preallocate, map, close
        case list, createDirectory, remove, rename, syncDirectory, lock, stat
    }

    public var operation: Operation
    public var path: FilePath
    public var errno: Errno

    public init(_ operation: Operation, _ path: FilePath, _ errno: Errno) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    /// True for "no space left on device" (and quota exhaustion).
    public var isOutOfSpace: Bool { errno == .noSpace || errno == .diskQuotaExceeded }

    public var description: String { "\(operation.rawValue) \(path): \(errno)" }
}
