#pragma once

#include <cstddef>

namespace tern {
namespace common {

// Returns memory that the allocator holds free (after a burst of connections or
// requests) to the kernel, as Envoy's shrink_heap overload action does. Cheap when there
// is nothing to return: it reads the allocator's free-byte count and trims only when that
// grew by at least `min_growth` since the last trim. Call from a non-worker thread.
// Returns the bytes that were free before a trim, or 0 when it did not trim.
size_t shrinkHeapIfWorthIt(size_t min_growth = size_t(1) << 20);

} // namespace common
} // namespace tern
