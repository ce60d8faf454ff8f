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
        /// Of `seconds`, the time spent making the file durable (writing: its `fdatasync`, then
        /// the rename and the directory's `fsync`, which waits for the file system's journal).
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
            let chunkSize = 1 << 20
            let pipe = ChunkPipe(depth: 4, chunkSize: chunkSize)
            let writer = CompressingWriter(compressor: compressor, file: file)
            // Two background threads (see `backgroundNiceness`: writes going on meanwhile keep
            // their core): one serialises (a walk of the whole state) and checksums, the other
            // compresses and writes. This thread waits for both. Chunks pass between them in a
            // few buffers that go round (no copy, no fresh pages per chunk). (Two serialisers
            // over halves of the keys were slower on two cores: the walk needs a core of its
            // own, and so does LZ4.)
            startThread(name: "cairn-snapshot-lz4", background: true) { writer.run(pipe) }
            let counter = Counter()
            let progressLock = Lock()
            let failure = Failure()
            let walked = Latch()
            startThread(name: "cairn-snapshot-walk", background: true) {
                defer { walked.raise() }
                do {
                    var out = ContentWriter(chunkSize: chunkSize, buffer: pipe.emptyBuffer())
                    try SnapshotFormat.encodeContent(state, header: header, into: &out) { buffer, count in
                        guard pipe.put(buffer, count: count) else { throw writer.failure ?? SnapshotError.disk(DiskError(.write, temporary, .ioError)) }
                        let total = counter.add(count)
                        if let progress { progressLock.withLock { progress(total) } }
                        return pipe.emptyBuffer()
                    }
                } catch { failure.record(error) }
                pipe.close()
            }
            // Both threads are done before this returns, even when the writer failed first (the
            // walk then stops at its next chunk): nothing of this snapshot runs on afterwards.
            let writerFailure = writer.wait()
            walked.wait()
            if let writerFailure { throw writerFailure }
            if let error = failure.error { throw error }
            contentBytes = counter.value
            fileBytes = writer.offset
            let syncStart = monotonicNanoseconds()
            try file.syncData()
            syncNanoseconds += monotonicNanoseconds() - syncStart
        } catch let error as DiskError {
            throw .disk(error)
        } catch let error as LZ4Error {
            throw .compression(file: name, error)
        } catch let error as SnapshotError {
            throw error
        } catch {
            preconditionFailure("unexpected error \(error)")
        }
        let renameStart = monotonicNanoseconds()
        do {
            try fileSystem.rename(temporary, to: directory.appending(name))
            try fileSystem.syncDirectory(directory)
        } catch { throw .disk(error) }
        syncNanoseconds += monotonicNanoseconds() - renameStart
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
        case .success(let content):
            // The size frame, when there, must tell the truth (a reader allocates by it).
            let size = compressed.withUnsafeBytes { SnapshotFormat.contentSize(file: UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            if let size, size != content.count {
                throw .compression(file: name, LZ4Error(message: "the size frame says \(size) content bytes, the frame holds \(content.count)", offset: count - SnapshotFormat.sizeFrameBytes))
            }
            return (content, count)
        case .failure(let error): throw .compression(file: name, error)
        }
    }

    /// Reads, verifies and decodes a snapshot file. With the size frame at its end (see
    /// ``SnapshotFormat``), other threads read and decompress the file into a buffer of that
    /// size while this one decodes what has arrived; without it, the content is decompressed
    /// whole first.
    ///
    /// The content's own CRC32C is always checked. The LZ4 frame's checksum (XXH32 of the same
    /// content, which `lz4 -d` checks) is checked only when `frameChecksum` is set, as `cairn
    /// check` does: it costs a load 40% of the decompressing thread's time and adds nothing the
    /// CRC32C does not catch but damage to itself. (A file without the size frame is
    /// decompressed whole first, and that checks the XXH32 either way.)
    public static func read(_ path: FilePath, fileSystem: any FileSystem, frameChecksum: Bool = false) throws(SnapshotError) -> (StoreState, Stats) {
        let started = monotonicNanoseconds()
        let name = path.lastComponent?.string ?? path.string
        let file: any DiskFile
        let fileBytes: Int
        var contentBytes: Int?
        do {
            file = try fileSystem.open(path, create: false)
            fileBytes = try file.size()
            if fileBytes >= SnapshotFormat.sizeFrameBytes {
                let last = try file.readBytes(at: fileBytes - SnapshotFormat.sizeFrameBytes, count: SnapshotFormat.sizeFrameBytes)
                contentBytes = last.withUnsafeBytes { SnapshotFormat.contentSize(file: $0) }
            }
        } catch { throw .disk(error) }
        defer { try? file.close() }
        let header: SnapshotFormat.Header, state: StoreState
        if let size = contentBytes {
            // LZ4 expands at most 255 times: a larger size is a lie, not an allocation.
            guard size <= fileBytes * 255 else {
                throw .compression(file: name, LZ4Error(message: "the size frame claims \(size) content bytes, more than \(fileBytes) compressed bytes can hold",
                                                        offset: fileBytes - SnapshotFormat.sizeFrameBytes))
            }
            (header, state) = try decodeWhileDecompressing(file, fileBytes: fileBytes, contentBytes: size, name: name, frameChecksum: frameChecksum)
        } else {
            let content = try Self.content(path, fileSystem: fileSystem).content
            contentBytes = content.count
            do throws(SnapshotFormat.DecodeError) {
                (header, state) = try withBytes(content) { (raw) throws(SnapshotFormat.DecodeError) in try SnapshotFormat.decode(raw) }
            } catch { throw .content(file: name, error) }
        }
        if let named = SnapshotFormat.index(fromFileName: name), named != header.index { throw .misnamed(file: name, headerIndex: header.index) }
        return (state, Stats(header: header, file: name, contentBytes: contentBytes!, fileBytes: fileBytes,
                             seconds: Double(monotonicNanoseconds() - started) / 1e9))
    }

    /// A snapshot's load reads the file this much at a time, round a ring of this many bytes.
    static let readPiece = 2 << 20, readRingBytes = 4 * readPiece

    /// Three threads in a pipeline: one reads the file's LZ4 frame into a ring of a few pieces,
    /// one decompresses what has been read into a buffer of `contentBytes` (keeping the
    /// content's checksum), and this one decodes what has been decompressed. (The decompressing
    /// thread doing the reads as well was slower: the decoder caught up with it and waited.)
    private static func decodeWhileDecompressing(
        _ file: any DiskFile, fileBytes: Int, contentBytes size: Int, name: String, frameChecksum: Bool
    ) throws(SnapshotError) -> (SnapshotFormat.Header, StoreState) {
        let frameBytes = fileBytes - SnapshotFormat.sizeFrameBytes
        // The file is read on a thread of its own, a piece at a time, so that decompression (and
        // so decoding) starts after the first piece, not the whole file (load 0.24 -> 0.22 s in
        // eight interleaved pairs). Pieces go round a ring that stays in the cache, instead of
        // into fresh memory the size of the file that the kernel must zero first. A file of
        // one piece is read here at once.
        let piece = Self.readPiece, ringBytes = min(frameBytes, Self.readRingBytes)
        guard let ringBuffer = LargeBuffer(byteCount: ringBytes) else { throw .disk(DiskError(.read, file.path, .noMemory)) }
        defer { ringBuffer.release() }
        nonisolated(unsafe) let ring = ringBuffer.bytes
        let readProgress = LoadProgress(), usedProgress = LoadProgress()
        let readFinished = Latch()
        let readAll: @Sendable () -> Void = {
            var read = 0
            while read < frameBytes {
                // A piece's slot is free once the piece a ring before it is used up. (A short
                // read leaves the rest of the piece for the next.)
                let pieceStart = read - read % piece, pieceEnd = min(frameBytes, pieceStart + piece)
                if pieceStart >= ringBytes && usedProgress.wait(atLeast: pieceStart - ringBytes + piece) < pieceStart - ringBytes + piece { return }
                let slot = read % ringBytes
                let n: Int
                do throws(DiskError) {
                    n = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: ring[slot..<slot + pieceEnd - read]), at: read)
                } catch { readProgress.fail(.disk(error)); return }
                guard n > 0 else {
                    readProgress.fail(.compression(file: name, LZ4Error(message: "the file ended at byte \(read), before its \(frameBytes) bytes of frame", offset: read)))
                    return
                }
                read += n
                readProgress.publish(read)
            }
            readProgress.finish()
        }
        if frameBytes > piece {
            startThread(name: "cairn-snapshot-read") { readAll(); readFinished.raise() }
        } else {
            readAll()
            readFinished.raise()
            if let failure = readProgress.failure { throw failure }
        }
        defer { readFinished.wait() }
        // The size frame has no checksum of its own: a size no memory can hold is a damaged file.
        // (On huge pages where the kernel allows: load 0.27-0.29 -> 0.25-0.27 s.)
        guard let contentBuffer = LargeBuffer(byteCount: size) else {
            usedProgress.finish()
            throw .compression(file: name, LZ4Error(message: "the size frame claims \(size) content bytes, more than can be allocated", offset: frameBytes))
        }
        defer { contentBuffer.release() }
        let content = contentBuffer.bytes
        let progress = LoadProgress()
        let finished = Latch()
        nonisolated(unsafe) let output = UnsafeMutableRawBufferPointer(rebasing: content[0..<size])
        // The bytes of the frame from `offset` to the end of its piece, once read; none when no
        // more will come.
        let arrived: @Sendable (Int) -> UnsafeRawBufferPointer = { offset in
            let pieceEnd = min(frameBytes, (offset / piece + 1) * piece)
            let upTo = min(pieceEnd, readProgress.wait(atLeast: pieceEnd))
            guard upTo > offset else { return UnsafeRawBufferPointer(start: nil, count: 0) }
            let slot = offset % ringBytes
            return UnsafeRawBufferPointer(rebasing: ring[slot..<slot + upTo - offset])
        }
        startThread(name: "cairn-snapshot-lz4d") {
            defer { usedProgress.finish(); finished.raise() }
            do throws(LZ4Error) {
                let checksum = try decompress(arrived, used: { usedProgress.publish($0) }, into: output, frameChecksum: frameChecksum) { produced in progress.publish(produced) }
                // Other skippable frames may sit between the frame and the size frame, as for any LZ4 reader.
                if checksum.frameEnd < frameBytes {
                    let tail: [UInt8]
                    do throws(DiskError) { tail = try file.readBytes(at: checksum.frameEnd, count: frameBytes - checksum.frameEnd) } catch {
                        progress.fail(.disk(error)); return
                    }
                    let checked = tail.withUnsafeBytes { raw in Result { () throws(LZ4Error) in try LZ4Frame.checkSkippableFrames(raw, from: 0) } }
                    if case .failure(let error) = checked { throw LZ4Error(message: error.message, offset: checksum.frameEnd + error.offset) }
                }
                progress.finish(checksum: checksum.crc)
            } catch { progress.fail(readProgress.failure ?? .compression(file: name, error)) }
        }
        // The other thread is done with the buffers before they are freed, whatever happens here.
        defer { finished.wait() }
        let contentSource = SnapshotContentSource(base: UnsafeRawPointer(content.baseAddress!), total: size,
                                                  available: { progress.wait(atLeast: $0) }, checksum: { progress.checksum })
        let decoded: Result<(SnapshotFormat.Header, StoreState), SnapshotFormat.DecodeError>
        do throws(SnapshotFormat.DecodeError) { decoded = .success(try SnapshotFormat.decode(contentSource)) } catch { decoded = .failure(error) }
        finished.wait()
        // A frame that does not decompress explains whatever the decoder made of it.
        if let failure = progress.failure { throw failure }
        switch decoded {
        case .success(let value): return value
        case .failure(let error): throw .content(file: name, error)
        }
    }

    /// Decompresses the frame whose bytes `arrived(offset)` hands out (in order; none when no
    /// more will come) into `output` (exactly the content's size) a block at a time, telling
    /// `used` how much input is done with and `progress` the content bytes there after each
    /// step; returns the CRC32C of the content but its last 4 bytes, and where the frame ended.
    /// The frame's own checksum is checked only if `frameChecksum` (see ``read(_:fileSystem:frameChecksum:)``).
    private static func decompress(
        _ arrived: (Int) -> UnsafeRawBufferPointer, used: (Int) -> Void,
        into output: UnsafeMutableRawBufferPointer, frameChecksum: Bool, progress: (Int) -> Void
    ) throws(LZ4Error) -> (crc: UInt32, frameEnd: Int) {
        // (The output is one buffer, filled in order and left alone.)
        let decompressor = try LZ4FrameDecompressor(checksums: frameChecksum, stableOutput: true)
        let checksummed = max(0, output.count - 4)
        var crc: UInt32 = 0
        var consumed = 0, produced = 0
        while true {
            let input = arrived(consumed)
            let step = try decompressor.decompress(input, into: UnsafeMutableRawBufferPointer(rebasing: output[produced..<min(produced + LZ4Frame.largestBlock, output.count)]))
            consumed += step.consumed
            used(consumed)
            if step.produced > 0 {
                let upTo = min(produced + step.produced, checksummed)
                if upTo > produced { crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: output[produced..<upTo]), extending: crc) }
                produced += step.produced
                progress(produced)
            }
            if step.ended {
                guard produced == output.count else { throw LZ4Error(message: "content of \(produced) bytes, the size frame says \(output.count)", offset: consumed) }
                return (crc, consumed)
            }
            if step.consumed == 0 && step.produced == 0 {
                // (LZ4F takes in whatever input it is given: no progress means none came, or no room.)
                if produced == output.count { throw LZ4Error(message: "the frame holds more than the \(output.count) content bytes the size frame says", offset: consumed) }
                throw LZ4Error(message: "the frame is truncated", offset: consumed)
            }
        }
    }
}

