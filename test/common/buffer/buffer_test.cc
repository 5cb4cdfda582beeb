// Buffer: a slice chain over pooled blocks. Most tests use a pool of tiny (64-byte) blocks
// so that a few hundred bytes already cross many block boundaries, and check the pool's
// inUse() count to catch leaked or double-freed blocks.
#include "source/common/buffer/buffer.h"

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "source/common/buffer/block_pool.h"

namespace tern {
namespace buffer {
namespace {

constexpr uint32_t kBlock = 64;

// Bytes that differ at every offset (mod 251), so a misplaced copy shows.
std::string pattern(size_t n, size_t seed = 0) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i++) s[i] = static_cast<char>((i + seed) % 251);
  return s;
}

std::string readable(const Buffer& b, size_t max_iov = 1024) {
  std::vector<iovec> iov(max_iov);
  size_t n = b.getReadableSlices(iov.data(), iov.size());
  std::string out;
  for (size_t i = 0; i < n; i++) out.append(static_cast<char*>(iov[i].iov_base), iov[i].iov_len);
  return out;
}

class BufferTest : public testing::Test {
protected:
  BlockPool pool_{kBlock, 1024};
};

TEST_F(BufferTest, EmptyBufferHoldsNoBlock) {
  Buffer b(&pool_);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.length(), 0u);
  EXPECT_EQ(b.sliceCount(), 0u);
  EXPECT_EQ(pool_.inUse(), 0);
  b.add("x");
  EXPECT_EQ(pool_.inUse(), 1);
  b.drain(1);
  // Drained to empty: the block goes back at once, not when the buffer dies.
  EXPECT_EQ(b.sliceCount(), 0u);
  EXPECT_EQ(pool_.inUse(), 0);
}

TEST_F(BufferTest, AddAcrossBlockBoundaries) {
  Buffer b(&pool_);
  std::string data = pattern(1000);
  b.add(data.data(), 10);
  b.add(data.data() + 10, 990);
  EXPECT_EQ(b.length(), 1000u);
  EXPECT_EQ(b.toString(), data);
  // Adds fill the tail before taking a new block: ceil(1000 / 64) blocks.
  EXPECT_EQ(b.sliceCount(), 16u);
  EXPECT_EQ(pool_.inUse(), 16);
  b.clear();
  EXPECT_EQ(pool_.inUse(), 0);
}

// append(n): n contiguous bytes in the tail block when they fit, else in a new block
// (the tail's room is left unused); nullptr, and nothing changed, past a block's size.
TEST_F(BufferTest, AppendIsContiguous) {
  Buffer b(&pool_);
  b.add(std::string(60, 'a'));
  char* p = b.append(4);
  ASSERT_NE(p, nullptr);
  std::memcpy(p, "bcde", 4);
  EXPECT_EQ(b.sliceCount(), 1u);
  p = b.append(10); // 0 bytes of room left: a new block
  ASSERT_NE(p, nullptr);
  std::memcpy(p, "0123456789", 10);
  EXPECT_EQ(b.sliceCount(), 2u);
  p = b.append(60); // 54 left in the tail: another block
  ASSERT_NE(p, nullptr);
  std::memset(p, 'z', 60);
  EXPECT_EQ(b.sliceCount(), 3u);
  EXPECT_EQ(b.toString(), std::string(60, 'a') + "bcde0123456789" + std::string(60, 'z'));
  EXPECT_EQ(b.append(kBlock + 1), nullptr);
  EXPECT_EQ(b.length(), 134u);
  EXPECT_EQ(pool_.inUse(), 3);
}

