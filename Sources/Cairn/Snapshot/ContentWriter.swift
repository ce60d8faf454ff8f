import CairnStorage

/// Serialises snapshot content into a raw buffer (no array bookkeeping per field: the snapshot
/// writer's hot loop) and hands it out in chunks, keeping the running CRC32C.
struct ContentWriter: ~Copyable {
    /// Where full chunks go: given the buffer and the bytes in it, either reads them during the
    /// call and returns nil (the writer keeps its buffer), or takes the buffer and returns an
    /// empty one for the writer to go on with (a pipeline to another thread, without a copy).
    typealias Sink = (UnsafeMutableRawBufferPointer, Int) throws -> UnsafeMutableRawBufferPointer?

    /// A sink that only reads each chunk.
    static func reading(_ body: @escaping (UnsafeRawBufferPointer) throws -> Void) -> Sink {
        { buffer, count in
            try body(UnsafeRawBufferPointer(start: buffer.baseAddress, count: count))
            return nil
        }
    }

    private var buffer: UnsafeMutableRawBufferPointer
    private(set) var count = 0
    private(set) var crc: UInt32 = 0
    let chunkSize: Int

    init(chunkSize: Int, buffer: UnsafeMutableRawBufferPointer? = nil) {
        self.chunkSize = chunkSize
        self.buffer = buffer ?? Self.allocate(chunkSize: chunkSize)
    }

    /// A buffer for chunks of `chunkSize` (with room for the record that crosses its end).
    static func allocate(chunkSize: Int) -> UnsafeMutableRawBufferPointer {
        .allocate(byteCount: chunkSize + (64 << 10), alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// Makes room for `extra` more bytes.
    @inline(__always) mutating func reserve(_ extra: Int) {
        if count + extra > buffer.count { grow(count + extra) }
    }

    private mutating func grow(_ needed: Int) {
        let bigger = UnsafeMutableRawBufferPointer.allocate(byteCount: max(needed, buffer.count * 2), alignment: 16)
        bigger.baseAddress!.copyMemory(from: buffer.baseAddress!, byteCount: count)
        buffer.deallocate()
        buffer = bigger
    }

    @inline(__always) mutating func byte(_ value: UInt8) {
        reserve(1)
        buffer[count] = value
        count += 1
    }

    @inline(__always) mutating func unsigned(_ value: UInt64) {
        reserve(10)
        var v = value
        let base = buffer.baseAddress!
        while v >= 0x80 {
            base.storeBytes(of: UInt8(truncatingIfNeeded: v) | 0x80, toByteOffset: count, as: UInt8.self)
            count += 1
            v >>= 7
        }
        base.storeBytes(of: UInt8(v), toByteOffset: count, as: UInt8.self)
        count += 1
    }

    @inline(__always) mutating func signed(_ value: Int64) {
        unsigned(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    @inline(__always) mutating func bytes(_ value: Bytes) {
        unsigned(UInt64(value.count))
        reserve(value.count)
        value.storage.withUnsafeBytes { raw in
            if raw.count > 0 { (buffer.baseAddress! + count).copyMemory(from: raw.baseAddress!, byteCount: raw.count) }
        }
        count += value.count
    }

    mutating func raw(_ value: [UInt8]) {
        reserve(value.count)
        value.withUnsafeBytes { raw in (buffer.baseAddress! + count).copyMemory(from: raw.baseAddress!, byteCount: raw.count) }
        count += value.count
    }

    mutating func string(_ value: String) {
        var copy = value
        copy.withUTF8 { utf8 in
            unsigned(UInt64(utf8.count))
            reserve(utf8.count)
            if utf8.count > 0 { (buffer.baseAddress! + count).copyMemory(from: utf8.baseAddress!, byteCount: utf8.count) }
            count += utf8.count
        }
    }

    /// Adds the buffered bytes to the CRC and hands them to `sink` once a chunk is full (or
    /// always, with `force`).
    @inline(__always) mutating func flush(force: Bool = false, _ sink: Sink) rethrows {
        guard count > 0, force || count >= chunkSize else { return }
        try handOff(sink)
    }

    private mutating func handOff(_ sink: Sink) rethrows {
        crc = CRC32C.checksum(UnsafeRawBufferPointer(start: buffer.baseAddress, count: count), extending: crc)
        if let replacement = try sink(buffer, count) { buffer = replacement }
        count = 0
    }

    /// Adds the buffered bytes to the CRC without handing them out yet (before the footer).
    mutating func checksumBuffered() -> UInt32 {
        CRC32C.checksum(UnsafeRawBufferPointer(start: buffer.baseAddress, count: count), extending: crc)
    }
}
