import CairnStorage
import SystemPackage

/// A disk in memory that knows which bytes are durable, for crash and fault tests.
///
/// It keeps, per file, the bytes a power cut would leave (`durable`) and the operations since
/// the last ``DiskFile/syncData()``; per directory, the entries changes since the last
/// ``syncDirectory(_:)``. ``crash(_:using:)`` throws away what a power cut may throw away, in
/// one of the ways a real disk and page cache may (``CrashMode``); every handle and lock opened
/// before it becomes invalid, as if the process had died.
///
/// Faults: ``inject(_:)`` makes chosen calls fail with an `errno` (EIO, ENOSPC, ...), and
/// ``capacity`` makes writes past a total size fail with ENOSPC.
///
/// ```swift
/// let disk = SimulatedFileSystem()
/// let log = try Log.open(directory: "/data", fileSystem: disk)
/// ...
/// var rng = SplitMix64(seed: 7)
/// disk.crash(.random, using: &rng)
/// ```
public final class SimulatedFileSystem: FileSystem, @unchecked Sendable {
    /// How a crash treats what was not synced.
    public enum CrashMode: Sendable, CaseIterable, Equatable {
        /// The process died but the OS did not: everything written is kept.
        case processKill
        /// Only synced bytes survive.
        case dropUnsynced
        /// Unsynced operations are kept in order up to one torn at a random byte.
        case tornWrite
        /// Like `tornWrite`, but the torn write's range reads as zeros (its size reached the
        /// disk, its data did not).
        case zeroFilledWrite
        /// Each dirty 4 KiB page is kept or lost independently: writeback in any order.
        case reorderedPages
        /// One of the power-cut modes above, chosen at random.
        case random
    }

    /// A call that fails on demand.
    public struct Fault: Sendable {
        public var operation: DiskError.Operation
        /// Only calls on a path containing this string (nil: any path).
        public var pathContains: String?
        public var errno: Errno
        /// Matching calls to let through before failing.
        public var skip: Int
        /// How many times to fail (then the fault is gone).
        public var count: Int

        public init(_ operation: DiskError.Operation, pathContains: String? = nil, errno: Errno = .ioError, skip: Int = 0, count: Int = .max) {
            self.operation = operation
            self.pathContains = pathContains
            self.errno = errno
            self.skip = skip
            self.count = count
        }
    }

    enum Operation {
        case write(offset: Int, bytes: [UInt8])
        case resize(Int)
    }

    final class File {
        var current: [UInt8] = []
        var durable: [UInt8] = []
        var unsynced: [Operation] = []
    }

    private enum EntryChange {
        case add(String, File)
        case remove(String)
        case rename(String, String)
    }

    private let lock = Lock()
    private var entries: [String: File] = [:]
    private var durableEntries: [String: File] = [:]
    private var directories: Set<String> = ["/"]
    private var unsyncedEntryChanges: [String: [EntryChange]] = [:]
    private var heldLocks: Set<String> = []
    private var faults: [Fault] = []
    private var generation = 0
    private var operationCount = 0
    private var scheduledCrash: (at: Int, mode: CrashMode, rng: SplitMix64)?

    /// Disk operations performed so far (each FileSystem and DiskFile call counts one).
    public var operations: Int { lock.withLock { operationCount } }

    /// Crashes, in `mode`, just before the `operation`-th disk operation from now: that call and
    /// every later one on handles opened before fails with EBADF, as if the process had died
    /// there. Deterministic: the same seed and the same sequence of calls crash the same way.
    public func scheduleCrash(afterOperations operation: Int, mode: CrashMode, seed: UInt64) {
        lock.withLock { scheduledCrash = (operationCount + operation, mode, SplitMix64(seed: seed)) }
    }

    /// True once a scheduled crash has happened (and until the next one is scheduled).
    public var hasCrashed: Bool { lock.withLock { crashedByScheduler } }
    private var crashedByScheduler = false

    /// When set, writes and preallocations that would take the total size of all files past
    /// this many bytes fail with ENOSPC.
    public var capacity: Int? {
        get { lock.withLock { capacityStorage } }
        set { lock.withLock { capacityStorage = newValue } }
    }
    private var capacityStorage: Int?

    public init() {}

    public func inject(_ fault: Fault) { lock.withLock { faults.append(fault) } }
    public func clearFaults() { lock.withLock { faults.removeAll() } }

    /// Total bytes of all files, as the OS shows them now.
    public var usedBytes: Int { lock.withLock { entries.values.reduce(0) { $0 + $1.current.count } } }

