import NIOCore

/// The `ByteBuffer` a connection hands its encoded replies to NIO in, reused once NIO has
/// written it: a new buffer for every flush allocated a storage object and its bytes, once a
/// request at `redis-benchmark -P 1`.
///
/// While NIO still holds the last one (a socket that took less than all of it), `clear()` finds
/// the storage shared and allocates another: reuse never changes what is sent.
struct SendBuffer {
    private var kept: ByteBuffer?
    /// A buffer that grew past this is let go after use, so that one large reply does not pin
    /// its memory to the connection.
    static let keptCapacityLimit = 64 << 10

    /// A buffer holding exactly `bytes`, for one `context.write`.
    ///
    /// ```swift
    /// context.write(wrapOutboundOut(sendBuffer.holding(out, allocator: context.channel.allocator)), promise: nil)
    /// ```
    mutating func holding(_ bytes: [UInt8], allocator: ByteBufferAllocator) -> ByteBuffer {
        // Moved out of `kept`, never copied: a second reference here made `clear()` allocate.
        guard var buffer = kept.take() else {
            let fresh = allocator.buffer(bytes: bytes)
            if fresh.capacity <= Self.keptCapacityLimit { kept = fresh }
            return fresh
        }
        buffer.clear()  // (keeps the storage when NIO is done with it)
        buffer.writeBytes(bytes)
        assert(buffer.readableBytes == bytes.count, "a send buffer holds exactly its bytes")
        if buffer.capacity <= Self.keptCapacityLimit { kept = buffer }
        return buffer
    }
}
