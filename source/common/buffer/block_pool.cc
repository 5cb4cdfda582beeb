#include "source/common/buffer/block_pool.h"

#include <cstdlib>
#include <new>

namespace tern {
namespace buffer {

Block* allocateHeapBlock(uint32_t capacity) {
  void* mem = std::malloc(sizeof(Block) + capacity);
  if (mem == nullptr) throw std::bad_alloc();
  Block* b = new (mem) Block{nullptr, capacity};
  return b;
}

void freeBlock(Block* b) {
  if (b->pool != nullptr) {
    b->pool->release(b);
  } else {
    std::free(b);
  }
}

BlockPool::BlockPool(uint32_t block_size, size_t max_free)
    : block_size_(block_size), max_free_(max_free) {}

BlockPool::~BlockPool() {
  for (Block* b : free_) std::free(b);
}

// Single writer: a plain load and store, no locked instruction on the hot path.
Block* BlockPool::acquire() {
  in_use_.store(in_use_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  if (!free_.empty()) {
    Block* b = free_.back();
    free_.pop_back();
    return b;
  }
  Block* b = allocateHeapBlock(block_size_);
  b->pool = this;
  return b;
}

void BlockPool::release(Block* b) {
  in_use_.store(in_use_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  if (free_.size() < max_free_) {
    free_.push_back(b);
  } else {
    std::free(b);
  }
}

BlockPool& BlockPool::fallback() {
  // Small cache: fallback pools serve tests and config-time code only.
  static thread_local BlockPool pool(kDefaultBlockSize, 16);
  return pool;
}

} // namespace buffer
} // namespace tern
