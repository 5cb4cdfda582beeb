#include "source/common/event/timer_heap.h"

namespace tern {
namespace event {

void TimerImpl::enableTimer(std::chrono::milliseconds d) {
  disableTimer();
  heap_.add(this, std::chrono::steady_clock::now() + d);
}

void TimerImpl::disableTimer() {
  if (index_ != kNotQueued) heap_.remove(this);
}

void TimerHeap::swapAt(uint32_t a, uint32_t b) {
  std::swap(heap_[a], heap_[b]);
  heap_[a]->index_ = a;
  heap_[b]->index_ = b;
}

void TimerHeap::siftUp(uint32_t i) {
  while (i > 0) {
    uint32_t parent = (i - 1) / 2;
    if (heap_[parent]->when_ <= heap_[i]->when_) break;
    swapAt(i, parent);
    i = parent;
  }
}

void TimerHeap::siftDown(uint32_t i) {
  const uint32_t n = heap_.size();
  for (;;) {
    uint32_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && heap_[l]->when_ < heap_[m]->when_) m = l;
    if (r < n && heap_[r]->when_ < heap_[m]->when_) m = r;
    if (m == i) return;
    swapAt(i, m);
    i = m;
  }
}

void TimerHeap::add(TimerImpl* t, MonotonicTime when) {
  bool was_earliest = heap_.empty() || when < heap_.front()->when_;
  t->when_ = when;
  t->index_ = heap_.size();
  heap_.push_back(t);
  siftUp(t->index_);
  if (was_earliest) on_earliest_changed_(when);
}

void TimerHeap::remove(TimerImpl* t) {
  uint32_t i = t->index_;
  uint32_t last = heap_.size() - 1;
  if (i != last) swapAt(i, last);
  heap_.pop_back();
  t->index_ = TimerImpl::kNotQueued;
  if (i < heap_.size()) {
    siftDown(i);
    siftUp(i);
  }
  // Not re-arming the timerfd: an early wake-up finds nothing due and re-arms then.
}

void TimerHeap::runDue(MonotonicTime now) {
  while (!heap_.empty() && heap_.front()->when_ <= now) {
    TimerImpl* t = heap_.front();
    remove(t);
    // The callback may destroy the timer or re-enable it; nothing touches `t` after.
    TimerCb cb = t->cb_;
    cb();
  }
  if (!heap_.empty()) on_earliest_changed_(heap_.front()->when_);
}

} // namespace event
} // namespace tern
