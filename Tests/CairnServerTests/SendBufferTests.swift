import NIOCore
import Testing

@testable import CairnServer

@Suite struct SendBufferTests {
    /// A buffer handed out earlier (NIO may still hold it) keeps its bytes when the next one is
    /// made; each holds exactly what it was given.
    @Test func reuseNeverChangesWhatWasHandedOut() {
        var send = SendBuffer()
        let allocator = ByteBufferAllocator()
        let first = send.holding(Array("+OK\r\n".utf8), allocator: allocator)
        let second = send.holding(Array(":42\r\n".utf8), allocator: allocator)
        #expect(first.getString(at: first.readerIndex, length: first.readableBytes) == "+OK\r\n")
        #expect(second.getString(at: second.readerIndex, length: second.readableBytes) == ":42\r\n")
        let third = send.holding([], allocator: allocator)
        #expect(third.readableBytes == 0)
        #expect(second.readableBytes == 5)
    }

    /// Once the last buffer is let go (NIO wrote it), the next reuses its storage.
    @Test func aBufferNobodyHoldsIsReused() {
        var send = SendBuffer()
        let allocator = ByteBufferAllocator()
        var address: UInt?
        for round in 0..<3 {
            let buffer = send.holding(Array(repeating: UInt8(round), count: 100), allocator: allocator)
            let here = buffer.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
            if let address { #expect(here == address, "round \(round)") }
            address = here
            #expect(buffer.readableBytesView.allSatisfy { $0 == UInt8(round) })
        }
    }

    /// A buffer grown past the limit (a large reply) is not kept for the next one.
    @Test func aLargeBufferIsNotKept() {
        var send = SendBuffer()
        let allocator = ByteBufferAllocator()
        let large = send.holding(Array(repeating: 7, count: SendBuffer.keptCapacityLimit + 1), allocator: allocator)
        #expect(large.readableBytes == SendBuffer.keptCapacityLimit + 1)
        _ = consume large
        let small = send.holding([1, 2, 3], allocator: allocator)
        #expect(small.capacity <= SendBuffer.keptCapacityLimit)  // kept, the large storage would be reused
        #expect(Array(small.readableBytesView) == [1, 2, 3])
    }
}
