#include "source/common/rpc/buffer_util.h"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace tern {
namespace rpc {

ByteCursor::ByteCursor(const buffer::Buffer& buffer, size_t start, size_t length) {
  assert(start + length <= buffer.length());
  iov_.resize(buffer.sliceCount());
  iov_.resize(buffer.getReadableSlices(iov_.data(), iov_.size()));
  remaining_ = start + length;
  advance(start);
}

void ByteCursor::advance(size_t n) {
  assert(n <= remaining_);
  remaining_ -= n;
  while (n > 0) {
    size_t here = iov_[idx_].iov_len - off_;
    if (n < here) {
      off_ += n;
      return;
    }
    n -= here;
    idx_++;
    off_ = 0;
  }
  // Step over exhausted slices so peekByte always looks at a readable byte.
  while (remaining_ > 0 && off_ == iov_[idx_].iov_len) {
    idx_++;
    off_ = 0;
  }
}

bool ByteCursor::read(void* out, size_t n) {
  if (n > remaining_) return false;
  uint8_t* dst = static_cast<uint8_t*>(out);
  while (n > 0) {
    size_t k = std::min(n, iov_[idx_].iov_len - off_);
    std::memcpy(dst, static_cast<const uint8_t*>(iov_[idx_].iov_base) + off_, k);
    dst += k;
    n -= k;
    advance(k);
  }
  return true;
}

bool ByteCursor::readAppend(std::string& out, size_t n) {
  if (n > remaining_) return false;
  while (n > 0) {
    size_t k = std::min(n, iov_[idx_].iov_len - off_);
    out.append(static_cast<const char*>(iov_[idx_].iov_base) + off_, k);
    n -= k;
    advance(k);
  }
  return true;
}

bool ByteCursor::skip(size_t n) {
  if (n > remaining_) return false;
  advance(n);
  return true;
}

bool ByteCursor::readBe16(uint16_t& v) {
  uint8_t b[2];
  if (!read(b, 2)) return false;
  v = loadBe16(b);
  return true;
}

bool ByteCursor::readBe32(uint32_t& v) {
  uint8_t b[4];
  if (!read(b, 4)) return false;
  v = loadBe32(b);
  return true;
}

void overwrite(buffer::Buffer& buffer, std::initializer_list<BufferPatch> patches) {
  for (const BufferPatch& p : patches) buffer.writeAt(p.offset, p.data, p.len);
}

} // namespace rpc
} // namespace tern
