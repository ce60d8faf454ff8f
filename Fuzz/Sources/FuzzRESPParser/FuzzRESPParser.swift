import Cairn
import CairnServer
import FuzzDriver

/// Parses arbitrary bytes as a stream of client requests, as a connection does: every step must
/// consume bytes or ask for more or fail; a parsed command re-encoded as RESP must parse back to
/// itself.
public func fuzzRESPParser(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    var limits = RESPLimits()
    limits.maxBulkLength = 1 << 16
    var offset = 0
    var steps = 0
    while offset < count && steps < 10_000 {
        steps += 1
        let rest = UnsafeRawBufferPointer(start: data + offset, count: count - offset)
        switch RESPRequestParser.parse(rest, limits: limits, authenticated: steps % 2 == 0) {
        case .command(let arguments, let consumed):
            precondition(!arguments.isEmpty && consumed > 0 && consumed <= rest.count)
            var encoded = Array("*\(arguments.count)\r\n".utf8)
            for argument in arguments { encoded += Array("$\(argument.count)\r\n".utf8) + argument.storage + [13, 10] }
            let again = encoded.withUnsafeBytes { RESPRequestParser.parse($0, limits: limits) }
            precondition(again == .command(arguments, consumed: encoded.count), "a parsed command does not round-trip")
            offset += consumed
        case .empty(let consumed):
            precondition(consumed > 0 && consumed <= rest.count)
            offset += consumed
        case .needMore(let atLeast):
            precondition(atLeast > rest.count, "asked for more while holding enough")
            return 0
        case .protocolError:
            return 0
        }
    }
    return 0
}

@_cdecl("FuzzRESPParser_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, count in fuzzRESPParser(fuzzBytes(data), count) }
}
