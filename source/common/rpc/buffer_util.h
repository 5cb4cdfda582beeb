#pragma once

// Byte-level helpers shared by the RPC codecs: big-endian integers, a read cursor over a
// buffer's slices, and in-place rewriting of a few bytes of a buffer.

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

#include <algorithm>

#include "absl/container/inlined_vector.h"
#include "absl/strings/string_view.h"
#include "source/common/buffer/buffer.h"

namespace tern {
namespace rpc {

inline uint16_t loadBe16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline uint32_t loadBe32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}
inline uint64_t loadBe64(const uint8_t* p) {
  return (uint64_t(loadBe32(p)) << 32) | loadBe32(p + 4);
}
inline void storeBe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void storeBe32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}
inline void storeBe64(uint8_t* p, uint64_t v) {
  storeBe32(p, static_cast<uint32_t>(v >> 32));
  storeBe32(p + 4, static_cast<uint32_t>(v));
}

// Reads `length` bytes of a buffer from `start` on, front to back, across its slices and
// without copying them. The buffer must not change while the cursor is in use.
class ByteCursor {
public:
  ByteCursor(const buffer::Buffer& buffer, size_t start, size_t length);

  size_t remaining() const { return remaining_; }
  bool empty() const { return remaining_ == 0; }

  bool peekByte(uint8_t& b) const {
    if (remaining_ == 0) return false;
    b = static_cast<const uint8_t*>(iov_[idx_].iov_base)[off_];
    return true;
  }
  bool readByte(uint8_t& b) {
    if (!peekByte(b)) return false;
    advance(1);
    return true;
  }
  // The bytes from here to the end of the current slice (or of the range, if sooner):
  // what can be read without crossing a slice.
  absl::string_view contiguous() const {
    if (remaining_ == 0) return {};
    const size_t n = std::min(remaining_, iov_[idx_].iov_len - off_);
    return absl::string_view(static_cast<const char*>(iov_[idx_].iov_base) + off_, n);
  }
  // Copies the next `n` bytes to `out`; false (and nothing read) when fewer remain.
  bool read(void* out, size_t n);
  // Appends the next `n` bytes to `out`.
  bool readAppend(std::string& out, size_t n);
  bool skip(size_t n);
  bool readBe16(uint16_t& v);
  bool readBe32(uint32_t& v);

private:
  void advance(size_t n);

  absl::InlinedVector<iovec, 4> iov_;
  size_t idx_{0};
  size_t off_{0};
  size_t remaining_{0};
};

// Replaces bytes of `buffer` in place: each patch's `len` bytes at `offset` (inside the
// buffer). The buffer owns its blocks alone, so nothing else sees the change.
struct BufferPatch {
  size_t offset;
  const void* data;
  size_t len;
};
void overwrite(buffer::Buffer& buffer, std::initializer_list<BufferPatch> patches);

} // namespace rpc
} // namespace tern
