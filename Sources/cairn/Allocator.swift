import CMimalloc
import Foundation

/// The allocator this process runs on. The `cairn` executable links Debian's mimalloc ahead of
/// libc, so mimalloc's `malloc` serves the whole process (see `Sources/CMimalloc/shim.h`); this
/// checks that it really does rather than assuming it.
enum Allocator {
    /// Asks mimalloc for 2 MiB pages (transparent huge pages, where the kernel allows): a store
    /// of a million keys is hundreds of MB of small objects, and its first touch cost one page
    /// fault per 4 KiB (a fresh process's snapshot load of 1M keys: 115k faults -> 26k, load
    /// 0.238 -> 0.210 s, medians of eight interleaved). Called first thing in `main`.
    static func configure() {
        mi_option_set(mi_option_large_os_pages, 1)
    }

    /// `mimalloc-2.0.9`, as Redis's INFO says `jemalloc-5.3.0`; `libc` if a `malloc` block is not
    /// mimalloc's (a loader that bound glibc's first, or an `LD_PRELOAD` of another allocator).
    static let name: String = {
        let probe = malloc(64)
        defer { free(probe) }
        guard let probe, mi_is_in_heap_region(probe) else { return "libc" }
        let version = Int(mi_version())
        return "mimalloc-\(version / 100).\(version / 10 % 10).\(version % 10)"
    }()
}