    /// What a file holds now (nil if absent).
    public func contents(_ path: FilePath) -> [UInt8]? { lock.withLock { entries[path.string]?.current } }

    /// Replaces a file's bytes, durably (to plant corruption in tests).
    public func setContents(_ path: FilePath, _ bytes: [UInt8]) {
        lock.withLock {
            let file = entries[path.string] ?? File()
            file.current = bytes
            file.durable = bytes
            file.unsynced = []
            entries[path.string] = file
            durableEntries[path.string] = file
        }
    }

    // MARK: Crash

    /// Loses what a crash of kind `mode` may lose. Open handles and locks die with the "process".
    public func crash<R: RandomNumberGenerator>(_ mode: CrashMode, using rng: inout R) {
        lock.withLock { crashLocked(mode, using: &rng) }
    }

    private func crashLocked<R: RandomNumberGenerator>(_ mode: CrashMode, using rng: inout R) {
        scheduledCrash = nil  // a crash, scheduled or not, ends the "process" that scheduled it
        do {
            var mode = mode
            if mode == .random {
                mode = [.dropUnsynced, .tornWrite, .zeroFilledWrite, .reorderedPages].randomElement(using: &rng)!
            }
            generation += 1
            heldLocks.removeAll()
            if mode == .processKill { return }
            // Directory entries: a random prefix of each directory's unsynced changes survives.
            var survivingEntries = durableEntries
            for (_, changes) in unsyncedEntryChanges {
                let kept = Int.random(in: 0...changes.count, using: &rng)
                for change in changes.prefix(kept) { Self.apply(change, to: &survivingEntries) }
            }
            unsyncedEntryChanges.removeAll()
            var rebuilt: [String: File] = [:]
            var done: [ObjectIdentifier: File] = [:]
            for (path, file) in survivingEntries {
                let key = ObjectIdentifier(file)
                if let already = done[key] { rebuilt[path] = already; continue }
                let fresh = File()
                fresh.current = Self.survivor(of: file, mode: mode, using: &rng)
                fresh.durable = fresh.current
                done[key] = fresh
                rebuilt[path] = fresh
            }
            entries = rebuilt
            durableEntries = rebuilt
        }
    }

    public func crash(_ mode: CrashMode, seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        crash(mode, using: &rng)
    }

    private static func apply(_ change: EntryChange, to table: inout [String: File]) {
        switch change {
        case .add(let path, let file): table[path] = file
        case .remove(let path): table[path] = nil
        case .rename(let from, let to):
            if let file = table[from] { table[to] = file; table[from] = nil }
        }
    }

    private static func survivor<R: RandomNumberGenerator>(of file: File, mode: CrashMode, using rng: inout R) -> [UInt8] {
        var bytes = file.durable
        let operations = file.unsynced
        switch mode {
        case .processKill, .random:
            return file.current
        case .dropUnsynced:
            return bytes
        case .tornWrite, .zeroFilledWrite:
            let kept = Int.random(in: 0...operations.count, using: &rng)
            for operation in operations.prefix(kept) { perform(operation, on: &bytes) }
            if kept < operations.count, case .write(let offset, let data) = operations[kept] {
                if mode == .tornWrite {
                    let cut = Int.random(in: 0..<max(1, data.count), using: &rng)
                    perform(.write(offset: offset, bytes: Array(data.prefix(cut))), on: &bytes)
                } else {
                    perform(.write(offset: offset, bytes: [UInt8](repeating: 0, count: data.count)), on: &bytes)
                }
            }
            return bytes
        case .reorderedPages:
            let current = file.current
            let size = Bool.random(using: &rng) ? current.count : bytes.count
            var result = [UInt8](repeating: 0, count: size)
            let page = 4096
            var start = 0
            while start < size {
                let end = min(size, start + page)
                let useCurrent = Bool.random(using: &rng)
                for i in start..<end {
                    if useCurrent { result[i] = i < current.count ? current[i] : 0 } else { result[i] = i < bytes.count ? bytes[i] : 0 }
                }
                start = end
            }
            return result
        }
    }

    private static func perform(_ operation: Operation, on bytes: inout [UInt8]) {
        switch operation {
        case .write(let offset, let data):
            if bytes.count < offset + data.count { bytes.append(contentsOf: [UInt8](repeating: 0, count: offset + data.count - bytes.count)) }
            bytes.replaceSubrange(offset..<(offset + data.count), with: data)
        case .resize(let size):
            if size < bytes.count { bytes.removeLast(bytes.count - size) } else { bytes.append(contentsOf: [UInt8](repeating: 0, count: size - bytes.count)) }
        }
    }

    // MARK: Faults (lock held)

