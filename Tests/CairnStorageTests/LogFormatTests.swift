import CairnStorage
import Testing

@Suite struct CRC32CTests {
    @Test func knownVectors() {
        // RFC 3720 B.4 and the classic check value.
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum(Array(0..<32)) == 0x46DD_794E)
    }

    @Test func hardwareMatchesTableAtEveryLengthAndAlignment() {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<4200).map { _ in UInt8.random(in: 0...255, using: &rng) }
        bytes.withUnsafeBytes { raw in
            for start in 0..<9 {
                for length in [0, 1, 7, 8, 9, 31, 32, 33, 100, 1000, 4096] {
                    let slice = UnsafeRawBufferPointer(rebasing: raw[start..<(start + length)])
                    #expect(CRC32C.checksum(slice) == CRC32C.portableChecksum(slice))
                }
            }
        }
    }

    @Test func extendingIsTheSameAsOneChecksum() {
        let bytes = Array((0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) })
        bytes.withUnsafeBytes { raw in
            let whole = CRC32C.checksum(raw)
            let first = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<333]))
            #expect(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[333...]), extending: first) == whole)
        }
    }

    @Test func maskRoundTrips() {
        for value: UInt32 in [0, 1, 0xDEAD_BEEF, .max] { #expect(CRC32C.unmask(CRC32C.mask(value)) == value) }
    }
}

@Suite struct LogFormatTests {
    func encode(index: UInt64, term: UInt64 = 0, payload: [UInt8]) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: LogFormat.recordSize(payloadLength: payload.count))
        buffer.withUnsafeMutableBytes { destination in
            payload.withUnsafeBytes { source in
                _ = LogFormat.encode(index: index, term: term, payload: source, into: destination.baseAddress!)
            }
        }
        return buffer
    }

    @Test func sizesAreAlignedWithATrailer() {
        #expect(LogFormat.recordSize(payloadLength: 0) == 32)
        #expect(LogFormat.recordSize(payloadLength: 7) == 32)
        #expect(LogFormat.recordSize(payloadLength: 8) == 40)
        #expect(LogFormat.recordSize(payloadLength: 128) == 160)
        for length in 0..<100 {
            let size = LogFormat.recordSize(payloadLength: length)
            #expect(size % 8 == 0 && size >= 24 + length + 1 && size < 24 + length + 9)
        }
    }

    @Test func roundTrip() {
        for length in [0, 1, 5, 100, 4000] {
            let payload = (0..<length).map { UInt8(truncatingIfNeeded: $0) }
            let bytes = encode(index: 42, term: 7, payload: payload)
            #expect(bytes.last == LogFormat.trailerByte)
            bytes.withUnsafeBytes { raw in
                guard case .record(let record) = LogFormat.decode(raw, at: 0) else {
                    Issue.record("record did not decode")
                    return
                }
                #expect(record.index == 42 && record.term == 7 && record.size == bytes.count)
                #expect(Array(record.payload) == payload)
            }
        }
    }

    @Test func everyFlippedBitIsCaught() {
        let bytes = encode(index: 9, term: 3, payload: Array("a payload of some bytes".utf8))
        for bit in 0..<(bytes.count * 8) {
            var damaged = bytes
            damaged[bit / 8] ^= UInt8(1 << (bit % 8))
            damaged.withUnsafeBytes { raw in
                if case .record = LogFormat.decode(raw, at: 0) {
                    Issue.record("flipped bit \(bit) (byte \(bit / 8)) went unnoticed")
                }
            }
        }
    }

    @Test func everyTruncationIsCaught() {
        let bytes = encode(index: 1, payload: Array(repeating: 0x11, count: 50))
        for cut in 1..<bytes.count {
            Array(bytes[0..<cut]).withUnsafeBytes { raw in
                if case .record = LogFormat.decode(raw, at: 0) { Issue.record("truncation to \(cut) bytes went unnoticed") }
            }
        }
    }

    @Test func zeroHeaderIsTheEnd() {
        [UInt8](repeating: 0, count: 64).withUnsafeBytes { raw in
            guard case .end = LogFormat.decode(raw, at: 0) else { Issue.record("zeros are not the end"); return }
        }
        [UInt8](repeating: 0, count: 10).withUnsafeBytes { raw in
            guard case .end = LogFormat.decode(raw, at: 0) else { Issue.record("short zeros are not the end"); return }
        }
        [UInt8](repeating: 1, count: 10).withUnsafeBytes { raw in
            guard case .defect(.truncatedHeader) = LogFormat.decode(raw, at: 0) else { Issue.record("short garbage passed"); return }
        }
    }

    @Test func aTrailerOtherThanA5IsRejectedEvenWithAMatchingChecksum() {
        // Found by FuzzRecordDecoder: bytes whose checksum matches but whose trailer is wrong.
        var bytes = encode(index: 1, payload: [])
        for i in 24..<32 { bytes[i] = 0x61 }
        let crc = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[4...])) }
        withUnsafeBytes(of: CRC32C.mask(crc).littleEndian) { for i in 0..<4 { bytes[i] = $0[i] } }
        bytes.withUnsafeBytes { raw in
            guard case .defect(.trailerMismatch) = LogFormat.decode(raw, at: 0) else { Issue.record("bad trailer accepted"); return }
        }
    }

    @Test func oversizedLengthIsRejectedBeforeTheChecksum() {
        var bytes = encode(index: 1, payload: [1, 2, 3])
        bytes[4] = 0xFF; bytes[5] = 0xFF; bytes[6] = 0xFF; bytes[7] = 0x7F
        bytes.withUnsafeBytes { raw in
            guard case .defect(.lengthOutOfRange) = LogFormat.decode(raw, at: 0) else { Issue.record("huge length passed"); return }
        }
    }

    @Test func segmentNames() {
        #expect(LogFormat.segmentName(firstIndex: 1) == "log-00000000000000000001.seg")
        #expect(LogFormat.segmentFirstIndex(fileName: "log-00000000000000000001.seg") == 1)
        #expect(LogFormat.segmentFirstIndex(fileName: LogFormat.segmentName(firstIndex: .max)) == .max)
        #expect(LogFormat.segmentFirstIndex(fileName: "log-1.seg") == nil)
        #expect(LogFormat.segmentFirstIndex(fileName: "MANIFEST") == nil)
        #expect(LogFormat.segmentFirstIndex(fileName: "log-0000000000000000000x.seg") == nil)
    }
}
