import SystemPackage

/// The disk as the storage layer sees it: a few file and directory operations, each of which
/// may fail. Every syscall the engine makes goes through this protocol, so tests substitute a
/// simulated disk that knows which bytes are durable and can crash or fail on demand
/// (`CairnTesting.SimulatedFileSystem`); production uses ``PosixFileSystem``.
///
/// Durability model (the one POSIX gives): bytes written to a file reach the OS at once and
/// survive the process being killed; they survive a power cut only after ``DiskFile/syncData()``.
/// A new, removed or renamed directory entry survives a power cut only after
/// ``syncDirectory(_:)`` of its directory.
public protocol FileSystem: Sendable {
    /// Opens a file for reading and writing, creating it when `create` is set.
    func open(_ path: FilePath, create: Bool) throws(DiskError) -> any DiskFile
    /// Names of the entries of a directory (no `.` or `..`), in no particular order.
    func listDirectory(_ path: FilePath) throws(DiskError) -> [String]
    /// Creates a directory (and its parents) when it does not exist.
    func createDirectory(_ path: FilePath) throws(DiskError)
    func fileExists(_ path: FilePath) -> Bool
    func remove(_ path: FilePath) throws(DiskError)
    func rename(_ source: FilePath, to destination: FilePath) throws(DiskError)
    /// Makes the directory's entries (creates, removes, renames) durable: `fsync` of the directory.
    func syncDirectory(_ path: FilePath) throws(DiskError)
    /// Takes an exclusive, non-blocking lock on `path` (created if absent) for the life of the
    /// returned object. Fails with `EWOULDBLOCK` when another holder has it.
    func lock(_ path: FilePath) throws(DiskError) -> any FileLock
}

/// An open file. Writes go to the OS at once (a `pwrite`, or a copy into a shared mapping);
/// ``syncData()`` makes them durable.
public protocol DiskFile: AnyObject, Sendable {
    var path: FilePath { get }
    /// The file's size in bytes.
    func size() throws(DiskError) -> Int
    /// Reads up to `buffer.count` bytes at `offset`; returns how many were read (0 at the end).
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(DiskError) -> Int
    /// Writes all of `bytes` at `offset`, extending the file when needed.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(DiskError)
    /// `fdatasync`: everything written so far, and the size, become durable.
    func syncData() throws(DiskError)
    /// Sets the file's size; bytes past the old end read as zeros.
    func truncate(to size: Int) throws(DiskError)
    /// Reserves blocks so that writes below `size` cannot fail for lack of space, and extends
    /// the file to at least `size` (the new bytes read as zeros).
    func preallocate(size: Int) throws(DiskError)
    /// Maps the first `size` bytes for writing, so that later writes below `size` are memory
    /// copies into the page cache instead of syscalls. A hint: a disk that cannot map ignores it.
    func mapForWriting(size: Int) throws(DiskError)
    /// Faults in the mapped pages of `range` for writing, so that the writes that later land
    /// there copy without a page fault each. A hint, safe to call from a thread other than the
    /// writer's; a disk without a mapping (or a kernel without `MADV_POPULATE_WRITE`) ignores it.
    func prefault(_ range: Range<Int>)
    func close() throws(DiskError)
}

extension DiskFile {
    public func prefault(_ range: Range<Int>) {}
}

/// A held lock; released by ``unlock()`` or when the object goes away.
public protocol FileLock: AnyObject, Sendable {
    func unlock()
}

extension DiskFile {
    /// Reads exactly `count` bytes at `offset` (fewer only at the end of the file).
    public func readBytes(at offset: Int, count: Int) throws(DiskError) -> [UInt8] {
        var result = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = try withMutableBytes(&result) { (raw) throws(DiskError) -> Int in
                try read(into: UnsafeMutableRawBufferPointer(rebasing: raw[done...]), at: offset + done)
            }
            if n == 0 { break }
            done += n
        }
        if done < count { result.removeLast(count - done) }
        return result
    }

    /// Reads the whole file into `buffer`, growing it as needed; returns the byte count.
    public func readAll(into buffer: inout [UInt8]) throws(DiskError) -> Int {
        let total = try size()
        if buffer.count < total { buffer = [UInt8](repeating: 0, count: total) }
        var done = 0
        while done < total {
            let n = try withMutableBytes(&buffer) { (raw) throws(DiskError) -> Int in
                try read(into: UnsafeMutableRawBufferPointer(rebasing: raw[done..<total]), at: done)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }
}
