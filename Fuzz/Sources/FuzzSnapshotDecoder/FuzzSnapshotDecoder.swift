import Cairn
import CairnStorage
import CairnTesting
import FuzzDriver
import SystemPackage

/// Decodes arbitrary bytes as a snapshot: a snapshot file (an LZ4 frame, perhaps with the size
/// frame after it) when they start with the frame's magic, else the content itself. A file
/// must load the same way both ways: `SnapshotFile.read` (decoding while another thread
/// decompresses, when the size frame is there) succeeds exactly when decompressing whole and
/// decoding does, with the same state; without the frame's checksum it loads at least that. Whatever decodes must re-encode to a content that
/// decodes to the same state.
public func fuzzSnapshotDecoder(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: count)
    let frameMagic: [UInt8] = [0x04, 0x22, 0x4D, 0x18]
    var content: [UInt8]
    if count >= 4 && bytes.prefix(4).elementsEqual(frameMagic) {
        let disk = SimulatedFileSystem()
        let path = FilePath("/fuzz.lz4")
        disk.setContents(path, Array(bytes))
        let whole = try? SnapshotFile.content(path, fileSystem: disk)
        let wholeState = whole.flatMap { whole in try? whole.content.withUnsafeBytes { try SnapshotFormat.decode($0) } }
        // Checking the frame's XXH32 too, as the whole decompress does (and `cairn check`).
        let read = try? SnapshotFile.read(path, fileSystem: disk, frameChecksum: true)
        precondition((read == nil) == (wholeState == nil), "SnapshotFile.read and a whole decompress + decode disagree on whether the file loads")
        if let read, let wholeState { precondition(read.0 == wholeState.1 && read.1.header == wholeState.0, "the two loads give different states") }
        // A load (which skips the XXH32, the content's CRC32C covering the same bytes) loads
        // whatever the checked read does, to the same state.
        if let read {
            let loaded = try? SnapshotFile.read(path, fileSystem: disk)
            precondition(loaded.map { $0.0 == read.0 } == true, "a load without the frame's checksum fails or differs where the checked read succeeds")
        }
        guard let decompressed = whole?.content else { return 0 }
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
