import CairnStorage
import SystemPackage

/// Writing and reading `snapshot-<index>.lz4` files through the ``FileSystem``.
public enum SnapshotFile {
    /// What writing or reading one snapshot measured.
    public struct Stats: Sendable {
        /// The snapshot's header (index and counts).
        public var header: SnapshotFormat.Header
        /// The file's name in the data directory.
        public var file: String
        /// Serialised (uncompressed) bytes.
        public var contentBytes: Int
        /// Bytes on disk.
        public var fileBytes: Int
        /// Wall time of the whole write or read.
        public var seconds: Double
        /// Of `seconds`, the time spent in `fdatasync` (writing: making the file durable).
        public var syncSeconds: Double = 0
        /// Serialised bytes per byte on disk.
        public var compressionRatio: Double { Double(contentBytes) / Double(max(fileBytes, 1)) }
    }

    /// Writes `state` as the snapshot of `header.index`: to a temporary name, `fdatasync`,
    /// renamed into place, and the directory synced, so the file is whole or absent after a
    /// crash. Serialising (a walk of the whole state, bound by memory latency) runs on one
    /// background thread while another compresses and writes the chunks before it. `progress` is told the
    /// content bytes serialised so far, about every MiB.
    @discardableResult
    public static func write(
        _ state: StoreState, header: SnapshotFormat.Header, directory: FilePath, fileSystem: any FileSystem,
        level: Int32 = 1, progress: (@Sendable (Int) -> Void)? = nil
    ) throws(SnapshotError) -> Stats {
        let started = monotonicNanoseconds()
        let name = SnapshotFormat.fileName(index: header.index)
        let temporary = directory.appending(name + ".tmp")
        var contentBytes = 0
        var syncNanoseconds: UInt64 = 0
        let fileBytes: Int
        do {
            let compressor = try LZ4FrameCompressor(level: level)
            let file = try fileSystem.open(temporary, create: true)
            defer { try? file.close() }
            try file.truncate(to: 0)
            let pipe = ChunkPipe(depth: 4)
            let writer = CompressingWriter(compressor: compressor, file: file)
            // Two background threads (see `backgroundNiceness`: writes going on meanwhile keep
            // their core): one serialises (a walk of the whole state), the other keeps the
            // checksum, compresses and writes. This thread waits for both. (Two serialisers over
            // halves of the keys were slower on two cores: the walk needs a core of its own, and
            // so does LZ4.)
            startThread(name: "cairn-snapshot-lz4", background: true) { writer.run(pipe) }
            let counter = Counter()
            let progressLock = Lock()
            @Sendable func put(_ chunk: UnsafeRawBufferPointer) throws {
                guard pipe.put(Array(chunk)) else { throw writer.failure ?? SnapshotError.disk(DiskError(.write, temporary, .ioError)) }
                let total = counter.add(chunk.count)
                if let progress { progressLock.withLock { progress(total) } }
            }
            let failure = Failure()
            let walked = Latch()
            startThread(name: "cairn-snapshot-walk", background: true) {
                defer { walked.raise() }
                do {
                    var out = ContentWriter(chunkSize: 1 << 20, checksum: false)
                    SnapshotFormat.encodeHeader(header, into: &out)
                    for db in 0..<StoreState.databaseCount { try SnapshotFormat.encodeKeys(state.keyspace(db).entries, db: db, into: &out, put) }
                    try SnapshotFormat.encodeNodes(state.tree.nodes, into: &out, put)
                    SnapshotFormat.encodeSessions(state.tree.sessions, into: &out)
                    try out.flush(force: true, put)
                } catch { failure.record(error) }
                if failure.error == nil { _ = pipe.putFooter() }
                pipe.close()
            }
            // Both threads are done before this returns, even when the writer failed first (the
            // walk then stops at its next chunk): nothing of this snapshot runs on afterwards.
            let writerFailure = writer.wait()
            walked.wait()
            if let writerFailure { throw writerFailure }
            if let error = failure.error { throw error }
            contentBytes = counter.value + SnapshotFormat.footerSize
            fileBytes = writer.offset
            let syncStart = monotonicNanoseconds()
            try file.syncData()
            syncNanoseconds = monotonicNanoseconds() - syncStart
        } catch let error as DiskError {
            throw .disk(error)
        } catch let error as LZ4Error {
            throw .compression(file: name, error)
        } catch let error as SnapshotError {
            throw error
        } catch {
            preconditionFailure("unexpected error \(error)")
        }
        do {
            try fileSystem.rename(temporary, to: directory.appending(name))
            try fileSystem.syncDirectory(directory)
        } catch { throw .disk(error) }
        return Stats(header: header, file: name, contentBytes: contentBytes, fileBytes: fileBytes,
                     seconds: Double(monotonicNanoseconds() - started) / 1e9, syncSeconds: Double(syncNanoseconds) / 1e9)
    }

    /// The decompressed content of a snapshot file (checksums of the LZ4 frame verified).
    public static func content(_ path: FilePath, fileSystem: any FileSystem) throws(SnapshotError) -> (content: [UInt8], fileBytes: Int) {
        let name = path.lastComponent?.string ?? path.string
        var compressed: [UInt8] = []
        let count: Int
        do {
            let file = try fileSystem.open(path, create: false)
            defer { try? file.close() }
            count = try file.readAll(into: &compressed)
        } catch { throw .disk(error) }
        let result: Result<[UInt8], LZ4Error> = compressed.withUnsafeBytes { raw in
            do throws(LZ4Error) { return .success(try LZ4Frame.decompress(UnsafeRawBufferPointer(rebasing: raw[0..<count]))) } catch { return .failure(error) }
        }
        switch result {
        case .success(let content): return (content, count)
        case .failure(let error): throw .compression(file: name, error)
        }
    }

