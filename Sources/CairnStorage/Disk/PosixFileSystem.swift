#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage

/// The real disk: every syscall the engine makes lives in this file.
///
/// ```swift
/// let fs = PosixFileSystem()
/// let file = try fs.open("/tmp/data/log-1.seg", create: true)
/// try file.preallocate(size: 64 << 20)
/// ```
public struct PosixFileSystem: FileSystem {
    public init() {}

    public func open(_ path: FilePath, create: Bool) throws(DiskError) -> any DiskFile {
        do {
            let fd = try FileDescriptor.open(
                path, .readWrite, options: create ? [.create, .closeOnExec] : [.closeOnExec],
                permissions: create ? [.ownerReadWrite, .groupRead, .otherRead] : nil)
            return PosixFileHandle(path: path, fd: fd)
        } catch {
            throw DiskError(.open, path, error as? Errno ?? .ioError)
        }
    }

    public func listDirectory(_ path: FilePath) throws(DiskError) -> [String] {
        guard let dir = opendir(path.string) else { throw DiskError(.list, path, Errno(rawValue: errno)) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    public func createDirectory(_ path: FilePath) throws(DiskError) {
        if fileExists(path) { return }
        let parent = path.removingLastComponent()
        if !parent.isEmpty, parent != path, !fileExists(parent) { try createDirectory(parent) }
        if mkdir(path.string, 0o755) != 0 && errno != EEXIST {
            throw DiskError(.createDirectory, path, Errno(rawValue: errno))
        }
    }

    public func fileExists(_ path: FilePath) -> Bool {
        var info = stat()
        return stat(path.string, &info) == 0
    }

    public func remove(_ path: FilePath) throws(DiskError) {
        if unlink(path.string) != 0 { throw DiskError(.remove, path, Errno(rawValue: errno)) }
    }

    public func rename(_ source: FilePath, to destination: FilePath) throws(DiskError) {
        #if canImport(Glibc) || canImport(Musl)
        let result = Glibc.rename(source.string, destination.string)
        #else
        let result = Darwin.rename(source.string, destination.string)
        #endif
        if result != 0 { throw DiskError(.rename, source, Errno(rawValue: errno)) }
    }

    public func syncDirectory(_ path: FilePath) throws(DiskError) {
        let fd = Glibc.open(path.string, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw DiskError(.syncDirectory, path, Errno(rawValue: errno)) }
        defer { Glibc.close(fd) }
        if fsync(fd) != 0 { throw DiskError(.syncDirectory, path, Errno(rawValue: errno)) }
    }

    public func lock(_ path: FilePath) throws(DiskError) -> any FileLock {
        let fd = Glibc.open(path.string, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 { throw DiskError(.lock, path, Errno(rawValue: errno)) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            Glibc.close(fd)
            throw DiskError(.lock, path, Errno(rawValue: code))
        }
        return PosixFileLock(fd: fd)
    }
}

final class PosixFileLock: FileLock, @unchecked Sendable {
    private var fd: Int32
    private let guardLock = Lock()
    init(fd: Int32) { self.fd = fd }
    func unlock() {
        guardLock.withLock {
            if fd >= 0 { flock(fd, LOCK_UN); Glibc.close(fd); fd = -1 }
        }
    }
    deinit { unlock() }
}

/// A POSIX file. After ``mapForWriting(size:)`` writes inside the mapping are `memcpy`s into
/// the page cache: they reach the OS (and survive `kill -9`) without a syscall, and
/// `fdatasync` makes them durable exactly as it does for `pwrite`.
///
/// Thread safety: reads, writes, `syncData` and `prefault` may run concurrently; mapping,
/// truncating and closing must not race with writes (the log serialises them).
final class PosixFileHandle: DiskFile, @unchecked Sendable {
    let path: FilePath
    private let fd: FileDescriptor
    private var mapping: UnsafeMutableRawPointer?
    private var mappedSize = 0
    private var closed = false
    /// Held by `prefault` (on another thread than the writer's) and by whatever unmaps: the
    /// mapping cannot go, and its address be reused, under a prefault.
    private let mappingLock = Lock()

    init(path: FilePath, fd: FileDescriptor) {
        self.path = path
        self.fd = fd
    }

    deinit {
        unmap()
        if !closed { try? fd.close() }
    }

    func size() throws(DiskError) -> Int {
        var info = stat()
        if fstat(fd.rawValue, &info) != 0 { throw DiskError(.stat, path, Errno(rawValue: errno)) }
        return Int(info.st_size)
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(DiskError) -> Int {
        while true {
            let n = pread(fd.rawValue, buffer.baseAddress, buffer.count, off_t(offset))
            if n >= 0 { return n }
            if errno != EINTR { throw DiskError(.read, path, Errno(rawValue: errno)) }
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(DiskError) {
        if let mapping, offset + bytes.count <= mappedSize {
            if let base = bytes.baseAddress { (mapping + offset).copyMemory(from: base, byteCount: bytes.count) }
            return
        }
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd.rawValue, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw DiskError(.write, path, Errno(rawValue: errno))
            }
            done += n
        }
    }

    func syncData() throws(DiskError) {
        #if os(Linux)
        let result = fdatasync(fd.rawValue)
        #else
        let result = fsync(fd.rawValue)
        #endif
        if result != 0 { throw DiskError(.sync, path, Errno(rawValue: errno)) }
    }

    func truncate(to size: Int) throws(DiskError) {
        if size < mappedSize { unmap() }
        if ftruncate(fd.rawValue, off_t(size)) != 0 { throw DiskError(.truncate, path, Errno(rawValue: errno)) }
    }

    func preallocate(size: Int) throws(DiskError) {
        #if os(Linux)
        let result = posix_fallocate(fd.rawValue, 0, off_t(size))
        if result != 0 { throw DiskError(.preallocate, path, Errno(rawValue: result)) }
        #else
        if try self.size() < size { try truncate(to: size) }
        #endif
    }

    func mapForWriting(size: Int) throws(DiskError) {
        unmap()
        guard size > 0 else { return }
        let pointer = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.rawValue, 0)
        if pointer == MAP_FAILED || pointer == nil { throw DiskError(.map, path, Errno(rawValue: errno)) }
        mappingLock.withLock {
            mapping = pointer
            mappedSize = size
        }
    }

    private func unmap() {
        mappingLock.withLock {
            if let mapping { munmap(mapping, mappedSize) }
            mapping = nil
            mappedSize = 0
        }
    }

    func prefault(_ range: Range<Int>) {
        #if os(Linux)
        mappingLock.withLock {
            guard let mapping, range.lowerBound >= 0 else { return }
            let page = Int(sysconf(Int32(_SC_PAGESIZE)))
            let start = range.lowerBound / page * page
            let end = min(range.upperBound, mappedSize)
            guard start < end else { return }
            // MADV_POPULATE_WRITE (Linux 5.14): an older kernel answers EINVAL, and the
            // writer's copies fault as they did.
            _ = madvise(mapping + start, end - start, 23)
        }
        #endif
    }

    func close() throws(DiskError) {
        unmap()
        guard !closed else { return }
        closed = true
        do { try fd.close() } catch { throw DiskError(.close, path, error as? Errno ?? .ioError) }
    }
}
