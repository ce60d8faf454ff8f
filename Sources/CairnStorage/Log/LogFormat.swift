/// The log record format, shared by the writer and the reader. docs/FORMAT.md repeats it.
///
/// A segment file `log-<firstIndex>.seg` (firstIndex as 20 decimal digits) holds records back
/// to back from offset 0, then zeros up to its preallocated size. Every record starts at a
/// multiple of 8 and is laid out as (little-endian):
///
/// | offset     | size    | field   | meaning                                                      |
/// |------------|---------|---------|--------------------------------------------------------------|
/// | 0          | 4       | crc     | masked CRC32C of bytes [4, size): header rest, payload, trailer |
/// | 4          | 4       | length  | payload length in bytes, at most ``maxPayloadLength``        |
/// | 8          | 8       | index   | the record's log index: the segment's firstIndex, then +1 each |
/// | 16         | 8       | term    | Raft term (0 on a single node)                               |
/// | 24         | length  | payload | opaque bytes (the log does not know what a key is)           |
/// | 24+length  | 1...8   | trailer | bytes of 0xA5 up to the next multiple of 8                   |
///
/// size = align8(24 + length + 1). The trailer makes the last byte of every complete record
/// non-zero, which is how recovery tells a write the disk never finished (its last bytes still
/// read as the preallocated zeros) from a complete record whose bits later flipped.
/// A header of 24 zero bytes is where written data ends.
public enum LogFormat {
    public static let headerSize = 24
    public static let alignment = 8
    public static let trailerByte: UInt8 = 0xA5
    /// No record payload may exceed this (1 GiB); the writer and the reader both enforce it.
    public static let maxPayloadLength = 1 << 30
    /// Size of the page-cache page whose loss recovery recognises (see ``SegmentScanner``).
    public static let pageSize = 4096

    private static let trailerBytes = [UInt8](repeating: trailerByte, count: alignment)

    /// The bytes a record with this payload length occupies on disk.
    @inline(__always)
    public static func recordSize(payloadLength: Int) -> Int {
        (headerSize + payloadLength + 1 + alignment - 1) & ~(alignment - 1)
    }

    /// Encodes one record at `destination` (which must hold ``recordSize(payloadLength:)`` bytes).
    /// Returns the record's size.
    @inline(__always)
    @discardableResult
    public static func encode(
        index: UInt64, term: UInt64, payload: UnsafeRawBufferPointer, into destination: UnsafeMutableRawPointer
    ) -> Int {
        precondition(payload.count <= maxPayloadLength, "payload of \(payload.count) bytes exceeds the log's limit")
        let size = recordSize(payloadLength: payload.count)
        destination.storeBytes(of: UInt32(payload.count).littleEndian, toByteOffset: 4, as: UInt32.self)
        destination.storeBytes(of: index.littleEndian, toByteOffset: 8, as: UInt64.self)
        destination.storeBytes(of: term.littleEndian, toByteOffset: 16, as: UInt64.self)
        if let base = payload.baseAddress {
            (destination + headerSize).copyMemory(from: base, byteCount: payload.count)
        }
        let trailerCount = size - headerSize - payload.count
        (destination + headerSize + payload.count).initializeMemory(as: UInt8.self, repeating: trailerByte, count: trailerCount)
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(start: destination + 4, count: size - 4))
        destination.storeBytes(of: CRC32C.mask(crc).littleEndian, toByteOffset: 0, as: UInt32.self)
        return size
    }

    /// Why bytes at some offset are not a valid record.
    public enum Defect: String, Sendable, Equatable {
        /// Fewer bytes than a header remain, and they are not all zero.
        case truncatedHeader = "truncated header"
        /// The length field points past the end of the file or above the limit.
        case lengthOutOfRange = "length out of range"
        case checksumMismatch = "checksum mismatch"
        /// The trailer is not all 0xA5: most often the end of a write that never reached the disk.
        case trailerMismatch = "trailer mismatch"
        /// The record is intact but its index is not the one expected next.
        case indexOutOfSequence = "index out of sequence"
        /// A zero header (the end of written data) followed by non-zero bytes.
        case zeroHeaderBeforeData = "zero header before data"
        /// The segment was never sealed (it still has its preallocated zeros) and its records end
        /// before the index the next segment starts at: its unsynced tail was lost.
        case endsBeforeNextSegment = "unsealed segment ends before the next one begins"
    }

    /// A decoded record: a view into the buffer it was read from.
    public struct Record {
        public var offset: Int
        public var size: Int
        public var index: UInt64
        public var term: UInt64
        public var payload: UnsafeRawBufferPointer
    }

    /// What lies at an offset of a segment.
    public enum Decoded {
        case record(Record)
        /// 24 zero bytes, or fewer than 24 zero bytes left: the end of written data.
        case end
        case defect(Defect)
    }

    /// Decodes the record at `offset` of `bytes`, verifying length and checksum (not the index).
    @inline(__always)
    public static func decode(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Decoded {
        let remaining = bytes.count - offset
        precondition(remaining >= 0 && offset % alignment == 0)
        if remaining < headerSize {
            for i in offset..<bytes.count where bytes[i] != 0 { return .defect(.truncatedHeader) }
            return .end
        }
        let base = bytes.baseAddress! + offset
        let storedCRC = UInt32(littleEndian: base.loadUnaligned(as: UInt32.self))
        let length = Int(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
        let index = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        let term = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        if storedCRC == 0 && length == 0 && index == 0 && term == 0 { return .end }
        guard length <= maxPayloadLength else { return .defect(.lengthOutOfRange) }
        let size = recordSize(payloadLength: length)
        guard size <= remaining else { return .defect(.lengthOutOfRange) }
        // The trailer is checked on its own (a checksum alone can be matched by crafted bytes),
        // and first: it is cheap, and a torn write fails it.
        for i in (headerSize + length)..<size where base.load(fromByteOffset: i, as: UInt8.self) != trailerByte {
            return .defect(.trailerMismatch)
        }
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(start: base + 4, count: size - 4))
        guard CRC32C.mask(crc) == storedCRC else { return .defect(.checksumMismatch) }
        return .record(Record(
            offset: offset, size: size, index: index, term: term,
            payload: UnsafeRawBufferPointer(start: base + headerSize, count: length)))
    }

    /// The file name of the segment whose first record has index `firstIndex`.
    public static func segmentName(firstIndex: UInt64) -> String {
        let digits = String(firstIndex)
        return "log-" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".seg"
    }

    /// The first index named by a segment file name, or nil for any other name.
    public static func segmentFirstIndex(fileName: String) -> UInt64? {
        guard fileName.hasPrefix("log-"), fileName.hasSuffix(".seg") else { return nil }
        let digits = fileName.dropFirst(4).dropLast(4)
        guard digits.count == 20, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return UInt64(digits)
    }
}
