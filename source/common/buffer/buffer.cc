#include "source/common/buffer/buffer.h"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace tern {
namespace buffer {

namespace {
// Blocks handed out by reserve() and not yet committed, for the one reservation a thread
// can have open at a time.
struct Reservation {
  const Buffer* owner{nullptr};
  Block* blocks[Buffer::kMaxReserve];
  size_t count{0};
  bool tail{false}; // the first iovec was the tail slice's free room
};
thread_local Reservation t_reservation;
} // namespace

void Buffer::pushSlice(const Slice& s) { slices_.push_back(s); }

void Buffer::popFront() {
  freeBlock(slices_[head_].block);
  head_++;
  if (head_ == slices_.size()) {
    slices_.clear();
    head_ = 0;
  } else if (head_ >= 16 && head_ * 2 >= slices_.size()) {
    slices_.erase(slices_.begin(), slices_.begin() + head_);
    head_ = 0;
  }
}

void Buffer::addSlow(const void* data, size_t len) {
  const uint8_t* src = static_cast<const uint8_t*>(data);
  while (len > 0) {
    Slice* t = tail();
    if (t == nullptr || t->room() == 0) {
      Block* b = pool_->acquire();
      pushSlice(Slice{b, 0, 0});
      t = tail();
    }
    size_t n = std::min<size_t>(len, t->room());
    std::memcpy(t->block->data() + t->end, src, n);
    t->end += n;
    src += n;
    len -= n;
    length_ += n;
  }
}

Buffer::Slice* Buffer::appendBlock(size_t len) {
  Block* b = pool_->acquire();
  if (b->capacity < len) {
    pool_->release(b);
    return nullptr;
  }
  pushSlice(Slice{b, 0, 0});
  return tail();
}

void Buffer::addCopy(const Buffer& other) {
  for (size_t i = other.head_; i < other.slices_.size(); i++) {
    const Slice& s = other.slices_[i];
    add(s.block->data() + s.start, s.size());
  }
}

void Buffer::move(Buffer& other) { move(other, other.length_); }

void Buffer::move(Buffer& other, size_t len) {
  assert(len <= other.length_);
  while (len > 0) {
    Slice& s = other.slices_[other.head_];
    if (s.size() <= len) {
      // Whole slice: hand over the block. Tiny slices are copied into our tail instead,
      // so many small writes do not each pin a 16 KiB block.
      Slice* t = tail();
      if (t != nullptr && s.size() <= t->room() && s.size() <= 512) {
        std::memcpy(t->block->data() + t->end, s.block->data() + s.start, s.size());
        t->end += s.size();
        length_ += s.size();
        len -= s.size();
        other.length_ -= s.size();
        other.popFront();
        continue;
      }
      pushSlice(s);
      length_ += s.size();
      len -= s.size();
      other.length_ -= s.size();
      other.head_++;
      if (other.head_ == other.slices_.size()) {
        other.slices_.clear();
        other.head_ = 0;
      }
    } else {
      add(s.block->data() + s.start, len);
      other.drain(len);
      len = 0;
    }
  }
}

const uint8_t* Buffer::contiguousAt(size_t start, size_t len) const {
  for (size_t i = head_; i < slices_.size(); i++) {
    const Slice& s = slices_[i];
    if (start < s.size()) {
      return start + len <= s.size() ? s.block->data() + s.start + start : nullptr;
    }
    start -= s.size();
  }
  return nullptr;
}

void Buffer::writeAt(size_t start, const void* data, size_t len) {
  assert(start + len <= length_);
  const uint8_t* src = static_cast<const uint8_t*>(data);
  for (size_t i = head_; i < slices_.size() && len > 0; i++) {
    Slice& s = slices_[i];
    if (start >= s.size()) {
      start -= s.size();
      continue;
    }
    size_t n = std::min<size_t>(len, s.size() - start);
    std::memcpy(s.block->data() + s.start + start, src, n);
    src += n;
    len -= n;
    start = 0;
  }
}

void Buffer::drain(size_t len) {
  assert(len <= length_);
  while (len > 0) {
    Slice& s = slices_[head_];
    if (s.size() <= len) {
      len -= s.size();
      length_ -= s.size();
      popFront();
    } else {
      s.start += len;
      length_ -= len;
      len = 0;
    }
  }
}

void Buffer::copyOut(size_t start, size_t len, void* out) const {
  uint8_t* dst = static_cast<uint8_t*>(out);
  for (size_t i = head_; i < slices_.size() && len > 0; i++) {
    const Slice& s = slices_[i];
    if (start >= s.size()) {
      start -= s.size();
      continue;
    }
    size_t n = std::min<size_t>(len, s.size() - start);
    std::memcpy(dst, s.block->data() + s.start + start, n);
    dst += n;
    len -= n;
    start = 0;
  }
}

std::string Buffer::toString() const {
  std::string out(length_, '\0');
  copyOut(0, length_, out.data());
  return out;
}

uint8_t Buffer::peek(size_t index) const {
  for (size_t i = head_; i < slices_.size(); i++) {
    const Slice& s = slices_[i];
    if (index < s.size()) return s.block->data()[s.start + index];
    index -= s.size();
  }
  assert(false);
  return 0;
}

size_t Buffer::reserve(size_t want, iovec* iov, size_t max_iov) {
  Reservation& r = t_reservation;
  assert(r.owner == nullptr);
  r.owner = this;
  r.count = 0;
  r.tail = false;
  max_iov = std::min(max_iov, kMaxReserve);
  size_t n = 0;
  size_t got = 0;
  Slice* t = tail();
  if (t != nullptr && t->room() > 0 && max_iov > 0) {
    iov[n].iov_base = t->block->data() + t->end;
    iov[n].iov_len = t->room();
    got += t->room();
    n++;
    r.tail = true;
  }
  while (got < want && n < max_iov) {
    Block* b = pool_->acquire();
    r.blocks[r.count++] = b;
    iov[n].iov_base = b->data();
    iov[n].iov_len = b->capacity;
    got += b->capacity;
    n++;
  }
  return n;
}

void Buffer::commit(size_t n) {
  Reservation& r = t_reservation;
  assert(r.owner == this);
  if (r.tail) {
    Slice* t = tail();
    size_t k = std::min<size_t>(n, t->room());
    t->end += k;
    length_ += k;
    n -= k;
  }
  for (size_t i = 0; i < r.count; i++) {
    Block* b = r.blocks[i];
    if (n > 0) {
      size_t k = std::min<size_t>(n, b->capacity);
      pushSlice(Slice{b, 0, static_cast<uint32_t>(k)});
      length_ += k;
      n -= k;
    } else {
      freeBlock(b);
    }
  }
  r.owner = nullptr;
  r.count = 0;
  r.tail = false;
}

size_t Buffer::getReadableSlices(iovec* iov, size_t max_iov) const {
  size_t n = 0;
  for (size_t i = head_; i < slices_.size() && n < max_iov; i++) {
    const Slice& s = slices_[i];
    iov[n].iov_base = s.block->data() + s.start;
    iov[n].iov_len = s.size();
    n++;
  }
  return n;
}

} // namespace buffer
} // namespace tern
