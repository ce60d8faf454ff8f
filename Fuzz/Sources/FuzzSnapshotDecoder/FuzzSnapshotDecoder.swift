import Cairn
import CairnStorage
import FuzzDriver

/// Decodes arbitrary bytes as a snapshot: an LZ4 frame (decompressed with a bound) when they
/// start with the frame's magic, else the content itself. Whatever decodes must re-encode to a
/// content that decodes to the same state.
public func fuzzSnapshotDecoder(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: count)
    let frameMagic: [UInt8] = [0x04, 0x22, 0x4D, 0x18]
    var content: [UInt8]
    if count >= 4 && bytes.prefix(4).elementsEqual(frameMagic) {
        guard let decompressed = try? LZ4Frame.decompress(bytes, limit: 1 << 24) else { return 0 }
        content = decompressed
    } else {
        content = Array(bytes)
    }
    guard let (header, state) = try? content.withUnsafeBytes({ try SnapshotFormat.decode($0) }) else { return 0 }
    var again: [UInt8] = []
    try! SnapshotFormat.encode(state, header: header, chunkSize: 256) { again.append(contentsOf: $0) }
    let (header2, state2) = try! again.withUnsafeBytes { try SnapshotFormat.decode($0) }
    precondition(header2 == header && state2 == state, "a decoded snapshot does not survive re-encoding")
    return 0
}

@_cdecl("FuzzSnapshotDecoder_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, count in fuzzSnapshotDecoder(fuzzBytes(data), count) }
}
