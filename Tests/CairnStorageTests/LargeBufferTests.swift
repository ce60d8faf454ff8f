import CairnStorage
import Testing

@Suite struct LargeBufferTests {
    /// Mapped (from 4 MiB) or allocated, the memory holds what is written across all of it.
    @Test(arguments: [0, 100, 4 << 20, (9 << 20) + 3])
    func holdsWhatIsWritten(byteCount: Int) {
        let buffer = LargeBuffer(byteCount: byteCount)!
        defer { buffer.release() }
        #expect(buffer.bytes.count == byteCount && buffer.bytes.baseAddress != nil)
        for offset in stride(from: 0, to: byteCount, by: 4093) { buffer.bytes[offset] = UInt8(truncatingIfNeeded: offset * 31) }
        for offset in stride(from: 0, to: byteCount, by: 4093) { #expect(buffer.bytes[offset] == UInt8(truncatingIfNeeded: offset * 31)) }
    }

    /// More than any machine has: nil, not a trap.
    @Test func anImpossibleSizeIsNil() {
        #expect(LargeBuffer(byteCount: 1 << 62) == nil)
    }
}
