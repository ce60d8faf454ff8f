import CairnStorage
import FuzzDriver

/// Scans arbitrary bytes as a segment (the first index taken from the first 8 bytes) and checks
/// the scanner's own promises: records are visited in index order, back to back, and the
/// damage, if any, lies where the valid records end.
public func fuzzSegmentScanner(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    guard count >= 8 else { return 0 }
    let firstIndex = UnsafeRawPointer(data).loadUnaligned(as: UInt64.self)
    let bytes = UnsafeRawBufferPointer(start: data + 8, count: count - 8)
    var visited = 0
    var expectedOffset = 0
    let result = SegmentScanner.scan(bytes, firstIndex: firstIndex) { (record: LogFormat.Record) throws(Never) in
        precondition(record.index == firstIndex &+ UInt64(visited))
        precondition(record.offset == expectedOffset)
        expectedOffset += record.size
        visited += 1
    }
    precondition(result.recordCount == visited && result.validEnd == expectedOffset)
    precondition(result.validEnd <= bytes.count)
    if let damage = result.damage {
        precondition(damage.offset == result.validEnd)
        if let next = damage.nextValidOffset { precondition(next > damage.offset && next < bytes.count) }
    }
    return 0
}

@_cdecl("FuzzSegmentScanner_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, count in fuzzSegmentScanner(fuzzBytes(data), count) }
}
