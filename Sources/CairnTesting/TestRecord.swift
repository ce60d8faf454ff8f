/// Self-describing test payloads: writer id, sequence number and a filler derived from both,
/// so a checker can tell a recovered record from an invented or mangled one.
public enum TestRecord {
    public static func payload(writer: UInt32, sequence: UInt32) -> [UInt8] {
        var rng = SplitMix64(seed: UInt64(writer) << 32 | UInt64(sequence))
        let fillerCount = Int(rng.next() % 240)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(8 + fillerCount)
        withUnsafeBytes(of: writer.littleEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: sequence.littleEndian) { bytes.append(contentsOf: $0) }
        for _ in 0..<fillerCount { bytes.append(UInt8(truncatingIfNeeded: rng.next())) }
        return bytes
    }

    /// (writer, sequence) if `bytes` is exactly a payload this type makes, else nil.
    public static func decode(_ bytes: UnsafeRawBufferPointer) -> (writer: UInt32, sequence: UInt32)? {
        guard bytes.count >= 8 else { return nil }
        let writer = UInt32(littleEndian: bytes.loadUnaligned(as: UInt32.self))
        let sequence = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        let expected = payload(writer: writer, sequence: sequence)
        guard expected.count == bytes.count, expected.elementsEqual(bytes) else { return nil }
        return (writer, sequence)
    }
}

/// Checks a recovered log against what writers appended and what was acknowledged.
///
/// Properties: (a) every acknowledged record is present at its index (when required: the
/// `always` promise); (b) what is recovered is exactly a prefix of what was appended: indexes
/// run from the first without a gap, every payload is one a writer made, and each writer's
/// records appear in the order it wrote them, none missing in between, none twice.
public struct LogHistoryChecker {
    public struct Ack: Sendable, Hashable {
        public var writer: UInt32
        public var sequence: UInt32
        public var index: UInt64
        public init(writer: UInt32, sequence: UInt32, index: UInt64) {
            self.writer = writer
            self.sequence = sequence
            self.index = index
        }
    }

    public private(set) var violations: [String] = []
    public private(set) var recoveredCount = 0
    private var expectedIndex: UInt64
    private var nextSequence: [UInt32: UInt32] = [:]
    private var recovered: [UInt64: (UInt32, UInt32)] = [:]

    public init(firstIndex: UInt64 = 1) { expectedIndex = firstIndex }

    /// Feed recovered records in order.
    public mutating func observe(index: UInt64, payload: UnsafeRawBufferPointer) {
        recoveredCount += 1
        if index != expectedIndex { violations.append("gap or reorder: index \(index) where \(expectedIndex) was expected") }
        expectedIndex = index + 1
        guard let (writer, sequence) = TestRecord.decode(payload) else {
            violations.append("index \(index): payload is not one any writer made")
            return
        }
        let next = nextSequence[writer, default: 0]
        if sequence != next {
            violations.append("index \(index): writer \(writer) sequence \(sequence), expected \(next) (lost or duplicated record)")
        }
        nextSequence[writer] = sequence + 1
        recovered[index] = (writer, sequence)
    }

    /// Checks acknowledged records; `mustBePresent` under `always`.
    public mutating func check(acks: [Ack], mustBePresent: Bool) {
        var missing = 0
        for ack in acks {
            if let (writer, sequence) = recovered[ack.index] {
                if writer != ack.writer || sequence != ack.sequence {
                    violations.append("index \(ack.index) holds writer \(writer)/\(sequence), but \(ack.writer)/\(ack.sequence) was acknowledged there")
                }
            } else if mustBePresent {
                missing += 1
                if missing <= 5 { violations.append("acknowledged index \(ack.index) (writer \(ack.writer) seq \(ack.sequence)) was lost") }
            }
        }
        if missing > 5 { violations.append("... \(missing) acknowledged records lost in all") }
    }
}