/// How far a thread of a snapshot's load has got (bytes of the file read, bytes of content
/// decompressed), shared with the thread waiting on it.
final class LoadProgress: @unchecked Sendable {
    private let lock = ConditionLock()
    private var produced = 0
    private var ended = false
    private var crc: UInt32?
    private var error: SnapshotError?

    func publish(_ count: Int) { lock.withLock { produced = count; lock.broadcast() } }
    func finish(checksum: UInt32? = nil) { lock.withLock { crc = checksum; ended = true; lock.broadcast() } }
    func fail(_ failure: SnapshotError) { lock.withLock { error = failure; ended = true; lock.broadcast() } }

    /// Waits until `count` bytes are there or no more will come; the bytes there.
    func wait(atLeast count: Int) -> Int {
        lock.withLock {
            while produced < count && !ended { lock.wait() }
            return produced
        }
    }

    /// The CRC32C the producer kept (the decompressor: of the content but its last 4 bytes);
    /// waits for it to finish (it still checks the frame's end after the last bytes), nil if
    /// it failed.
    var checksum: UInt32? {
        lock.withLock {
            while !ended { lock.wait() }
            return crc
        }
    }
    var failure: SnapshotError? { lock.withLock { error } }
}

/// A bounded queue of content chunks from the serialiser to the compressing writer, and the
/// spare buffers they go back to once compressed.
final class ChunkPipe: @unchecked Sendable {
    private let lock = ConditionLock()
    private var chunks: [(buffer: UnsafeMutableRawBufferPointer, count: Int)] = []
    private var spare: [UnsafeMutableRawBufferPointer] = []
    private var closed = false
    private var failed = false
    private let depth: Int
    private let chunkSize: Int

