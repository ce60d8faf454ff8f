#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Memory for a buffer of many megabytes (a snapshot's content on load, 137 MB for 1M keys, and
/// the ring its file is read through): mapped directly and, on Linux, asked for transparent
/// huge pages, so the kernel's first touch of it costs one fault per 2 MiB instead of one per
/// 4 KiB (about 33k faults for 137 MB). Below 4 MiB it is plain `malloc` memory.
///
/// ```swift
/// guard let buffer = LargeBuffer(byteCount: 117 << 20) else { throw ... }  // nil: no memory
/// defer { buffer.release() }
/// fill(buffer.bytes)
/// ```
public struct LargeBuffer: @unchecked Sendable {
    /// The memory (uninitialised).
    public let bytes: UnsafeMutableRawBufferPointer
    private let mapped: Bool

    private static let mapFrom = 4 << 20

    /// Nil when the memory cannot be had (a size read from a damaged file must not trap).
    public init?(byteCount: Int) {
        precondition(byteCount >= 0)
        if byteCount >= Self.mapFrom, let memory = Self.map(byteCount) {
            bytes = UnsafeMutableRawBufferPointer(start: memory, count: byteCount)
            mapped = true
        } else {
            guard let memory = malloc(max(byteCount, 1)) else { return nil }
            bytes = UnsafeMutableRawBufferPointer(start: memory, count: byteCount)
            mapped = false
        }
    }

    private static func map(_ count: Int) -> UnsafeMutableRawPointer? {
        let memory = mmap(nil, count, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let memory, memory != MAP_FAILED else { return nil }
        #if os(Linux)
        // A hint: refused (transparent huge pages off), the memory is still good.
        _ = madvise(memory, count, 14 /* MADV_HUGEPAGE */)
        #endif
        return memory
    }

    /// Gives the memory back (once).
    public func release() {
        if mapped { munmap(bytes.baseAddress, bytes.count) } else { free(bytes.baseAddress) }
    }
}
