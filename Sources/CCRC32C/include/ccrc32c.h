#ifndef CAIRN_CCRC32C_H
#define CAIRN_CCRC32C_H
#include <stddef.h>
#include <stdint.h>

/// Extends a CRC32C (Castagnoli) value over `length` bytes. Start with crc = 0.
/// Uses the CPU's CRC32C instruction when present (SSE4.2 on x86-64, CRC on ARMv8),
/// else a slicing-by-8 table. Both give identical results.
uint32_t cairn_crc32c_extend(uint32_t crc, const void *data, size_t length);

/// The portable slicing-by-8 implementation, exposed so tests can compare it with the hardware one.
uint32_t cairn_crc32c_extend_portable(uint32_t crc, const void *data, size_t length);

/// 1 when the hardware path is in use.
int cairn_crc32c_is_hardware(void);

#endif