    /// Reads, verifies and decodes a snapshot file.
    public static func read(_ path: FilePath, fileSystem: any FileSystem) throws(SnapshotError) -> (StoreState, Stats) {
        let started = monotonicNanoseconds()
        let name = path.lastComponent?.string ?? path.string
        let (content, fileBytes) = try Self.content(path, fileSystem: fileSystem)
        let (header, state): (SnapshotFormat.Header, StoreState)
        do {
            (header, state) = try withBytes(content) { (raw) throws(SnapshotFormat.DecodeError) in try SnapshotFormat.decode(raw) }
        } catch { throw .content(file: name, error) }
        if let named = SnapshotFormat.index(fromFileName: name), named != header.index { throw .misnamed(file: name, headerIndex: header.index) }
        return (state, Stats(header: header, file: name, contentBytes: content.count, fileBytes: fileBytes,
                             seconds: Double(monotonicNanoseconds() - started) / 1e9))
    }
}

/// A bounded queue of content chunks from the serialisers to the compressing writer; an empty
/// chunk after the last one asks for the footer (end tag and checksum).
final class ChunkPipe: @unchecked Sendable {
    private let lock = ConditionLock()
    private var chunks: [[UInt8]] = []
    private var closed = false
    private var failed = false
    private let depth: Int

    init(depth: Int) { self.depth = depth }

    /// Queues a chunk, waiting while the queue is full; false once the consumer has failed.
    func put(_ chunk: [UInt8]) -> Bool {
        lock.withLock {
            while chunks.count >= depth && !failed { lock.wait() }
            if failed { return false }
            chunks.append(chunk)
            lock.broadcast()
            return true
        }
    }

    /// The next chunk, or nil once closed and drained.
    func take() -> [UInt8]? {
        lock.withLock {
            while chunks.isEmpty && !closed { lock.wait() }
            if chunks.isEmpty { return nil }
            let chunk = chunks.removeFirst()
            lock.broadcast()
            return chunk
        }
    }

    /// Asks for the footer once every record is queued.
    func putFooter() -> Bool { put([]) }

    func close() { lock.withLock { closed = true; lock.broadcast() } }
    func fail() { lock.withLock { failed = true; lock.broadcast() } }
}

/// Compresses chunks into the LZ4 frame and writes them, on its own thread.
final class CompressingWriter: @unchecked Sendable {
    private let compressor: LZ4FrameCompressor
    private let file: any DiskFile
    private let finished = Latch()
    private(set) var offset = 0
    /// Set before the pipe fails and before `finished` is raised, so a reader that saw either
    /// sees it.
    private(set) var failure: SnapshotError?

    init(compressor: LZ4FrameCompressor, file: any DiskFile) {
        self.compressor = compressor
        self.file = file
    }

    func run(_ pipe: ChunkPipe) {
        do throws(SnapshotError) {
            try put(try lz4 { () throws(LZ4Error) in try compressor.begin() })
            var crc: UInt32 = 0
            while let chunk = pipe.take() {
                if chunk.isEmpty {
                    // The footer: the end tag, then the checksum of everything before it.
                    let end = [SnapshotFormat.endTag]
                    crc = end.withUnsafeBytes { CRC32C.checksum($0, extending: crc) }
                    var footer = end
                    withUnsafeBytes(of: crc.littleEndian) { footer.append(contentsOf: $0) }
                    try withBytes(footer) { (raw) throws(SnapshotError) in try put(try compress(raw)) }
                    continue
                }
                try withBytes(chunk) { (raw) throws(SnapshotError) in
                    crc = CRC32C.checksum(raw, extending: crc)
                    try put(try compress(raw))
                }
            }
            try put(try lz4 { () throws(LZ4Error) in try compressor.end() })
        } catch {
            failure = error
            pipe.fail()
        }
        finished.raise()
    }

    private func lz4(_ body: () throws(LZ4Error) -> UnsafeRawBufferPointer) throws(SnapshotError) -> UnsafeRawBufferPointer {
        do { return try body() } catch { throw .compression(file: file.path.lastComponent?.string ?? "", error) }
    }

    private func compress(_ raw: UnsafeRawBufferPointer) throws(SnapshotError) -> UnsafeRawBufferPointer {
        do { return try compressor.update(raw) } catch { throw .compression(file: file.path.lastComponent?.string ?? "", error) }
    }

    private func put(_ bytes: UnsafeRawBufferPointer) throws(SnapshotError) {
        guard bytes.count > 0 else { return }
        do { try file.write(bytes, at: offset) } catch { throw .disk(error) }
        offset += bytes.count
    }

    /// Waits for the writer to finish; its failure, if any.
    func wait() -> SnapshotError? {
        finished.wait()
        return failure
    }
}

/// The first error of several threads.
final class Failure: @unchecked Sendable {
    private let lock = Lock()
    private var first: (any Error)?
    func record(_ error: any Error) { lock.withLock { if first == nil { first = error } } }
    var error: (any Error)? { lock.withLock { first } }
}

/// A flag one thread raises once and others wait for.
final class Latch: @unchecked Sendable {
    private let lock = ConditionLock()
    private var raised = false
    func raise() { lock.withLock { raised = true; lock.broadcast() } }
    func wait() { lock.withLock { while !raised { lock.wait() } } }
}

/// A running total shared by threads.
final class Counter: @unchecked Sendable {
    private let lock = Lock()
    private var total = 0
    func add(_ amount: Int) -> Int { lock.withLock { total += amount; return total } }
    var value: Int { lock.withLock { total } }
}

