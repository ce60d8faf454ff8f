import CLZ4

/// Why liblz4 refused a frame.
public struct LZ4Error: Error, Sendable, Equatable, CustomStringConvertible {
    /// liblz4's own name for the error (`LZ4F_getErrorName`), or ours.
    public var message: String
    /// Compressed bytes consumed before the error.
    public var offset: Int

    public var description: String { "LZ4 frame error at compressed byte \(offset): \(message)" }
}

/// Streams bytes into one LZ4 *frame* (the format of `lz4frame.h`, which the stock `lz4 -d`
/// reads): 4 MiB linked blocks and a content checksum, as the `lz4` tool writes by default.
/// Each call returns the compressed bytes it produced, valid until the next call.
///
/// ```swift
/// let compressor = try LZ4FrameCompressor(level: 1)
/// try file.write(compressor.begin(), ...)
/// try file.write(compressor.update(chunk), ...)   // as many times as needed
/// try file.write(compressor.end(), ...)
/// ```
public final class LZ4FrameCompressor {
    private let context: OpaquePointer
    private var preferences: LZ4F_preferences_t
    private var output: UnsafeMutableRawBufferPointer

    /// `level` 1 (fast, the default) up to 12; 3 and above use LZ4 HC.
    public init(level: Int32 = 1) throws(LZ4Error) {
        var context: OpaquePointer?
        let code = LZ4F_createCompressionContext(&context, UInt32(LZ4F_VERSION))
        if LZ4F_isError(code) != 0 || context == nil { throw LZ4Error(message: String(cString: LZ4F_getErrorName(code)), offset: 0) }
        self.context = context!
        preferences = LZ4F_preferences_t()
        preferences.frameInfo.blockSizeID = LZ4F_max4MB
        preferences.frameInfo.blockMode = LZ4F_blockLinked
        preferences.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled
        preferences.compressionLevel = level
        output = .allocate(byteCount: 1 << 16, alignment: 16)
    }

    deinit {
        LZ4F_freeCompressionContext(context)
        output.deallocate()
    }

    /// The frame header.
    public func begin() throws(LZ4Error) -> UnsafeRawBufferPointer {
        try run(capacity: Int(LZ4F_HEADER_SIZE_MAX)) { context, destination, capacity, preferences in
            LZ4F_compressBegin(context, destination, capacity, preferences)
        }
    }

    /// Compresses `bytes`; returns whatever output is ready (often nothing until a block fills).
    public func update(_ bytes: UnsafeRawBufferPointer) throws(LZ4Error) -> UnsafeRawBufferPointer {
        guard bytes.count > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        let bound = withUnsafePointer(to: &preferences) { LZ4F_compressBound(bytes.count, $0) }
        return try run(capacity: bound) { context, destination, capacity, _ in
            LZ4F_compressUpdate(context, destination, capacity, bytes.baseAddress, bytes.count, nil)
        }
    }

    /// The last block, the end mark and the content checksum.
    public func end() throws(LZ4Error) -> UnsafeRawBufferPointer {
        let bound = withUnsafePointer(to: &preferences) { LZ4F_compressBound(0, $0) }
        return try run(capacity: bound) { context, destination, capacity, _ in
            LZ4F_compressEnd(context, destination, capacity, nil)
        }
    }

    private func run(
        capacity: Int, _ call: (OpaquePointer, UnsafeMutableRawPointer, Int, UnsafePointer<LZ4F_preferences_t>) -> Int
    ) throws(LZ4Error) -> UnsafeRawBufferPointer {
        if output.count < capacity {
            output.deallocate()
            output = .allocate(byteCount: capacity, alignment: 16)
        }
        let context = self.context
        let destination = output.baseAddress!
        let written = withUnsafePointer(to: &preferences) { call(context, destination, capacity, $0) }
        if LZ4F_isError(written) != 0 { throw LZ4Error(message: String(cString: LZ4F_getErrorName(written)), offset: 0) }
        return UnsafeRawBufferPointer(start: destination, count: written)
    }
}

/// Reading LZ4 frames.
public enum LZ4Frame {
    /// Decompresses one whole frame, checking its checksums; bytes after the frame are an error.
    /// `limit` bounds the output (a hostile frame cannot make us allocate without end).
    public static func decompress(_ input: UnsafeRawBufferPointer, limit: Int = 1 << 40) throws(LZ4Error) -> [UInt8] {
        var context: OpaquePointer?
        let created = LZ4F_createDecompressionContext(&context, UInt32(LZ4F_VERSION))
        if LZ4F_isError(created) != 0 || context == nil { throw LZ4Error(message: String(cString: LZ4F_getErrorName(created)), offset: 0) }
        defer { LZ4F_freeDecompressionContext(context) }
        var output: [UInt8] = []
        output.reserveCapacity(min(limit, max(input.count * 3, 1 << 16)))
        let chunk = 4 << 20
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { scratch.deallocate() }
        var consumed = 0
        while true {
            var sourceSize = input.count - consumed
            var destinationSize = chunk
            let hint = LZ4F_decompress(context, scratch.baseAddress, &destinationSize, input.baseAddress.map { $0 + consumed }, &sourceSize, nil)
            if LZ4F_isError(hint) != 0 { throw LZ4Error(message: String(cString: LZ4F_getErrorName(hint)), offset: consumed) }
            consumed += sourceSize
            guard output.count + destinationSize <= limit else { throw LZ4Error(message: "content larger than \(limit) bytes", offset: consumed) }
            output.append(contentsOf: UnsafeRawBufferPointer(rebasing: scratch[0..<destinationSize]))
            if hint == 0 {
                guard consumed == input.count else { throw LZ4Error(message: "\(input.count - consumed) bytes after the end of the frame", offset: consumed) }
                return output
            }
            if consumed == input.count && destinationSize == 0 {
                throw LZ4Error(message: "the frame is truncated", offset: consumed)
            }
        }
    }
}
