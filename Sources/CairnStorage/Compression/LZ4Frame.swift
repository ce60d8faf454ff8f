import CLZ4

/// Why liblz4 refused a frame.
public struct LZ4Error: Error, Sendable, Equatable, CustomStringConvertible {
    /// liblz4's own name for the error (`LZ4F_getErrorName`), or ours.
    public var message: String
    /// Compressed bytes consumed before the error.
    public var offset: Int

    public var description: String { "LZ4 frame error at compressed byte \(offset): \(message)" }

    public init(message: String, offset: Int) {
        self.message = message
        self.offset = offset
    }
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
    /// The largest block our frames hold (`LZ4F_max4MB`). An output buffer this large takes a
    /// block directly; a smaller one makes liblz4 decompress into a buffer of its own and copy.
    public static let largestBlock = 4 << 20

    /// The first and last magic number of *skippable* frames (little-endian, then a 4-byte
    /// length and that many bytes of the writer's own), which every LZ4 reader passes over.
    public static let skippableMagic: ClosedRange<UInt32> = 0x184D_2A50...0x184D_2A5F

    /// A skippable frame holding `payload`, with magic number `skippableMagic.lowerBound + nibble`.
    public static func skippableFrame(nibble: UInt32, payload: [UInt8]) -> [UInt8] {
        precondition(nibble < 16 && payload.count <= Int(UInt32.max))
        var frame: [UInt8] = []
        withUnsafeBytes(of: (skippableMagic.lowerBound + nibble).littleEndian) { frame.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(payload.count).littleEndian) { frame.append(contentsOf: $0) }
        return frame + payload
    }

    /// Decompresses one whole frame, checking its checksums; after it only skippable frames may
    /// follow (they are checked and passed over). `limit` bounds the output (a hostile frame
    /// cannot make us allocate without end).
    public static func decompress(_ input: UnsafeRawBufferPointer, limit: Int = 1 << 40) throws(LZ4Error) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(min(limit, max(input.count * 3, 1 << 16)))
        let chunk = 4 << 20
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { scratch.deallocate() }
        try decompress(input) { (context, consumed) throws(LZ4Error) in
            var sourceSize = input.count - consumed
            var destinationSize = chunk
            let hint = LZ4F_decompress(context, scratch.baseAddress, &destinationSize, input.baseAddress.map { $0 + consumed }, &sourceSize, nil)
            if LZ4F_isError(hint) == 0 {
                guard output.count + destinationSize <= limit else { throw LZ4Error(message: "content larger than \(limit) bytes", offset: consumed + sourceSize) }
                output.append(contentsOf: UnsafeRawBufferPointer(rebasing: scratch[0..<destinationSize]))
            }
            return (hint, sourceSize, destinationSize)
        }
        return output
    }

    /// Runs `step` (one `LZ4F_decompress` call: its result, input consumed, output produced)
    /// until the frame ends, then checks that only skippable frames follow it.
    private static func decompress(
        _ input: UnsafeRawBufferPointer, _ step: (OpaquePointer, Int) throws(LZ4Error) -> (hint: Int, consumed: Int, produced: Int)
    ) throws(LZ4Error) {
        var context: OpaquePointer?
        let created = LZ4F_createDecompressionContext(&context, UInt32(LZ4F_VERSION))
        if LZ4F_isError(created) != 0 || context == nil { throw LZ4Error(message: String(cString: LZ4F_getErrorName(created)), offset: 0) }
        defer { LZ4F_freeDecompressionContext(context) }
        var consumed = 0
        while true {
            let (hint, used, produced) = try step(context!, consumed)
            if LZ4F_isError(hint) != 0 { throw LZ4Error(message: String(cString: LZ4F_getErrorName(hint)), offset: consumed) }
            consumed += used
            if hint == 0 { break }
            if consumed == input.count && produced == 0 { throw LZ4Error(message: "the frame is truncated", offset: consumed) }
        }
        try checkSkippableFrames(input, from: consumed)
    }

    /// Checks that the bytes of `input` from `offset` on are whole skippable frames (what may
    /// follow a frame).
    public static func checkSkippableFrames(_ input: UnsafeRawBufferPointer, from offset: Int) throws(LZ4Error) {
        var consumed = offset
        while consumed < input.count {
            guard input.count - consumed >= 8,
                  skippableMagic.contains(UInt32(littleEndian: input.loadUnaligned(fromByteOffset: consumed, as: UInt32.self))) else {
                throw LZ4Error(message: "\(input.count - consumed) bytes after the end of the frame", offset: consumed)
            }
            let length = Int(UInt32(littleEndian: input.loadUnaligned(fromByteOffset: consumed + 4, as: UInt32.self)))
            guard length <= input.count - consumed - 8 else { throw LZ4Error(message: "a skippable frame of \(length) bytes is truncated", offset: consumed) }
            consumed += 8 + length
        }
    }
}

/// Decompresses one LZ4 frame whose bytes arrive piece by piece (read from a file while the
/// output is used), into output buffers the caller places.
///
/// ```swift
/// let decompressor = try LZ4FrameDecompressor()
/// let step = try decompressor.decompress(arrived, into: free)   // as often as needed
/// // step.consumed input bytes used, step.produced output bytes written, step.ended at the frame's end
/// ```
public final class LZ4FrameDecompressor {
    private let context: OpaquePointer
    private var options = LZ4F_decompressOptions_t()
    /// Input consumed so far (where errors are reported).
    public private(set) var consumed = 0

    /// `checksums: false` skips the frame's content and block checksums (liblz4's
    /// `skipChecksums`): only for a caller that checks a checksum of its own over the same
    /// content, as a snapshot's load does. XXH32 of the content was 40% of the decompressing
    /// thread's time there. `stableOutput: true` pledges that each output buffer follows the
    /// previous one in memory and that the bytes written stay unchanged (liblz4's `stableDst`),
    /// so liblz4 keeps no copy of the last 64 KiB for the next block.
    public init(checksums: Bool = true, stableOutput: Bool = false) throws(LZ4Error) {
        var context: OpaquePointer?
        let created = LZ4F_createDecompressionContext(&context, UInt32(LZ4F_VERSION))
        if LZ4F_isError(created) != 0 || context == nil { throw LZ4Error(message: String(cString: LZ4F_getErrorName(created)), offset: 0) }
        self.context = context!
        options.skipChecksums = checksums ? 0 : 1
        options.stableDst = stableOutput ? 1 : 0
    }

    deinit { LZ4F_freeDecompressionContext(context) }

    /// Decompresses what it can of `input` into `output`. Writes into `output` only; an empty
    /// `output` still lets it read headers and checksums (and shows whether more content comes:
    /// content with no room for it is an error).
    public func decompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws(LZ4Error) -> (consumed: Int, produced: Int, ended: Bool) {
        var sourceSize = input.count
        // With no room, one byte of scratch: a byte written there is content beyond the end.
        var destinationSize = max(output.count, 1)
        var spare: UInt8 = 0
        let hint = withUnsafeMutableBytes(of: &spare) { spare in
            LZ4F_decompress(context, output.count > 0 ? output.baseAddress : spare.baseAddress, &destinationSize,
                            input.baseAddress, &sourceSize, &options)
        }
        if LZ4F_isError(hint) != 0 { throw LZ4Error(message: String(cString: LZ4F_getErrorName(hint)), offset: consumed) }
        if output.count == 0 && destinationSize > 0 { throw LZ4Error(message: "more content than expected", offset: consumed) }
        consumed += sourceSize
        return (sourceSize, destinationSize, hint == 0)
    }
}