    private func checkFault(_ operation: DiskError.Operation, _ path: FilePath) throws(DiskError) {
        operationCount += 1
        if let scheduled = scheduledCrash, operationCount >= scheduled.at {
            var rng = scheduled.rng
            scheduledCrash = nil
            crashedByScheduler = true
            crashLocked(scheduled.mode, using: &rng)
            throw DiskError(operation, path, .badFileDescriptor)
        }
        for i in faults.indices where faults[i].operation == operation {
            if let part = faults[i].pathContains, !path.string.contains(part) { continue }
            if faults[i].skip > 0 { faults[i].skip -= 1; continue }
            let code = faults[i].errno
            faults[i].count -= 1
            if faults[i].count <= 0 { faults.remove(at: i) }
            throw DiskError(operation, path, code)
        }
    }

    private func checkSpace(growth: Int, _ operation: DiskError.Operation, _ path: FilePath) throws(DiskError) {
        guard let capacityStorage, growth > 0 else { return }
        let used = entries.values.reduce(0) { $0 + $1.current.count }
        if used + growth > capacityStorage { throw DiskError(operation, path, .noSpace) }
    }

    // MARK: FileSystem

    public func open(_ path: FilePath, create: Bool) throws(DiskError) -> any DiskFile {
        try lock.withLock { () throws(DiskError) -> any DiskFile in
            try checkFault(.open, path)
            if entries[path.string] == nil {
                guard create else { throw DiskError(.open, path, .noSuchFileOrDirectory) }
                guard directories.contains(parent(of: path)) else { throw DiskError(.open, path, .noSuchFileOrDirectory) }
                let file = File()
                entries[path.string] = file
                unsyncedEntryChanges[parent(of: path), default: []].append(.add(path.string, file))
            }
            return SimulatedFileHandle(disk: self, path: path, file: entries[path.string]!, generation: generation)
        }
    }

    private func parent(of path: FilePath) -> String {
        let parent = path.removingLastComponent().string
        return parent.isEmpty ? "/" : parent
    }

    public func listDirectory(_ path: FilePath) throws(DiskError) -> [String] {
        try lock.withLock { () throws(DiskError) -> [String] in
            try checkFault(.list, path)
            guard directories.contains(path.string) else { throw DiskError(.list, path, .noSuchFileOrDirectory) }
            return entries.keys.compactMap { key in
                let file = FilePath(key)
                return parent(of: file) == path.string ? file.lastComponent?.string : nil
            }
        }
    }

    public func createDirectory(_ path: FilePath) throws(DiskError) {
        try lock.withLock { () throws(DiskError) in
            try checkFault(.createDirectory, path)
            var prefix = path
            while !prefix.isEmpty && prefix.string != "/" {
                directories.insert(prefix.string)
                prefix = prefix.removingLastComponent()
            }
        }
    }

    public func fileExists(_ path: FilePath) -> Bool {
        lock.withLock { entries[path.string] != nil || directories.contains(path.string) }
    }

    public func remove(_ path: FilePath) throws(DiskError) {
        try lock.withLock { () throws(DiskError) in
            try checkFault(.remove, path)
            guard entries[path.string] != nil else { throw DiskError(.remove, path, .noSuchFileOrDirectory) }
            entries[path.string] = nil
            unsyncedEntryChanges[parent(of: path), default: []].append(.remove(path.string))
        }
    }

    public func rename(_ source: FilePath, to destination: FilePath) throws(DiskError) {
        try lock.withLock { () throws(DiskError) in
            try checkFault(.rename, source)
            guard let file = entries[source.string] else { throw DiskError(.rename, source, .noSuchFileOrDirectory) }
            entries[destination.string] = file
            entries[source.string] = nil
            unsyncedEntryChanges[parent(of: source), default: []].append(.rename(source.string, destination.string))
        }
    }

    public func syncDirectory(_ path: FilePath) throws(DiskError) {
        try lock.withLock { () throws(DiskError) in
            try checkFault(.syncDirectory, path)
            for change in unsyncedEntryChanges[path.string] ?? [] { Self.apply(change, to: &durableEntries) }
            unsyncedEntryChanges[path.string] = nil
        }
    }

    public func lock(_ path: FilePath) throws(DiskError) -> any FileLock {
        try lock.withLock { () throws(DiskError) -> any FileLock in
            try checkFault(.lock, path)
            guard !heldLocks.contains(path.string) else { throw DiskError(.lock, path, .wouldBlock) }
            heldLocks.insert(path.string)
            return SimulatedLock(disk: self, path: path.string, generation: generation)
        }
    }

