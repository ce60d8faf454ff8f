import CairnServer
import FuzzDriver

/// Decodes arbitrary bytes as ZooKeeper client frames: a connect request and a request. What
/// decodes must re-encode to bytes that decode to the same request.
public func fuzzJuteDecoder(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: count))
    _ = try? ZKCodec.connectRequest(bytes)
    if case .frame(let payload, let consumed) = ZKCodec.nextFrame(bytes, maxFrame: 1 << 16) {
        precondition(consumed == payload.count + 4 && consumed <= bytes.count)
    }
    guard let (xid, op, request) = try? ZKCodec.request(bytes) else { return 0 }
    var out = JuteWriter()
    ZKCodec.encode(xid: xid, op: op, request, into: &out)
    let again = try! ZKCodec.request(out.bytes)
    precondition(again.xid == xid && again.op == op && again.request == request, "a decoded request does not survive re-encoding")
    return 0
}

@_cdecl("FuzzJuteDecoder_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, count in fuzzJuteDecoder(fuzzBytes(data), count) }
}