// Blocks of 64 bytes: a contiguous view exists only inside one slice; writes in place
// land across slice boundaries and leave the rest alone.
TEST_F(BufferTest, ContiguousAtAndWriteAtAcrossSlices) {
  Buffer b(&pool_);
  std::string data = pattern(200);
  b.add(data.data(), data.size());
  b.drain(10); // the first slice now starts inside its block
  std::string expect = data.substr(10);
  const uint8_t* p = b.contiguousAt(0, 54);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(p), 54), expect.substr(0, 54));
  EXPECT_EQ(b.contiguousAt(50, 10), nullptr); // spans the first two slices
  p = b.contiguousAt(60, 20);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(p), 20), expect.substr(60, 20));
  EXPECT_EQ(b.contiguousAt(180, 20), nullptr); // past the end
  b.writeAt(50, "ABCDEFGHIJ", 10); // crosses from slice 0 into slice 1
  expect.replace(50, 10, "ABCDEFGHIJ");
  b.writeAt(0, "z", 1);
  expect[0] = 'z';
  EXPECT_EQ(b.toString(), expect);
  EXPECT_EQ(b.length(), 190u);
}

TEST_F(BufferTest, DestructorReturnsBlocks) {
  {
    Buffer b(&pool_);
    b.add(pattern(300));
    EXPECT_EQ(pool_.inUse(), 5);
  }
  EXPECT_EQ(pool_.inUse(), 0);
}

TEST_F(BufferTest, DrainPartialAndAcrossSlices) {
  Buffer b(&pool_);
  std::string data = pattern(500);
  b.add(data);
  b.drain(10); // inside the first slice
  EXPECT_EQ(b.toString(), data.substr(10));
  EXPECT_EQ(pool_.inUse(), 8);
  b.drain(54); // exactly the rest of the first block
  EXPECT_EQ(b.toString(), data.substr(64));
  EXPECT_EQ(pool_.inUse(), 7);
  b.drain(200); // across several blocks, ending mid-slice
  EXPECT_EQ(b.toString(), data.substr(264));
  EXPECT_EQ(b.length(), 236u);
  EXPECT_EQ(pool_.inUse(), 4);
  b.drain(236);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(pool_.inUse(), 0);
}

TEST_F(BufferTest, CopyOutAndPeekAtEveryOffset) {
  Buffer b(&pool_);
  std::string data = pattern(300, 7);
  b.add(data);
  b.drain(5); // the first slice now starts mid-block
  std::string expect = data.substr(5);
  for (size_t i = 0; i < expect.size(); i++) {
    ASSERT_EQ(b.peek(i), static_cast<uint8_t>(expect[i])) << "index " << i;
  }
  for (size_t start : {0, 1, 58, 59, 60, 64, 123, 200, 294}) {
    for (size_t len : {0, 1, 5, 64, 65, 130}) {
      if (start + len > expect.size()) continue;
      std::string out(len, '?');
      b.copyOut(start, len, out.data());
      EXPECT_EQ(out, expect.substr(start, len)) << "start " << start << " len " << len;
    }
  }
  EXPECT_EQ(b.toString(), expect);
}

TEST_F(BufferTest, AddCopyLeavesSourceUnchanged) {
  Buffer a(&pool_), b(&pool_);
  a.add("head:");
  b.add(pattern(200));
  a.addCopy(b);
  EXPECT_EQ(a.toString(), "head:" + pattern(200));
  EXPECT_EQ(b.toString(), pattern(200));
}

TEST_F(BufferTest, MoveWholeBufferMovesBlocksNotBytes) {
  Buffer a(&pool_), b(&pool_);
  a.add(pattern(640));      // 10 full blocks
  b.add(pattern(320, 3));   // 5 full blocks
  iovec before[8];
  size_t n = b.getReadableSlices(before, 8);
  ASSERT_EQ(n, 5u);
  a.move(b);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.sliceCount(), 0u);
  EXPECT_EQ(a.length(), 960u);
  EXPECT_EQ(a.toString(), pattern(640) + pattern(320, 3));
  // No copy: the same blocks, now in `a`, and no block allocated or freed.
  EXPECT_EQ(pool_.inUse(), 15);
  iovec after[32];
  size_t m = a.getReadableSlices(after, 32);
  ASSERT_EQ(m, 15u);
  for (size_t i = 0; i < 5; i++) EXPECT_EQ(after[10 + i].iov_base, before[i].iov_base);
}