    fileprivate func release(lockAt path: String, generation: Int) {
        lock.withLock { if generation == self.generation { heldLocks.remove(path) } }
    }

    // MARK: Handle operations

    fileprivate func withFile<T>(
        _ handle: SimulatedFileHandle, _ operation: DiskError.Operation,
        _ body: (File) throws(DiskError) -> T
    ) throws(DiskError) -> T {
        try lock.withLock { () throws(DiskError) -> T in
            guard handle.generation == generation, !handle.closed else { throw DiskError(operation, handle.path, .badFileDescriptor) }
            try checkFault(operation, handle.path)
            return try body(handle.file)
        }
    }

    fileprivate func write(_ handle: SimulatedFileHandle, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws(DiskError) {
        try withFile(handle, .write) { (file) throws(DiskError) in
            try checkSpace(growth: offset + bytes.count - file.current.count, .write, handle.path)
            let operation = Operation.write(offset: offset, bytes: Array(bytes))
            Self.perform(operation, on: &file.current)
            file.unsynced.append(operation)
        }
    }

    fileprivate func resize(_ handle: SimulatedFileHandle, to size: Int, growOnly: Bool, _ operation: DiskError.Operation) throws(DiskError) {
        try withFile(handle, operation) { (file) throws(DiskError) in
            if growOnly && size <= file.current.count { return }
            try checkSpace(growth: size - file.current.count, operation, handle.path)
            Self.perform(.resize(size), on: &file.current)
            file.unsynced.append(.resize(size))
        }
    }

    private let syncGate = ConditionLock()
    private var syncsHeld = false

    /// Makes every `syncData` block, before it syncs anything, until ``releaseSyncs()``: a test
    /// can then let writers pile up behind one sync without depending on timing.
    public func holdSyncs() { syncGate.withLock { syncsHeld = true } }

    public func releaseSyncs() {
        syncGate.withLock {
            syncsHeld = false
            syncGate.broadcast()
        }
    }

    private var syncObserver: (@Sendable (FilePath) -> Void)?

    /// Calls `observer` with the file's path at the start of every `syncData`, on the syncing
    /// thread, before anything is synced (nil stops it): a test can see what else had happened
    /// by the time a sync began.
    public func observeSyncs(_ observer: (@Sendable (FilePath) -> Void)?) { syncGate.withLock { syncObserver = observer } }

    fileprivate func sync(_ handle: SimulatedFileHandle) throws(DiskError) {
        let observer = syncGate.withLock {
            while syncsHeld { syncGate.wait() }
            return syncObserver
        }
        observer?(handle.path)
        try withFile(handle, .sync) { file in
            for operation in file.unsynced { Self.perform(operation, on: &file.durable) }
            file.unsynced.removeAll()
        }
    }
}

final class SimulatedFileHandle: DiskFile, @unchecked Sendable {
    let disk: SimulatedFileSystem
    let path: FilePath
    let file: SimulatedFileSystem.File
    let generation: Int
    var closed = false

    init(disk: SimulatedFileSystem, path: FilePath, file: SimulatedFileSystem.File, generation: Int) {
        self.disk = disk
        self.path = path
        self.file = file
        self.generation = generation
    }

    func size() throws(DiskError) -> Int { try disk.withFile(self, .stat) { $0.current.count } }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(DiskError) -> Int {
        try disk.withFile(self, .read) { file in
            let count = max(0, min(buffer.count, file.current.count - offset))
            if count > 0 {
                file.current.withUnsafeBytes { source in
                    buffer.baseAddress!.copyMemory(from: source.baseAddress! + offset, byteCount: count)
                }
            }
            return count
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(DiskError) { try disk.write(self, bytes, at: offset) }
    func syncData() throws(DiskError) { try disk.sync(self) }
    func truncate(to size: Int) throws(DiskError) { try disk.resize(self, to: size, growOnly: false, .truncate) }
    func preallocate(size: Int) throws(DiskError) { try disk.resize(self, to: size, growOnly: true, .preallocate) }
    func mapForWriting(size: Int) throws(DiskError) { try disk.withFile(self, .map) { _ in } }
    func close() throws(DiskError) {
        try disk.withFile(self, .close) { _ in }
        closed = true
    }
}

final class SimulatedLock: FileLock, @unchecked Sendable {
    let disk: SimulatedFileSystem
    let path: String
    let generation: Int
    private var released = false
    init(disk: SimulatedFileSystem, path: String, generation: Int) {
        self.disk = disk
        self.path = path
        self.generation = generation
    }
    func unlock() {
        guard !released else { return }
        released = true
        disk.release(lockAt: path, generation: generation)
    }
    deinit { unlock() }
}
