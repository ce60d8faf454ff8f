/// The hash a ``KeyTable`` places keys by: SipHash with a random 128-bit key drawn once per
/// process, the same function and keying as Swift's `Hasher` (and Redis's dict), so keys a
/// client chooses cannot be aimed at one slot; written out for byte strings because `Hasher`'s
/// general streaming interface cost more than the hashing itself (about 25 ns a 16-byte key,
/// against about 10 here).
///
/// ```swift
/// let h = KeyHash.hash(Bytes("user:1"))   // stable within the process, different across runs
/// ```
@usableFromInline
enum KeyHash {
    /// The process's key (two 64-bit halves), drawn on first use.
    @usableFromInline static let key: (UInt64, UInt64) = {
        var generator = SystemRandomNumberGenerator()
        return (generator.next(), generator.next())
    }()

    @inlinable static func hash(_ bytes: Bytes) -> UInt64 {
        bytes.storage.withUnsafeBytes { siphash($0, key: key, compressionRounds: 1, finalizationRounds: 3) }
    }

    /// SipHash-c-d of `message` under `key` (c = 1, d = 3 for tables; c = 2, d = 4 is the
    /// paper's SipHash-2-4, whose published vectors the tests check).
    @inlinable static func siphash(
        _ message: UnsafeRawBufferPointer, key: (UInt64, UInt64), compressionRounds: Int, finalizationRounds: Int
    ) -> UInt64 {
        var v0: UInt64 = 0x736f_6d65_7073_6575 ^ key.0
        var v1: UInt64 = 0x646f_7261_6e64_6f6d ^ key.1
        var v2: UInt64 = 0x6c79_6765_6e65_7261 ^ key.0
        var v3: UInt64 = 0x7465_6462_7974_6573 ^ key.1
        @inline(__always) func round() {
            v0 &+= v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32)
            v2 &+= v3; v3 = rotl(v3, 16); v3 ^= v2
            v0 &+= v3; v3 = rotl(v3, 21); v3 ^= v0
            v2 &+= v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32)
        }
        let count = message.count
        var offset = 0
        while offset + 8 <= count {
            let m = UInt64(littleEndian: message.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            v3 ^= m
            for _ in 0..<compressionRounds { round() }
            v0 ^= m
            offset += 8
        }
        // The last 0-7 bytes, with the length's low byte on top.
        var last = UInt64(truncatingIfNeeded: count) << 56
        var shift: UInt64 = 0
        while offset < count {
            last |= UInt64(message[offset]) << shift
            shift += 8
            offset += 1
        }
        v3 ^= last
        for _ in 0..<compressionRounds { round() }
        v0 ^= last
        v2 ^= 0xff
        for _ in 0..<finalizationRounds { round() }
        return v0 ^ v1 ^ v2 ^ v3
    }

    @inlinable @inline(__always) static func rotl(_ x: UInt64, _ count: UInt64) -> UInt64 { (x &<< count) | (x &>> (64 &- count)) }
}
