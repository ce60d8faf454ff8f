import Cairn

/// Limits on what a client may send, each answered with Redis's own error when exceeded.
public struct RESPLimits: Sendable {
    /// `proto-max-bulk-len`: the largest bulk string (512 MiB).
    public var maxBulkLength = 512 << 20
    /// The most arguments in one command.
    public var maxMultibulkCount = 1024 * 1024
    /// The longest inline command or `*`/`$` header line (Redis's PROTO_INLINE_MAX_SIZE).
    public var maxInlineLength = 64 << 10
    /// `client-query-buffer-limit`: bytes a client may have sent and not yet had parsed.
    public var maxQueryBuffer = 1 << 30

    public init() {}
}

/// Parses client requests: RESP arrays of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) and
/// inline commands (`GET k\r\n`, split like redis-cli's `sdssplitargs`, quotes and escapes).
///
/// Stateless over the bytes received so far: it answers a command and how many bytes it used,
/// or how many bytes must be there before it is worth trying again, or Redis's protocol error.
public enum RESPRequestParser {
    public enum Result: Equatable {
        /// A command (its arguments; never empty) that used `consumed` bytes.
        case command([Bytes], consumed: Int)
        /// An empty request (`*0`, `*-1`, a blank inline line): skip `consumed` bytes.
        case empty(consumed: Int)
        /// Not complete: try again once at least `atLeast` bytes are buffered.
        case needMore(atLeast: Int)
        /// Malformed: answer `-ERR <message>` and close the connection.
        case protocolError(String)
    }

    /// A command as ``parse(_:limits:authenticated:ranges:)`` finds it: where its arguments lie.
    public enum Located: Equatable {
        /// A RESP array of bulk strings that used `consumed` bytes; its arguments (never none)
        /// are at the ranges the call filled, in the bytes it was given.
        case command(consumed: Int)
        /// An inline command (its arguments unquoted and unescaped, so copies; never empty).
        case inline([Bytes], consumed: Int)
        case empty(consumed: Int)
        case needMore(atLeast: Int)
        case protocolError(String)
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer, limits: RESPLimits = RESPLimits(), authenticated: Bool = true) -> Result {
        var ranges: [Range<Int>] = []
        switch parse(bytes, limits: limits, authenticated: authenticated, ranges: &ranges) {
        case .command(let consumed): return .command(ranges.map { Bytes(UnsafeRawBufferPointer(rebasing: bytes[$0])) }, consumed: consumed)
        case .inline(let arguments, let consumed): return .command(arguments, consumed: consumed)
        case .empty(let consumed): return .empty(consumed: consumed)
        case .needMore(let atLeast): return .needMore(atLeast: atLeast)
        case .protocolError(let message): return .protocolError(message)
        }
    }

    /// Finds the first request in `bytes` without copying a RESP array's arguments: their
    /// ranges go into `ranges` (emptied first, its storage reused), so a server can run the
    /// command on views of its read buffer. (Copying each argument, and the array of them,
    /// was a third of a pipelined SET's reference counting.)
    public static func parse(_ bytes: UnsafeRawBufferPointer, limits: RESPLimits = RESPLimits(), authenticated: Bool = true, ranges: inout [Range<Int>]) -> Located {
        guard !bytes.isEmpty else { return .needMore(atLeast: 1) }
        return bytes[0] == UInt8(ascii: "*") ? multibulk(bytes, limits, authenticated, &ranges) : inline(bytes, limits)
    }

