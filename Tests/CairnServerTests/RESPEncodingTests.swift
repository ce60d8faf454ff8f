import Cairn
@testable import CairnServer
import Testing

/// Replies byte for byte as Redis writes them, and how command names are folded.
@Suite struct RESPEncodingTests {
    func bytes(_ value: RESPValue, _ version: Int = 2) -> String {
        var out: [UInt8] = []
        value.encode(into: &out, protocolVersion: version)
        return String(decoding: out, as: UTF8.self)
    }

    @Test func integersAndLengthsAreDecimal() {
        for n: Int64 in [0, 7, 9, 10, 99, 100, -1, -9, -10, 1_234_567_890, .max, .min] {
            #expect(bytes(.integer(n)) == ":\(n)\r\n")
        }
        #expect(bytes(.bulk(Bytes(Array(repeating: UInt8(ascii: "x"), count: 12)))) == "$12\r\n" + String(repeating: "x", count: 12) + "\r\n")
        #expect(bytes(.bulk(Bytes([]))) == "$0\r\n\r\n")
        #expect(bytes(.array([.integer(1), .null])) == "*2\r\n:1\r\n$-1\r\n")
        #expect(bytes(.array([.integer(1), .null]), 3) == "*2\r\n:1\r\n_\r\n")
        #expect(bytes(.map([(.bulk("a"), .integer(-5))])) == "*2\r\n$1\r\na\r\n:-5\r\n")
        #expect(bytes(.map([(.bulk("a"), .integer(-5))]), 3) == "%1\r\n$1\r\na\r\n:-5\r\n")
        #expect(bytes(.boolean(true)) == ":1\r\n" && bytes(.boolean(false), 3) == "#f\r\n")
    }

    @Test func commandNamesFoldAsciiLettersOnly() {
        #expect(RESPConnection.commandName(Bytes("GeT")) == "get")
        #expect(RESPConnection.commandName(Bytes("CLIENT")) == "client")
        // Only A-Z move: '@' (0x40) and '[' (0x5B) sit on either side of them.
        #expect(RESPConnection.commandName(Bytes("@Z[a_1")) == "@z[a_1")
        #expect(RESPConnection.commandName(Bytes([0xC3, 0x89])) == "\u{C9}")  // É stays as sent
        #expect(RESPConnection.commandName(Bytes([])) == "")
    }
}
