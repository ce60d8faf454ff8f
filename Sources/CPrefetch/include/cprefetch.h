#ifndef CAIRN_CPREFETCH_H
#define CAIRN_CPREFETCH_H

/// Asks the CPU to start loading the cache line at `address` for reading. Never faults, so an
/// address that is not mapped (or not a pointer at all) only wastes the hint. Swift has no
/// prefetch of its own; the snapshot walk uses this to overlap the cache misses of the objects
/// it is about to serialise.
static inline void cairn_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

#endif
