#include "source/common/event/timer_heap.h"

namespace tern {
namespace event {

void TimerImpl::enableTimer(std::chrono::milliseconds d) {
  disableTimer();
  heap_.add(this, std::chrono::steady_clock::now() + d);
}

void TimerImpl::disableTimer() {
  if (enabled_) heap_.remove(this);
}

void TimerHeap::add(TimerImpl* t, MonotonicTime when) {
  bool was_earliest = heap_.empty() || when < heap_.begin()->first;
  t->seq_ = next_seq_++;
  t->pos_ = heap_.emplace(when, t->seq_).first;
  by_seq_[t->seq_] = t;
  t->enabled_ = true;
  if (was_earliest) on_earliest_changed_(when);
}

void TimerHeap::remove(TimerImpl* t) {
  heap_.erase(t->pos_);
  by_seq_.erase(t->seq_);
  t->enabled_ = false;
}

void TimerHeap::runDue(MonotonicTime now) {
  while (!heap_.empty() && heap_.begin()->first <= now) {
    auto it = heap_.begin();
    auto tit = by_seq_.find(it->second);
    TimerImpl* t = tit->second;
    heap_.erase(it);
    by_seq_.erase(tit);
    t->enabled_ = false;
    // The callback may destroy the timer or re-enable it; nothing touches `t` after.
    TimerCb cb = t->cb_;
    cb();
  }
  if (!heap_.empty()) on_earliest_changed_(heap_.begin()->first);
}

} // namespace event
} // namespace tern