    /// The index of the `\n` ending the line that starts at `start`, or nil.
    private static func lineEnd(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int? {
        var i = start
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "\n") { return i }
            i += 1
        }
        return nil
    }

    /// A decimal integer between `from` and `to` (Redis's string2ll: optional sign, no spaces).
    private static func integer(_ bytes: UnsafeRawBufferPointer, _ from: Int, _ to: Int) -> Int64? {
        guard from < to, to - from <= 20 else { return nil }
        var i = from
        var negative = false
        if bytes[i] == UInt8(ascii: "-") { negative = true; i += 1 }
        guard i < to else { return nil }
        var value: Int64 = 0
        while i < to {
            let digit = bytes[i] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(Int64(digit))
            if o1 || o2 { return nil }
            value = s
            i += 1
        }
        return negative ? -value : value
    }

    private static func multibulk(_ bytes: UnsafeRawBufferPointer, _ limits: RESPLimits, _ authenticated: Bool, _ ranges: inout [Range<Int>]) -> Located {
        guard let end = lineEnd(bytes, from: 0) else {
            return bytes.count > limits.maxInlineLength ? .protocolError("Protocol error: too big mbulk count string") : .needMore(atLeast: bytes.count + 1)
        }
        let lineStop = end > 0 && bytes[end - 1] == UInt8(ascii: "\r") ? end - 1 : end
        guard let count = integer(bytes, 1, lineStop), count <= Int64(limits.maxMultibulkCount) else {
            return .protocolError("Protocol error: invalid multibulk length")
        }
        if !authenticated && count > 10 { return .protocolError("Protocol error: unauthenticated multibulk length") }
        var offset = end + 1
        if count <= 0 { return .empty(consumed: offset) }
        ranges.removeAll(keepingCapacity: true)
        ranges.reserveCapacity(Int(min(count, 1024)))  // (a count is only a claim until its data arrives)
        for _ in 0..<count {
            guard offset < bytes.count else { return .needMore(atLeast: offset + 1) }
            guard bytes[offset] == UInt8(ascii: "$") else {
                return .protocolError("Protocol error: expected '$', got '\(Character(UnicodeScalar(bytes[offset])))'")
            }
            guard let headerEnd = lineEnd(bytes, from: offset) else {
                return bytes.count - offset > limits.maxInlineLength ? .protocolError("Protocol error: too big bulk count string") : .needMore(atLeast: bytes.count + 1)
            }
            let stop = headerEnd > offset && bytes[headerEnd - 1] == UInt8(ascii: "\r") ? headerEnd - 1 : headerEnd
            guard let length = integer(bytes, offset + 1, stop), length >= 0, length <= Int64(limits.maxBulkLength) else {
                return .protocolError("Protocol error: invalid bulk length")
            }
            if !authenticated && length > 16384 { return .protocolError("Protocol error: unauthenticated bulk length") }
            let body = headerEnd + 1
            let needed = body + Int(length) + 2
            guard bytes.count >= needed else { return .needMore(atLeast: needed) }
            ranges.append(body..<body + Int(length))
            offset = needed
        }
        return .command(consumed: offset)
    }

    private static func inline(_ bytes: UnsafeRawBufferPointer, _ limits: RESPLimits) -> Located {
        guard let end = lineEnd(bytes, from: 0) else {
            return bytes.count > limits.maxInlineLength ? .protocolError("Protocol error: too big inline request") : .needMore(atLeast: bytes.count + 1)
        }
        let stop = end > 0 && bytes[end - 1] == UInt8(ascii: "\r") ? end - 1 : end
        guard let arguments = splitArguments(UnsafeRawBufferPointer(rebasing: bytes[0..<stop])) else {
            return .protocolError("Protocol error: unbalanced quotes in request")
        }
        return arguments.isEmpty ? .empty(consumed: end + 1) : .inline(arguments, consumed: end + 1)
    }

    /// Redis's `sdssplitargs`: whitespace-separated words; "double quotes" with \n \r \t \b \a
    /// \\ \" and \xHH escapes, 'single quotes' with \'. Nil for unbalanced quotes (or a closing
    /// quote not followed by a space).
    public static func splitArguments(_ line: UnsafeRawBufferPointer) -> [Bytes]? {
        var result: [Bytes] = []
        var i = 0
        func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D || c == 0x0B || c == 0x0C }
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x61...0x66: return c - 0x61 + 10
            case 0x41...0x46: return c - 0x41 + 10
            default: return nil
            }
        }
        while true {
            while i < line.count && isSpace(line[i]) { i += 1 }
            if i >= line.count { return result }
            var current: [UInt8] = []
            var inDouble = false, inSingle = false, done = false
            while !done {
                if inDouble {
                    guard i < line.count else { return nil }
                    let c = line[i]
                    if c == UInt8(ascii: "\\") && i + 3 < line.count && line[i + 1] == UInt8(ascii: "x"), let h = hex(line[i + 2]), let l = hex(line[i + 3]) {
                        current.append(h << 4 | l)
                        i += 3
                    } else if c == UInt8(ascii: "\\") && i + 1 < line.count {
                        i += 1
                        switch line[i] {
                        case UInt8(ascii: "n"): current.append(0x0A)
                        case UInt8(ascii: "r"): current.append(0x0D)
                        case UInt8(ascii: "t"): current.append(0x09)
                        case UInt8(ascii: "b"): current.append(0x08)
                        case UInt8(ascii: "a"): current.append(0x07)
                        default: current.append(line[i])
                        }
                    } else if c == UInt8(ascii: "\"") {
                        if i + 1 < line.count && !isSpace(line[i + 1]) { return nil }
                        done = true
                    } else {
                        current.append(c)
                    }
                } else if inSingle {
                    guard i < line.count else { return nil }
                    let c = line[i]
                    if c == UInt8(ascii: "\\") && i + 1 < line.count && line[i + 1] == UInt8(ascii: "'") {
                        i += 1
                        current.append(UInt8(ascii: "'"))
                    } else if c == UInt8(ascii: "'") {
                        if i + 1 < line.count && !isSpace(line[i + 1]) { return nil }
                        done = true
                    } else {
                        current.append(c)
                    }
                } else {
                    if i >= line.count { done = true; break }
                    let c = line[i]
                    if isSpace(c) { done = true }
                    else if c == UInt8(ascii: "\"") { inDouble = true }
                    else if c == UInt8(ascii: "'") { inSingle = true }
                    else { current.append(c) }
                }
                if i < line.count { i += 1 }
            }
            result.append(Bytes(current))
        }
    }
}
