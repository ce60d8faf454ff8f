import CairnStorage
import FuzzDriver

/// Decodes records at every aligned offset of arbitrary bytes. Whatever decodes must re-encode
/// to exactly the same bytes; nothing may crash or read out of bounds.
public func fuzzRecordDecoder(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: count)
    var offset = 0
    while offset <= count {
        switch LogFormat.decode(bytes, at: offset) {
        case .record(let record):
            precondition(record.offset == offset && record.size == LogFormat.recordSize(payloadLength: record.payload.count))
            precondition(offset + record.size <= count)
            let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: record.size, alignment: 8)
            defer { copy.deallocate() }
            LogFormat.encode(index: record.index, term: record.term, payload: record.payload, into: copy.baseAddress!)
            precondition(memcmp(copy.baseAddress!, data + offset, record.size) == 0, "re-encoding differs")
            offset += record.size
        case .end, .defect:
            offset += LogFormat.alignment
        }
        if offset > count { break }
    }
    return 0
}

#if canImport(Glibc)
import Glibc
#endif

@_cdecl("FuzzRecordDecoder_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, count in fuzzRecordDecoder(fuzzBytes(data), count) }
}
