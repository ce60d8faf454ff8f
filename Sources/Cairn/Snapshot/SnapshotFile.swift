import CairnStorage
import SystemPackage

/// Writing and reading `snapshot-<index>.lz4` files through the ``FileSystem``.
public enum SnapshotFile {
    /// What writing or reading one snapshot measured.
    public struct Stats: Sendable {
        public var header: SnapshotFormat.Header
        public var file: String
        /// Serialised (uncompressed) bytes.
        public var contentBytes: Int
        /// Bytes on disk.
        public var fileBytes: Int
        public var seconds: Double
        /// Of `seconds`, the time spent in `fdatasync` (writing: making the file durable).
        public var syncSeconds: Double = 0
        public var compressionRatio: Double { Double(contentBytes) / Double(max(fileBytes, 1)) }
    }

    /// Writes `state` as the snapshot of `header.index`: to a temporary name, `fdatasync`,
    /// renamed into place, and the directory synced, so the file is whole or absent after a
    /// crash. `progress` is told the content bytes written so far, about every MiB.
    @discardableResult
    public static func write(
        _ state: StoreState, header: SnapshotFormat.Header, directory: FilePath, fileSystem: any FileSystem,
        level: Int32 = 1, progress: ((Int) -> Void)? = nil
    ) throws(SnapshotError) -> Stats {
        let started = monotonicNanoseconds()
        let name = SnapshotFormat.fileName(index: header.index)
        let temporary = directory.appending(name + ".tmp")
        var contentBytes = 0
        var offset = 0
        var syncNanoseconds: UInt64 = 0
        do {
            let compressor = try LZ4FrameCompressor(level: level)
            let file = try fileSystem.open(temporary, create: true)
            defer { try? file.close() }
            try file.truncate(to: 0)
            func put(_ bytes: UnsafeRawBufferPointer) throws(DiskError) {
                guard bytes.count > 0 else { return }
                try file.write(bytes, at: offset)
                offset += bytes.count
            }
            try put(compressor.begin())
            try SnapshotFormat.encode(state, header: header) { chunk in
                try put(compressor.update(chunk))
                contentBytes += chunk.count
                progress?(contentBytes)
            }
            try put(compressor.end())
            let syncStart = monotonicNanoseconds()
            try file.syncData()
            syncNanoseconds = monotonicNanoseconds() - syncStart
        } catch let error as DiskError {
            throw .disk(error)
        } catch let error as LZ4Error {
            throw .compression(file: name, error)
        } catch {
            preconditionFailure("unexpected error \(error)")
        }
        do {
            try fileSystem.rename(temporary, to: directory.appending(name))
            try fileSystem.syncDirectory(directory)
        } catch { throw .disk(error) }
        return Stats(header: header, file: name, contentBytes: contentBytes, fileBytes: offset,
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
