// The nghttp2 session allocator: blocks of every size class and beyond, zeroed blocks,
// reallocation within a class, across classes and to and from malloc-sized blocks, all
// keeping their bytes; and a block freed on one thread reused on another.
#include "extensions/codecs/http2/allocator.h"

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "source/common/common/recycler.h"

namespace tern {
namespace http2 {
namespace {

nghttp2_mem& mem() { return *sessionAllocator(); }

void fill(void* p, size_t n, char seed) {
  for (size_t i = 0; i < n; i++) static_cast<char*>(p)[i] = static_cast<char>(seed + i * 7);
}
bool holds(const void* p, size_t n, char seed) {
  for (size_t i = 0; i < n; i++) {
    if (static_cast<const char*>(p)[i] != static_cast<char>(seed + i * 7)) return false;
  }
  return true;
}

TEST(Http2AllocatorTest, EverySizeIsUsableAndAligned) {
  std::vector<std::pair<void*, size_t>> blocks;
  for (size_t n : {1, 63, 64, 65, 127, 128, 500, 1024, 2047, 4096, 4097, 100000}) {
    void* p = mem().malloc(n, mem().mem_user_data);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u) << n;
    fill(p, n, static_cast<char>(n));
    blocks.emplace_back(p, n);
  }
  for (auto& [p, n] : blocks) {
    EXPECT_TRUE(holds(p, n, static_cast<char>(n))) << n; // no block overlaps another
    mem().free(p, mem().mem_user_data);
  }
  mem().free(nullptr, mem().mem_user_data);
}

TEST(Http2AllocatorTest, CallocZeroesAndRefusesOverflow) {
  for (int round = 0; round < 2; round++) { // the second round gets recycled blocks
    void* p = mem().calloc(30, 17, mem().mem_user_data);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(std::string(static_cast<char*>(p), 510), std::string(510, '\0'));
    fill(p, 510, 1); // dirty it for the next round
    mem().free(p, mem().mem_user_data);
  }
  EXPECT_EQ(mem().calloc(SIZE_MAX / 2, 4, mem().mem_user_data), nullptr);
}

TEST(Http2AllocatorTest, ReallocKeepsTheBytes) {
  void* p = mem().realloc(nullptr, 40, mem().mem_user_data);
  fill(p, 40, 3);
  void* q = mem().realloc(p, 60, mem().mem_user_data);
#ifndef TERN_RECYCLER_DISABLED
  EXPECT_EQ(q, p); // same class (64): same block (plain realloc under ASan may move it)
#endif
  EXPECT_TRUE(holds(q, 40, 3));
  fill(q, 60, 4);
  q = mem().realloc(q, 3000, mem().mem_user_data); // to the 4 KiB class
  EXPECT_TRUE(holds(q, 60, 4));
  fill(q, 3000, 5);
  q = mem().realloc(q, 70000, mem().mem_user_data); // to malloc
  EXPECT_TRUE(holds(q, 3000, 5));
  fill(q, 70000, 6);
  q = mem().realloc(q, 90000, mem().mem_user_data); // malloc to malloc
  EXPECT_TRUE(holds(q, 70000, 6));
  q = mem().realloc(q, 100, mem().mem_user_data); // back into a class
  EXPECT_TRUE(holds(q, 100, 6));
  EXPECT_EQ(mem().realloc(q, 0, mem().mem_user_data), nullptr); // frees
}

TEST(Http2AllocatorTest, BlocksMoveBetweenThreads) {
  std::vector<void*> blocks;
  for (int i = 0; i < 200; i++) blocks.push_back(mem().malloc(200, mem().mem_user_data));
  std::thread([&] {
    for (void* p : blocks) mem().free(p, mem().mem_user_data);
    for (int i = 0; i < 200; i++) {
      void* p = mem().malloc(200, mem().mem_user_data);
      fill(p, 200, 9);
      mem().free(p, mem().mem_user_data);
    }
  }).join(); // the thread's lists are released when it exits
  void* p = mem().malloc(200, mem().mem_user_data);
  fill(p, 200, 8);
  EXPECT_TRUE(holds(p, 200, 8));
  mem().free(p, mem().mem_user_data);
}

} // namespace
} // namespace http2
} // namespace tern
