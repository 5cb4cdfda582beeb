#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace tern {
namespace buffer {

class BlockPool;

// A fixed-size chunk of memory owned by exactly one buffer slice at a time.
struct Block {
  BlockPool* pool; // where it returns; nullptr: plain heap block
  uint32_t capacity;
  uint8_t* data() { return reinterpret_cast<uint8_t*>(this + 1); }
};

// Per-shard free list of same-sized blocks. Not thread-safe: a shard's code never runs on
// two threads at once, and buffers never leave their shard. Blocks beyond `max_free` go
// back to the allocator, so an idle shard does not hoard memory.
class BlockPool {
public:
  explicit BlockPool(uint32_t block_size = kDefaultBlockSize, size_t max_free = 16);
  ~BlockPool();
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  Block* acquire();
  void release(Block* b);

  uint32_t blockSize() const { return block_size_; }
  // Blocks handed out and not yet released: what buffers hold right now.
  // Readable from any thread (tests, stats); written only by the owning shard.
  int64_t inUse() const { return in_use_.load(std::memory_order_relaxed); }
  size_t freeCount() const { return free_.size(); }

  static constexpr uint32_t kDefaultBlockSize = 16384;

  // Blocks for code running outside any shard (tests, config time). Thread-local.
  static BlockPool& fallback();

private:
  const uint32_t block_size_;
  const size_t max_free_;
  std::vector<Block*> free_;
  std::atomic<int64_t> in_use_{0};
};

Block* allocateHeapBlock(uint32_t capacity);
void freeBlock(Block* b);

} // namespace buffer
} // namespace tern
