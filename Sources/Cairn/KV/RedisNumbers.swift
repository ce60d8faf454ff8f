/// Redis's number rules for string values: `string2ll` for integers (no sign but '-', no
/// leading zeros, no spaces, fits in 64 bits) and `strtold`-like parsing for floats.
public enum RedisNumbers {
    /// The integer `bytes` spell in Redis's strict form, or nil (`"+1"`, `"01"`, `" 1"` are not integers).
    public static func parseInteger(_ bytes: Bytes) -> Int64? {
        let s = bytes.storage
        guard !s.isEmpty, s.count <= 20 else { return nil }
        if s.count == 1 && s[0] == UInt8(ascii: "0") { return 0 }
        var index = 0
        let negative = s[0] == UInt8(ascii: "-")
        if negative { index = 1 }
        guard index < s.count, s[index] >= UInt8(ascii: "1"), s[index] <= UInt8(ascii: "9") else { return nil }
        var magnitude: UInt64 = 0
        while index < s.count {
            let c = s[index]
            guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
            let (times, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (plus, o2) = times.addingReportingOverflow(UInt64(c - UInt8(ascii: "0")))
            if o1 || o2 { return nil }
            magnitude = plus
            index += 1
        }
        if negative {
            if magnitude > UInt64(Int64.max) + 1 { return nil }
            return magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)
        }
        return magnitude > UInt64(Int64.max) ? nil : Int64(magnitude)
    }

    /// The float `bytes` spell (`INCRBYFLOAT`'s rules), or nil.
    public static func parseFloat(_ bytes: Bytes) -> Double? {
        let text = bytes.string
        guard !text.isEmpty, text.count == bytes.count,
              let first = text.unicodeScalars.first, !first.properties.isWhitespace,
              let last = text.unicodeScalars.last, !last.properties.isWhitespace,
              let value = Double(text), !value.isNaN
        else { return nil }
        return value
    }

    /// Decimal digits, as Redis stores a counter.
    public static func format(_ value: Int64) -> Bytes {
        var digits: [UInt8] = []
        appendDecimal(value, to: &digits)
        return Bytes(digits)
    }

    /// Appends `n` in decimal ASCII, as ``format(_:)-(Int64)`` spells it, without a `String`
    /// (INCR rewrites a counter's bytes in place with it; a reply encodes its integers).
    ///
    /// ```swift
    /// var out: [UInt8] = []
    /// RedisNumbers.appendDecimal(-42, to: &out)  // out == Array("-42".utf8)
    /// ```
    public static func appendDecimal(_ n: Int64, to out: inout [UInt8]) {
        if n >= 0 && n < 10 { out.append(0x30 &+ UInt8(n)); return }
        var magnitude = n.magnitude
        if n < 0 { out.append(UInt8(ascii: "-")) }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: a UInt64's 20 digits fit
        withUnsafeMutableBytes(of: &digits) { buffer in
            var i = buffer.count
            repeat {
                i -= 1
                buffer[i] = 0x30 &+ UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[i...]))
        }
    }

    /// As `INCRBYFLOAT` stores it: plain decimal, no exponent, no trailing zeros.
    public static func format(_ value: Double) -> Bytes {
        if value == value.rounded(), abs(value) < 1e17 { return Bytes(String(Int64(value))) }
        var text = value.description
        if text.contains("e") || text.contains("E") {
            text = plainDecimal(value)
        }
        return Bytes(text)
    }

    private static func plainDecimal(_ value: Double) -> String {
        // Expand the shortest round-trip digits without an exponent.
        let description = value.magnitude.description
        let parts = description.split(separator: "e", maxSplits: 1)
        var digits = String(parts[0])
        let exponent = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
        var pointIndex = digits.firstIndex(of: ".").map { digits.distance(from: digits.startIndex, to: $0) } ?? digits.count
        digits.removeAll { $0 == "." }
        pointIndex += exponent
        var result: String
        if pointIndex <= 0 {
            result = "0." + String(repeating: "0", count: -pointIndex) + digits
        } else if pointIndex >= digits.count {
            result = digits + String(repeating: "0", count: pointIndex - digits.count)
        } else {
            let split = digits.index(digits.startIndex, offsetBy: pointIndex)
            result = String(digits[..<split]) + "." + String(digits[split...])
        }
        if result.contains(".") {
            while result.hasSuffix("0") { result.removeLast() }
            if result.hasSuffix(".") { result.removeLast() }
        }
        return (value < 0 ? "-" : "") + result
    }
}
