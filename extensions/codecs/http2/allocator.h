#pragma once

#include <nghttp2/nghttp2.h>

namespace tern {
namespace http2 {

// nghttp2's allocator for every session Tern makes: size classes from 64 bytes to 4 KiB,
// each with a per-thread free list, over malloc. nghttp2 allocates about eleven blocks per
// proxied stream (stream state, header buffers, outbound frames) and frees them when the
// stream ends; glibc spends ~140 instructions per malloc/free pair there, a free list ~20.
// Larger requests go to malloc directly. Lists are capped (about 64 KiB per class and
// thread), so a burst's blocks do not stay hoarded. Freeing on another thread than the
// allocating one is fine (the block joins that thread's list). Sanitizer builds use malloc
// throughout, so ASan still sees every block.
nghttp2_mem* sessionAllocator();

} // namespace http2
} // namespace tern
