import Cairn

/// Why bytes are not the jute record they should be; `offset` is into the frame's payload.
public struct JuteError: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    public var offset: Int
    public var description: String { "\(reason) at byte \(offset)" }
}

/// Reads ZooKeeper's jute binary encoding (`BinaryInputArchive`): big-endian `int` (4 bytes) and
/// `long` (8), `boolean` (1 byte, 0 or 1), `buffer` and `ustring` as an `int` length (-1: null)
/// then the bytes, `vector` as an `int` count (-1: null) then the items; records inline.
/// Every length is checked against the bytes left, so a hostile frame cannot make it allocate.
public struct JuteReader {
    public let bytes: [UInt8]
    public private(set) var offset = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var remaining: Int { bytes.count - offset }

    private mutating func take(_ count: Int, _ what: String) throws(JuteError) -> ArraySlice<UInt8> {
        guard count >= 0, count <= remaining else { throw JuteError(reason: "truncated \(what)", offset: offset) }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }

    public mutating func int() throws(JuteError) -> Int32 {
        var value: UInt32 = 0
        for byte in try take(4, "int") { value = value << 8 | UInt32(byte) }
        return Int32(bitPattern: value)
    }

    public mutating func long() throws(JuteError) -> Int64 {
        var value: UInt64 = 0
        for byte in try take(8, "long") { value = value << 8 | UInt64(byte) }
        return Int64(bitPattern: value)
    }

    public mutating func boolean() throws(JuteError) -> Bool {
        let start = offset
        switch try take(1, "boolean").first! {
        case 0: return false
        case 1: return true
        default: throw JuteError(reason: "invalid boolean", offset: start)
        }
    }

    /// A `buffer`; nil for a null one (length -1).
    public mutating func buffer() throws(JuteError) -> [UInt8]? {
        let start = offset
        let length = try int()
        if length == -1 { return nil }
        guard length >= 0 else { throw JuteError(reason: "negative buffer length \(length)", offset: start) }
        return Array(try take(Int(length), "buffer"))
    }

    /// A `ustring`; nil for a null one. Invalid UTF-8 is refused.
    public mutating func string() throws(JuteError) -> String? {
        let start = offset
        let length = try int()
        if length == -1 { return nil }
        guard length >= 0 else { throw JuteError(reason: "negative buffer length \(length)", offset: start) }
        // Straight from the frame's bytes: no array made on the way (a path per request).
        guard let text = String(validating: try take(Int(length), "buffer"), as: UTF8.self) else {
            throw JuteError(reason: "invalid UTF-8 in a string", offset: start)
        }
        return text
    }

    /// A non-null `ustring` (paths): null is refused.
    public mutating func path() throws(JuteError) -> String {
        let start = offset
        guard let text = try string() else { throw JuteError(reason: "null path", offset: start) }
        return text
    }

    /// A `vector`; nil for a null one. Each item takes at least `minimumItemSize` bytes, so a
    /// count larger than the bytes left is refused before anything is allocated.
    public mutating func vector<T>(minimumItemSize: Int, _ item: (inout JuteReader) throws(JuteError) -> T) throws(JuteError) -> [T]? {
        let start = offset
        let count = try int()
        if count == -1 { return nil }
        guard count >= 0, Int(count) <= remaining / max(1, minimumItemSize) else {
            throw JuteError(reason: "vector count \(count) larger than the bytes left", offset: start)
        }
        var items: [T] = []
        items.reserveCapacity(Int(count))
        for _ in 0..<count { items.append(try item(&self)) }
        return items
    }

    /// Refuses bytes after the record.
    public func end() throws(JuteError) {
        guard remaining == 0 else { throw JuteError(reason: "\(remaining) unexpected bytes after the record", offset: offset) }
    }
}

/// Writes jute's binary encoding (see ``JuteReader``).
public struct JuteWriter {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public mutating func int(_ value: Int32) {
        withUnsafeBytes(of: UInt32(bitPattern: value).bigEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func long(_ value: Int64) {
        withUnsafeBytes(of: UInt64(bitPattern: value).bigEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func boolean(_ value: Bool) { bytes.append(value ? 1 : 0) }

    public mutating func buffer(_ value: [UInt8]?) {
        guard let value else { int(-1); return }
        int(Int32(value.count))
        bytes.append(contentsOf: value)
    }

    public mutating func string(_ value: String?) {
        guard var value else { int(-1); return }
        value.withUTF8 { utf8 in
            int(Int32(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    public mutating func vector<T>(_ items: [T]?, _ item: (inout JuteWriter, T) -> Void) {
        guard let items else { int(-1); return }
        int(Int32(items.count))
        for value in items { item(&self, value) }
    }

    /// Empties the writer, keeping its storage (a writer reused per request allocates nothing).
    public mutating func reset() { bytes.removeAll(keepingCapacity: true) }

    /// Overwrites 4 bytes at `offset` with `value` (a length prefix written after its body).
    public mutating func patchInt(_ value: Int32, at offset: Int) {
        precondition(offset >= 0 && offset + 4 <= bytes.count, "patch outside the bytes written")
        let v = UInt32(bitPattern: value)
        bytes[offset] = UInt8(v >> 24)
        bytes[offset + 1] = UInt8(v >> 16 & 0xFF)
        bytes[offset + 2] = UInt8(v >> 8 & 0xFF)
        bytes[offset + 3] = UInt8(v & 0xFF)
    }

    /// The bytes with ZooKeeper's 4-byte big-endian length prefix.
    public var frame: [UInt8] {
        var framed = JuteWriter()
        framed.int(Int32(bytes.count))
        return framed.bytes + bytes
    }
}
