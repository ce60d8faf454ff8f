import Cairn
import FuzzDriver

/// Decodes arbitrary bytes as a txn. Whatever decodes must encode back to exactly the same bytes
/// (the encoding is canonical), and applying it to an empty keyspace must not crash.
public func fuzzTxnDecoder(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: count)
    guard let txn = try? TxnCodec.decode(bytes) else { return 0 }
    let encoded = TxnCodec.encode(txn)
    precondition(encoded.elementsEqual(bytes), "re-encoding differs")
    var keyspace = StoreState()
    var changes = StoreState.Changes()
    let replies = keyspace.apply(txn, index: 1, changes: &changes)
    precondition(replies.count == txn.operations.count)
    return 0
}

@_cdecl("FuzzTxnDecoder_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, count in fuzzTxnDecoder(fuzzBytes(data), count) }
}
