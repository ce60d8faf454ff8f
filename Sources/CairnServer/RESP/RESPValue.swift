import Cairn

/// A reply in RESP3's terms; ``encode(into:protocolVersion:)`` writes RESP3 or downgrades to
/// RESP2 (maps and sets become arrays, doubles bulk strings, booleans integers, nulls `$-1`).
///
/// Not `indirect`: the nested cases hold arrays, which box them already, and an indirect enum
/// would allocate a box for every reply (a third of a pipelined GET's allocations).
public enum RESPValue: Sendable, Equatable {
    case simple(String)
    case error(String)
    case integer(Int64)
    case bulk(Bytes)
    /// A missing value: `$-1` in RESP2, `_` in RESP3.
    case null
    /// A missing array: `*-1` in RESP2, `_` in RESP3.
    case nullArray
    case array([RESPValue])
    case map([(RESPValue, RESPValue)])
    case set([RESPValue])
    case double(Double)
    case boolean(Bool)
    /// Out-of-band data (pub/sub messages): `>` in RESP3, an array in RESP2.
    case push([RESPValue])

    public static let ok = RESPValue.simple("OK")

    public static func bulk(_ text: String) -> RESPValue { .bulk(Bytes(text)) }

    public static func == (lhs: RESPValue, rhs: RESPValue) -> Bool {
        var a: [UInt8] = [], b: [UInt8] = []
        lhs.encode(into: &a, protocolVersion: 3)
        rhs.encode(into: &b, protocolVersion: 3)
        return a == b
    }

    public func encode(into out: inout [UInt8], protocolVersion: Int) {
        func line(_ prefix: UInt8, _ text: String) {
            out.append(prefix)
            out.append(contentsOf: text.utf8)
            out.append(0x0D); out.append(0x0A)
        }
        /// A prefix and a decimal number, without making a String of it (every bulk reply's length).
        func line(_ prefix: UInt8, _ n: Int64) {
            out.append(prefix)
            RedisNumbers.appendDecimal(n, to: &out)
            out.append(0x0D); out.append(0x0A)
        }
        switch self {
        case .simple(let text): line(UInt8(ascii: "+"), text)
        case .error(let text): line(UInt8(ascii: "-"), text)
        case .integer(let n): line(UInt8(ascii: ":"), n)
        case .bulk(let bytes):
            line(UInt8(ascii: "$"), Int64(bytes.count))
            out.append(contentsOf: bytes.storage)
            out.append(0x0D); out.append(0x0A)
        case .null:
            if protocolVersion >= 3 { line(UInt8(ascii: "_"), "") } else { line(UInt8(ascii: "$"), "-1") }
        case .nullArray:
            if protocolVersion >= 3 { line(UInt8(ascii: "_"), "") } else { line(UInt8(ascii: "*"), "-1") }
        case .array(let items):
            line(UInt8(ascii: "*"), Int64(items.count))
            for item in items { item.encode(into: &out, protocolVersion: protocolVersion) }
        case .set(let items):
            line(protocolVersion >= 3 ? UInt8(ascii: "~") : UInt8(ascii: "*"), Int64(items.count))
            for item in items { item.encode(into: &out, protocolVersion: protocolVersion) }
        case .push(let items):
            line(protocolVersion >= 3 ? UInt8(ascii: ">") : UInt8(ascii: "*"), Int64(items.count))
            for item in items { item.encode(into: &out, protocolVersion: protocolVersion) }
        case .map(let pairs):
            if protocolVersion >= 3 { line(UInt8(ascii: "%"), Int64(pairs.count)) } else { line(UInt8(ascii: "*"), Int64(pairs.count * 2)) }
            for (key, value) in pairs {
                key.encode(into: &out, protocolVersion: protocolVersion)
                value.encode(into: &out, protocolVersion: protocolVersion)
            }
        case .double(let value):
            let text = RESPValue.format(value)
            if protocolVersion >= 3 { line(UInt8(ascii: ","), text) } else { RESPValue.bulk(Bytes(text)).encode(into: &out, protocolVersion: 2) }
        case .boolean(let flag):
            if protocolVersion >= 3 { line(UInt8(ascii: "#"), flag ? "t" : "f") } else { line(UInt8(ascii: ":"), flag ? "1" : "0") }
        }
    }

    static func format(_ value: Double) -> String {
        if value.isInfinite { return value > 0 ? "inf" : "-inf" }
        if value.isNaN { return "nan" }
        return RedisNumbers.format(value).string
    }

    /// A store reply in RESP terms.
    public init(_ reply: Reply) {
        switch reply {
        case .ok: self = .ok
        case .null: self = .null
        case .integer(let n): self = .integer(n)
        case .bulk(let bytes): self = .bulk(bytes)
        case .array(let items): self = .array(items.map(RESPValue.init))
        case .nullArray: self = .nullArray
        case .error(let error): self = .error(error.message)
        case .created(let path, _): self = .bulk(Bytes(path))
        case .stat: self = .ok
        case .treeError(let error): self = .error("ERR \(error)")
        case .multiFailed: self = .error("ERR multi failed")
        }
    }
}

