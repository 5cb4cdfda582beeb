#pragma once

#include <cstring>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/container/inlined_vector.h"
#include "absl/strings/string_view.h"
#include "source/common/buffer/block_pool.h"

namespace tern {
namespace buffer {

// A chain of slices over pooled blocks. Moving a whole buffer (or whole slices) into
// another moves pointers, not bytes; only a slice split at the boundary of a partial move
// is copied. An empty buffer holds no block, so an idle connection holds no buffer memory.
class Buffer {
public:
  explicit Buffer(BlockPool* pool = nullptr) : pool_(pool ? pool : &BlockPool::fallback()) {}
  ~Buffer() { clear(); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  size_t length() const { return length_; }
  bool empty() const { return length_ == 0; }
  BlockPool& pool() const { return *pool_; }

  void add(const void* data, size_t len) {
    if (len == 0) return; // data may be null then, which memcpy must not see
    // Inline for the common case (the tail block has room): encoders add many small pieces.
    Slice* t = tail();
    if (t != nullptr && t->room() >= len) {
      std::memcpy(t->block->data() + t->end, data, len);
      t->end += static_cast<uint32_t>(len);
      length_ += len;
      return;
    }
    addSlow(data, len);
  }
  void add(absl::string_view s) { add(s.data(), s.size()); }
  // Appends `len` bytes for the caller to fill, contiguous (in the tail block, or a new
  // one); nullptr when `len` exceeds a block. Encoders write a field line in one go.
  char* append(size_t len) {
    Slice* t = tail();
    if (t == nullptr || t->room() < len) t = appendBlock(len);
    if (t == nullptr) return nullptr;
    char* p = reinterpret_cast<char*>(t->block->data()) + t->end;
    t->end += static_cast<uint32_t>(len);
    length_ += len;
    return p;
  }
  // Copies `other`'s bytes (other is unchanged).
  void addCopy(const Buffer& other);
  // Moves all of `other` to the end of this buffer.
  void move(Buffer& other);
  // Moves the first `len` bytes of `other`.
  void move(Buffer& other, size_t len);
  void drain(size_t len);
  void clear() { drain(length_); }

  // Copies `len` bytes starting at `start` into `out` (the caller checked the range).
  void copyOut(size_t start, size_t len, void* out) const;
  std::string toString() const;
  // The `len` bytes at `start` when they sit in one slice, else nullptr.
  const uint8_t* contiguousAt(size_t start, size_t len) const;
  // Overwrites `len` bytes at `start` (inside the buffer) in place. A buffer owns its
  // blocks alone (moves hand them over), so no other buffer sees the change.
  void writeAt(size_t start, const void* data, size_t len);
  // Byte at `index` (< length()).
  uint8_t peek(size_t index) const;

  // Reading from a socket: reserve() fills up to `max_iov` iovecs with writable room at
  // the tail, at least `want` bytes in all; commit(n) then appends the first n bytes
  // written there. Room left unused returns to the pool at once. The pair must run back
  // to back on one thread (the blocks in between are held per thread, not per buffer,
  // which keeps every connection's two buffers small). At most kMaxReserve iovecs.
  size_t reserve(size_t want, iovec* iov, size_t max_iov);
  void commit(size_t n);

  // Writing to a socket: iovecs over the leading slices (at most `max_iov`).
  size_t getReadableSlices(iovec* iov, size_t max_iov) const;

  size_t sliceCount() const { return slices_.size() - head_; }

  static constexpr size_t kMaxReserve = 16;

private:
  struct Slice {
    Block* block;
    uint32_t start; // first readable byte
    uint32_t end;   // one past the last readable byte
    uint32_t size() const { return end - start; }
    uint32_t room() const { return block->capacity - end; }
  };

  void addSlow(const void* data, size_t len);
  Slice* appendBlock(size_t len); // a fresh tail block with room for `len`, or nullptr
  void pushSlice(const Slice& s);
  void popFront();
  Slice* tail() { return slices_.size() > head_ ? &slices_.back() : nullptr; }

  BlockPool* pool_;
  // head_ indexes the first live slice so draining the front is O(1); the vector is
  // compacted when it empties. One slice fits inline: most buffers never allocate here.
  absl::InlinedVector<Slice, 1> slices_;
  uint32_t head_{0};
  size_t length_{0};
};

} // namespace buffer
} // namespace tern
