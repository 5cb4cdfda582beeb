#include "source/common/common/heap.h"

#include <malloc.h>

#include <atomic>

namespace tern {
namespace common {

size_t shrinkHeapIfWorthIt(size_t min_growth) {
  // Free bytes at the last trim, or the lowest seen since: trimming does not lower the
  // count (the pages go back, the chunks stay free), reuse does.
  static std::atomic<size_t> baseline{0};
  struct mallinfo2 mi = mallinfo2();
  const size_t free_bytes = mi.fordblks;
  if (free_bytes < baseline.load()) baseline.store(free_bytes);
  if (free_bytes < baseline.load() + min_growth) return 0;
  malloc_trim(0);
  baseline.store(free_bytes);
  return free_bytes;
}

} // namespace common
} // namespace tern
