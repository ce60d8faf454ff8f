import CCRC32C

/// CRC32C (Castagnoli): the CPU instruction where present, else slicing-by-8.
public enum CRC32C {
    @inline(__always)
    public static func checksum(_ bytes: UnsafeRawBufferPointer, extending crc: UInt32 = 0) -> UInt32 {
        cairn_crc32c_extend(crc, bytes.baseAddress, bytes.count)
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    /// The table-driven implementation, for comparing against the hardware one.
    public static func portableChecksum(_ bytes: UnsafeRawBufferPointer, extending crc: UInt32 = 0) -> UInt32 {
        cairn_crc32c_extend_portable(crc, bytes.baseAddress, bytes.count)
    }

    public static var usesHardware: Bool { cairn_crc32c_is_hardware() != 0 }

    /// A CRC stored next to the data it covers is masked (as LevelDB does), so that the CRC of
    /// a string that itself contains CRCs does not degenerate.
    @inline(__always)
    public static func mask(_ crc: UInt32) -> UInt32 { ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8 }

    @inline(__always)
    public static func unmask(_ masked: UInt32) -> UInt32 {
        let rotated = masked &- 0xA282_EAD8
        return (rotated >> 17) | (rotated << 15)
    }
}
