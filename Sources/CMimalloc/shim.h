// Debian's libmimalloc-dev. Linked into the `cairn` executable only: being a NEEDED library
// loaded before libc, its malloc and free replace glibc's for the whole process (the Swift
// runtime included), as jemalloc does for redis-server. Embedders keep their own allocator.
#include <mimalloc.h>