    init(depth: Int, chunkSize: Int) {
        self.depth = depth
        self.chunkSize = chunkSize
    }

    deinit {
        for chunk in chunks { chunk.buffer.deallocate() }
        for buffer in spare { buffer.deallocate() }
    }

    /// Queues a chunk, waiting while the queue is full, and takes its buffer; false (and the
    /// buffer left with the caller) once the consumer has failed.
    func put(_ buffer: UnsafeMutableRawBufferPointer, count: Int) -> Bool {
        lock.withLock {
            while chunks.count >= depth && !failed { lock.wait() }
            if failed { return false }
            chunks.append((buffer, count))
            lock.broadcast()
            return true
        }
    }

    /// The next chunk (its buffer to be given back with ``recycle(_:)``), or nil once closed
    /// and drained.
    func take() -> (buffer: UnsafeMutableRawBufferPointer, count: Int)? {
        lock.withLock {
            while chunks.isEmpty && !closed { lock.wait() }
            if chunks.isEmpty { return nil }
            let chunk = chunks.removeFirst()
            lock.broadcast()
            return chunk
        }
    }

    /// A buffer for the serialiser to fill: a spare one, or a new one.
    func emptyBuffer() -> UnsafeMutableRawBufferPointer {
        lock.withLock { spare.popLast() } ?? ContentWriter.allocate(chunkSize: chunkSize)
    }

    /// Gives back a chunk's buffer once its bytes are used.
    func recycle(_ buffer: UnsafeMutableRawBufferPointer) { lock.withLock { spare.append(buffer) } }

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
            var contentBytes = 0
            while let chunk = pipe.take() {
                defer { pipe.recycle(chunk.buffer) }
                try put(try compress(UnsafeRawBufferPointer(start: chunk.buffer.baseAddress, count: chunk.count)))
                contentBytes += chunk.count
            }
            try put(try lz4 { () throws(LZ4Error) in try compressor.end() })
            try withBytes(SnapshotFormat.sizeFrame(contentBytes: contentBytes)) { (raw) throws(SnapshotError) in try put(raw) }
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