TEST_F(BufferTest, PartialMoveSplitsOneSlice) {
  Buffer src(&pool_), dst(&pool_);
  std::string data = pattern(500);
  src.add(data);
  dst.move(src, 100); // one whole block (64) + 36 bytes of the second
  EXPECT_EQ(dst.toString(), data.substr(0, 100));
  EXPECT_EQ(src.toString(), data.substr(100));
  dst.move(src, 0);
  EXPECT_EQ(dst.length(), 100u);
  dst.move(src, 400);
  EXPECT_TRUE(src.empty());
  EXPECT_EQ(dst.toString(), data);
  EXPECT_EQ(pool_.inUse(), static_cast<int64_t>(dst.sliceCount()));
  dst.clear();
  EXPECT_EQ(pool_.inUse(), 0);
}

// A small slice sitting in its own block is copied into the destination's tail instead of
// handing over the block, so many small writes do not each pin a whole block.
TEST_F(BufferTest, TinySlicesCoalesceOnMove) {
  Buffer dst(&pool_), src(&pool_);
  dst.add("hello"); // tail has 59 bytes of room
  src.add(pattern(128));
  src.drain(124); // 4 bytes left at the end of their own block
  ASSERT_EQ(src.sliceCount(), 1u);
  ASSERT_EQ(pool_.inUse(), 2);
  dst.move(src);
  EXPECT_EQ(dst.toString(), "hello" + pattern(128).substr(124));
  EXPECT_EQ(dst.sliceCount(), 1u);
  EXPECT_EQ(pool_.inUse(), 1) << "the tiny slice's block was not returned";

  // Many tiny pieces: still one block.
  for (int i = 0; i < 10; i++) {
    Buffer piece(&pool_);
    piece.add("ab");
    dst.move(piece);
  }
  EXPECT_EQ(dst.sliceCount(), 1u);
  EXPECT_EQ(dst.toString(), "hello" + pattern(128).substr(124) + "abababababababababab");
  EXPECT_EQ(pool_.inUse(), 1);
}

// Above the tiny-slice threshold a slice is handed over by pointer even when it would fit.
TEST(BufferLargeBlockTest, LargeSliceMovesByPointer) {
  BlockPool pool(4096, 16);
  Buffer dst(&pool), src(&pool);
  dst.add("x");
  src.add(pattern(1000));
  iovec before;
  ASSERT_EQ(src.getReadableSlices(&before, 1), 1u);
  dst.move(src);
  EXPECT_EQ(dst.sliceCount(), 2u);
  iovec after[2];
  ASSERT_EQ(dst.getReadableSlices(after, 2), 2u);
  EXPECT_EQ(after[1].iov_base, before.iov_base);
  EXPECT_EQ(dst.toString(), "x" + pattern(1000));
}

TEST_F(BufferTest, ReserveCommitIntoEmptyBuffer) {
  Buffer b(&pool_);
  iovec iov[8];
  size_t n = b.reserve(200, iov, 8);
  ASSERT_EQ(n, 4u); // 4 x 64 >= 200
  size_t room = 0;
  for (size_t i = 0; i < n; i++) room += iov[i].iov_len;
  EXPECT_GE(room, 200u);
  EXPECT_EQ(pool_.inUse(), 4);
  // Fill 100 bytes across the first two iovecs, as readv would.
  std::string data = pattern(100);
  std::memcpy(iov[0].iov_base, data.data(), 64);
  std::memcpy(iov[1].iov_base, data.data() + 64, 36);
  b.commit(100);
  EXPECT_EQ(b.toString(), data);
  // The two untouched blocks went back to the pool.
  EXPECT_EQ(pool_.inUse(), 2);
  EXPECT_EQ(b.sliceCount(), 2u);
}

TEST_F(BufferTest, ReserveUsesTailRoomFirst) {
  Buffer b(&pool_);
  b.add("abc"); // 61 bytes of room in the tail
  iovec iov[4];
  size_t n = b.reserve(100, iov, 4);
  ASSERT_EQ(n, 2u);
  EXPECT_EQ(iov[0].iov_len, 61u);
  EXPECT_EQ(pool_.inUse(), 2);
  std::memcpy(iov[0].iov_base, "defg", 4);
  b.commit(4); // all of it landed in the tail: the reserved block is returned
  EXPECT_EQ(b.toString(), "abcdefg");
  EXPECT_EQ(b.sliceCount(), 1u);
  EXPECT_EQ(pool_.inUse(), 1);
}

