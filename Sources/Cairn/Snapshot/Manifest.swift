import CairnStorage
import SystemPackage

/// `MANIFEST`: which snapshots are live (newest first) and where the log must start. Switched
/// atomically (written to `MANIFEST.tmp`, synced, renamed, directory synced), so a crash leaves
/// the old one or the new one. A directory without one has no snapshot: the log starts at 1.
///
/// | part      | encoding                                                        |
/// |-----------|-----------------------------------------------------------------|
/// | magic     | 8 bytes `CAIRNMAN`                                              |
/// | version   | 1 byte, currently 1                                             |
/// | snapshots | varint count (at most 1000), then each snapshot's index, newest first |
/// | checksum  | CRC32C of everything before it, 4 bytes little-endian           |
///
/// The log kept is everything after the *oldest* listed snapshot's index; segments wholly at or
/// below it may be deleted (compaction), so every listed snapshot has its log and a damaged newest
/// one falls back to the previous.
public struct Manifest: Sendable, Equatable {
    /// The manifest's name in a data directory.
    public static let fileName = "MANIFEST"
    static let magic: [UInt8] = Array("CAIRNMAN".utf8)
    static let version: UInt8 = 1

    /// Indexes of the live snapshots, newest first.
    public var snapshots: [UInt64]

    /// A manifest naming `snapshots` (indexes, newest first).
    public init(snapshots: [UInt64]) {
        precondition(zip(snapshots, snapshots.dropFirst()).allSatisfy { $0 > $1 }, "snapshots are listed newest first")
        self.snapshots = snapshots
    }

    /// The file's bytes (the table above).
    public func encoded() -> [UInt8] {
        var out = Self.magic
        out.append(Self.version)
        TxnCodec.putUnsigned(UInt64(snapshots.count), &out)
        for index in snapshots { TxnCodec.putUnsigned(index, &out) }
        let crc = CRC32C.checksum(out)
        withUnsafeBytes(of: crc.littleEndian) { out.append(contentsOf: $0) }
        return out
    }

    /// Parses and verifies a manifest's bytes; the error says what is wrong.
    public static func decode(_ bytes: [UInt8]) throws(SnapshotError) -> Manifest {
        func bad(_ reason: String) -> SnapshotError { .manifest(file: fileName, reason: reason) }
        guard bytes.count >= magic.count + 1 + 1 + 4, Array(bytes[0..<magic.count]) == magic else { throw bad("not a Cairn manifest (bad magic or too short: \(bytes.count) bytes)") }
        let body = bytes.count - 4
        let stored = bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: body, as: UInt32.self)) }
        let computed = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<body])) }
        guard stored == computed else { throw bad("checksum mismatch (stored \(String(stored, radix: 16)), computed \(String(computed, radix: 16)))") }
        guard bytes[magic.count] == version else { throw bad("format version \(bytes[magic.count]) is not supported") }
        let parsed: Result<[UInt64], TxnCodec.DecodeError> = bytes.withUnsafeBytes { raw in
            var reader = TxnCodec.Reader(bytes: UnsafeRawBufferPointer(rebasing: raw[0..<body]), offset: magic.count + 1)
            do throws(TxnCodec.DecodeError) {
                let count = try reader.count(limit: 1000)
                var snapshots: [UInt64] = []
                for _ in 0..<count { snapshots.append(try reader.unsigned()) }
                guard reader.offset == body else { throw .trailingBytes(offset: reader.offset) }
                return .success(snapshots)
            } catch {
                return .failure(error)
            }
        }
        switch parsed {
        case .failure(let error): throw bad("\(error)")
        case .success(let snapshots):
            guard zip(snapshots, snapshots.dropFirst()).allSatisfy({ $0 > $1 }) else { throw bad("snapshots are not newest first") }
            return Manifest(snapshots: snapshots)
        }
    }

    /// The manifest of `directory`, or nil when it has none.
    public static func read(directory: FilePath, fileSystem: any FileSystem) throws(SnapshotError) -> Manifest? {
        let path = directory.appending(fileName)
        guard fileSystem.fileExists(path) else { return nil }
        var bytes: [UInt8] = []
        do {
            let file = try fileSystem.open(path, create: false)
            defer { try? file.close() }
            let count = try file.readAll(into: &bytes)
            bytes.removeSubrange(count...)
        } catch { throw .disk(error) }
        return try decode(bytes)
    }

    /// Replaces the manifest atomically: temp file, `fdatasync`, rename, directory `fsync`.
    public func write(directory: FilePath, fileSystem: any FileSystem) throws(SnapshotError) {
        let temporary = directory.appending(Self.fileName + ".tmp")
        let bytes = encoded()
        do {
            let file = try fileSystem.open(temporary, create: true)
            defer { try? file.close() }
            try file.truncate(to: 0)
            try withBytes(bytes) { (raw) throws(DiskError) in try file.write(raw, at: 0) }
            try file.syncData()
            try fileSystem.rename(temporary, to: directory.appending(Self.fileName))
            try fileSystem.syncDirectory(directory)
        } catch { throw .disk(error) }
    }
}
