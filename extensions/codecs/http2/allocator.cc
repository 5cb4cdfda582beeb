#include "extensions/codecs/http2/allocator.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "source/common/common/recycler.h"

namespace tern {
namespace http2 {
namespace {

#ifndef TERN_RECYCLER_DISABLED

// Each block starts with a 16-byte header (keeping the payload 16-byte aligned) that names
// its class; kDirect marks a block from malloc of any size.
constexpr size_t kHeader = 16;
constexpr int kClasses = 7; // 64, 128, ..., 4096 bytes of payload
constexpr uint32_t kDirect = 0xff;
constexpr size_t kListBytes = 64 * 1024;

struct FreeBlock {
  FreeBlock* next;
};

struct Lists {
  FreeBlock* head[kClasses] = {};
  uint32_t count[kClasses] = {};
  ~Lists() {
    for (int c = 0; c < kClasses; c++) {
      while (head[c] != nullptr) {
        FreeBlock* next = head[c]->next;
        std::free(head[c]);
        head[c] = next;
      }
    }
  }
};
thread_local Lists t_lists;

inline size_t classSize(int c) { return size_t(64) << c; }

inline int classFor(size_t size) {
  if (size <= 64) return 0;
  if (size > classSize(kClasses - 1)) return -1;
  return 64 - __builtin_clzll(size - 1) - 6; // ceil(log2(size)) - 6
}

inline uint32_t& headerOf(void* payload) {
  return *reinterpret_cast<uint32_t*>(static_cast<char*>(payload) - kHeader);
}

void* allocate(size_t size, void*) {
  const int c = classFor(size);
  if (c < 0) {
    char* raw = static_cast<char*>(std::malloc(kHeader + size));
    if (raw == nullptr) return nullptr;
    *reinterpret_cast<uint32_t*>(raw) = kDirect;
    return raw + kHeader;
  }
  Lists& l = t_lists;
  char* raw;
  if (FreeBlock* b = l.head[c]) {
    l.head[c] = b->next;
    l.count[c]--;
    raw = reinterpret_cast<char*>(b);
  } else {
    raw = static_cast<char*>(std::malloc(kHeader + classSize(c)));
    if (raw == nullptr) return nullptr;
  }
  *reinterpret_cast<uint32_t*>(raw) = static_cast<uint32_t>(c);
  return raw + kHeader;
}

void release(void* payload, void*) {
  if (payload == nullptr) return;
  char* raw = static_cast<char*>(payload) - kHeader;
  const uint32_t c = headerOf(payload);
  if (c != kDirect) {
    Lists& l = t_lists;
    if (l.count[c] < kListBytes / classSize(c)) {
      FreeBlock* b = reinterpret_cast<FreeBlock*>(raw);
      b->next = l.head[c];
      l.head[c] = b;
      l.count[c]++;
      return;
    }
  }
  std::free(raw);
}

void* allocateZeroed(size_t n, size_t size, void* ud) {
  if (size != 0 && n > SIZE_MAX / size) return nullptr;
  void* p = allocate(n * size, ud);
  if (p != nullptr) std::memset(p, 0, n * size);
  return p;
}

void* reallocate(void* payload, size_t size, void* ud) {
  if (payload == nullptr) return allocate(size, ud);
  if (size == 0) {
    release(payload, ud);
    return nullptr;
  }
  const uint32_t c = headerOf(payload);
  if (c == kDirect) {
    if (classFor(size) < 0) { // stays direct: let realloc move it if it must
      char* raw = static_cast<char*>(
          std::realloc(static_cast<char*>(payload) - kHeader, kHeader + size));
      return raw == nullptr ? nullptr : raw + kHeader;
    }
  } else if (size <= classSize(c)) {
    return payload; // still fits its block
  }
  // Copy what both blocks can hold: a class block's capacity when it grows; a direct block
  // (always larger than the largest class) moving into a class keeps `size` bytes.
  void* fresh = allocate(size, ud);
  if (fresh == nullptr) return nullptr;
  const size_t old = c == kDirect ? size : classSize(c);
  std::memcpy(fresh, payload, old < size ? old : size);
  release(payload, ud);
  return fresh;
}

#else

void* allocate(size_t size, void*) { return std::malloc(size); }
void release(void* p, void*) { std::free(p); }
void* allocateZeroed(size_t n, size_t size, void*) {
  if (size != 0 && n > SIZE_MAX / size) return nullptr; // ASan's calloc would abort
  return std::calloc(n, size);
}
void* reallocate(void* p, size_t size, void*) { return std::realloc(p, size); }

#endif

nghttp2_mem g_mem = {nullptr, allocate, release, allocateZeroed, reallocate};

} // namespace

nghttp2_mem* sessionAllocator() { return &g_mem; }

} // namespace http2
} // namespace tern