TEST_F(BufferTest, CommitZeroReturnsEverything) {
  Buffer b(&pool_);
  b.add(pattern(10));
  iovec iov[8];
  b.reserve(500, iov, 8);
  EXPECT_GT(pool_.inUse(), 1);
  b.commit(0);
  EXPECT_EQ(pool_.inUse(), 1);
  EXPECT_EQ(b.toString(), pattern(10));
  // A second reservation after a commit works the same way.
  size_t n = b.reserve(64, iov, 8);
  ASSERT_GE(n, 1u);
  std::memcpy(iov[0].iov_base, "Z", 1);
  b.commit(1);
  EXPECT_EQ(b.toString(), pattern(10) + "Z");
}

TEST_F(BufferTest, ReserveHonoursMaxIov) {
  Buffer b(&pool_);
  iovec iov[2];
  EXPECT_EQ(b.reserve(1000, iov, 2), 2u);
  b.commit(0);
  EXPECT_EQ(pool_.inUse(), 0);
  EXPECT_EQ(b.reserve(1000, iov, 0), 0u);
  b.commit(0);
  EXPECT_EQ(pool_.inUse(), 0);
}

TEST_F(BufferTest, FullCommitAcrossManyBlocks) {
  Buffer b(&pool_);
  b.add("ab");
  iovec iov[8];
  size_t n = b.reserve(300, iov, 8);
  std::string data = pattern(62 + 64 * (n - 1), 9);
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    std::memcpy(iov[i].iov_base, data.data() + off, iov[i].iov_len);
    off += iov[i].iov_len;
  }
  ASSERT_EQ(off, data.size());
  b.commit(data.size());
  EXPECT_EQ(b.toString(), "ab" + data);
  EXPECT_EQ(pool_.inUse(), static_cast<int64_t>(n));
}

TEST_F(BufferTest, GetReadableSlicesCoversDataInOrder) {
  Buffer b(&pool_);
  std::string data = pattern(333);
  b.add(data);
  b.drain(3);
  EXPECT_EQ(readable(b), data.substr(3));
  // Limited to max_iov: the leading slices only.
  iovec iov[2];
  ASSERT_EQ(b.getReadableSlices(iov, 2), 2u);
  EXPECT_EQ(iov[0].iov_len, 61u);
  EXPECT_EQ(iov[1].iov_len, 64u);
  EXPECT_EQ(std::string(static_cast<char*>(iov[0].iov_base), 61), data.substr(3, 61));
  Buffer empty(&pool_);
  EXPECT_EQ(empty.getReadableSlices(iov, 2), 0u);
}

// Draining the front many times exercises the head index and its compaction.
TEST_F(BufferTest, LongQueueDrainedFromTheFront) {
  Buffer b(&pool_);
  std::string model;
  for (int round = 0; round < 50; round++) {
    std::string chunk = pattern(64 * 3, round);
    b.add(chunk);
    model += chunk;
    b.drain(64 * 2 + 1);
    model.erase(0, 64 * 2 + 1);
    ASSERT_EQ(b.toString(), model) << "round " << round;
    ASSERT_EQ(pool_.inUse(), static_cast<int64_t>(b.sliceCount()));
  }
}

TEST(BufferFallbackTest, DefaultPoolIsTheThreadFallback) {
  int64_t before = BlockPool::fallback().inUse();
  {
    Buffer b;
    b.add("hi");
    EXPECT_EQ(&b.pool(), &BlockPool::fallback());
    EXPECT_EQ(BlockPool::fallback().inUse(), before + 1);
  }
  EXPECT_EQ(BlockPool::fallback().inUse(), before);
}

TEST(BlockPoolTest, ReusesFreedBlocksUpToMaxFree) {
  BlockPool pool(128, 2);
  Block* a = pool.acquire();
  Block* b = pool.acquire();
  Block* c = pool.acquire();
  EXPECT_EQ(a->capacity, 128u);
  EXPECT_EQ(pool.inUse(), 3);
  freeBlock(a);
  freeBlock(b);
  freeBlock(c); // beyond max_free: back to the allocator
  EXPECT_EQ(pool.inUse(), 0);
  EXPECT_EQ(pool.freeCount(), 2u);
  Block* d = pool.acquire();
  EXPECT_TRUE(d == a || d == b);
  freeBlock(d);
}

// Random operations on two buffers against std::string models. After every step the
// contents must match and every block in use must belong to exactly one slice.
TEST_F(BufferTest, RandomizedAgainstStringModel) {
  std::mt19937 rng(12345);
  auto rnd = [&](size_t n) { return n == 0 ? 0 : static_cast<size_t>(rng() % (n + 1)); };
  Buffer buf[2] = {Buffer(&pool_), Buffer(&pool_)};
  std::string model[2];
  for (int step = 0; step < 20000; step++) {
    int i = rng() % 2;
    int j = 1 - i;
    int op = rng() % 8;
    switch (op) {
    case 0:
    case 1: { // add, mostly small
      size_t n = rng() % 4 == 0 ? rnd(300) : rnd(20);
      std::string s = pattern(n, step);
      buf[i].add(s);
      model[i] += s;
      break;
    }
    case 2: { // drain
      size_t n = rnd(model[i].size());
      buf[i].drain(n);
      model[i].erase(0, n);
      break;
    }
    case 3: { // move all
      buf[i].move(buf[j]);
      model[i] += model[j];
      model[j].clear();
      break;
    }
    case 4: { // partial move
      size_t n = rnd(model[j].size());
      buf[i].move(buf[j], n);
      model[i] += model[j].substr(0, n);
      model[j].erase(0, n);
      break;
    }
    case 5: { // reserve / partial commit
      iovec iov[4];
      size_t want = 1 + rnd(200);
      size_t n = buf[i].reserve(want, iov, 1 + rng() % 4);
      size_t room = 0;
      for (size_t k = 0; k < n; k++) room += iov[k].iov_len;
      size_t fill = rnd(room);
      std::string s = pattern(fill, step * 7);
      size_t off = 0;
      for (size_t k = 0; k < n && off < fill; k++) {
        size_t c = std::min(fill - off, iov[k].iov_len);
        std::memcpy(iov[k].iov_base, s.data() + off, c);
        off += c;
      }
      buf[i].commit(fill);
      model[i] += s;
      break;
    }
    case 6: { // copyOut / peek of a random range
      if (model[i].empty()) break;
      size_t start = rnd(model[i].size() - 1);
      size_t len = rnd(model[i].size() - start);
      std::string out(len, '\0');
      buf[i].copyOut(start, len, out.data());
      ASSERT_EQ(out, model[i].substr(start, len)) << "step " << step;
      ASSERT_EQ(buf[i].peek(start), static_cast<uint8_t>(model[i][start])) << "step " << step;
      break;
    }
    case 7: { // addCopy
      buf[i].addCopy(buf[j]);
      model[i] += model[j];
      break;
    }
    }
    for (int k = 0; k < 2; k++) {
      ASSERT_EQ(buf[k].length(), model[k].size()) << "step " << step << " op " << op;
      ASSERT_EQ(buf[k].empty(), model[k].empty());
      if (model[k].empty()) {
        ASSERT_EQ(buf[k].sliceCount(), 0u);
      }
    }
    if (step % 16 == 0) {
      ASSERT_EQ(buf[0].toString(), model[0]) << "step " << step;
      ASSERT_EQ(buf[1].toString(), model[1]) << "step " << step;
      ASSERT_EQ(readable(buf[0]), model[0]) << "step " << step;
    }
    ASSERT_EQ(pool_.inUse(), static_cast<int64_t>(buf[0].sliceCount() + buf[1].sliceCount()))
        << "step " << step << " op " << op;
    // Keep the buffers from growing without bound.
    if (model[i].size() > 20000) {
      buf[i].drain(15000);
      model[i].erase(0, 15000);
    }
  }
  buf[0].clear();
  buf[1].clear();
  EXPECT_EQ(pool_.inUse(), 0);
}

} // namespace
} // namespace buffer
} // namespace tern
