#include "source/common/event/timer_heap.h"

namespace tern {
namespace event {

void TimerImpl::enableTimer(std::chrono::milliseconds d) {
  disableTimer();
  heap_.enable(this, d);
}

void TimerImpl::disableTimer() {
  if (index_ != kNotQueued) heap_.remove(this);
}

TimerHeap::~TimerHeap() {
  // Timers that outlive their shard's heap (torn down together) must not unlink later.
  for (auto& l : lists_) {
    for (TimerImpl* t = l->head; t != nullptr; t = t->next_) t->index_ = TimerImpl::kNotQueued;
  }
  for (TimerImpl* t : heap_) t->index_ = TimerImpl::kNotQueued;
}

int TimerHeap::listFor(std::chrono::milliseconds d) {
  if (d < kListMinimum) return -1;
  for (size_t i = 0; i < lists_.size(); i++) {
    if (lists_[i]->length == d) return static_cast<int>(i);
  }
  if (lists_.size() == kMaxLists) return -1;
  auto l = std::make_unique<List>();
  l->length = d;
  List* raw = l.get();
  l->runner = std::make_unique<TimerImpl>(*this, [this, raw] { runList(*raw); });
  lists_.push_back(std::move(l));
  return static_cast<int>(lists_.size() - 1);
}

void TimerHeap::enable(TimerImpl* t, std::chrono::milliseconds d) {
  const MonotonicTime when = std::chrono::steady_clock::now() + d;
  const int i = listFor(d);
  if (i < 0) {
    add(t, when, d.count() <= 0);
    return;
  }
  List* l = lists_[i].get();
  // The clock never goes back, so appending keeps the list in deadline order.
  t->when_ = when;
  t->index_ = TimerImpl::kInList;
  t->list_ = static_cast<uint8_t>(i);
  t->prev_ = l->tail;
  t->next_ = nullptr;
  if (l->tail) {
    l->tail->next_ = t;
  } else {
    l->head = t;
  }
  l->tail = t;
  if (l->runner->index_ == TimerImpl::kNotQueued) add(l->runner.get(), when);
}

void TimerHeap::unlink(TimerImpl* t) {
  List& l = *lists_[t->list_];
  if (t->prev_) {
    t->prev_->next_ = t->next_;
  } else {
    l.head = t->next_;
  }
  if (t->next_) {
    t->next_->prev_ = t->prev_;
  } else {
    l.tail = t->prev_;
  }
  t->prev_ = t->next_ = nullptr;
  t->index_ = TimerImpl::kNotQueued;
  // The runner stays armed: it finds the list empty or its head not due, and acts then.
}

void TimerHeap::runList(List& l) {
  const MonotonicTime now = std::chrono::steady_clock::now();
  while (l.head != nullptr && l.head->when_ <= now) {
    TimerImpl* t = l.head;
    unlink(t);
    // The callback may destroy the timer or re-enable it; nothing touches `t` after.
    TimerCb cb = t->cb_;
    cb();
  }
  if (l.head != nullptr && l.runner->index_ == TimerImpl::kNotQueued) {
    add(l.runner.get(), l.head->when_);
  }
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

void TimerHeap::add(TimerImpl* t, MonotonicTime when, bool due_now) {
  bool was_earliest = heap_.empty() || when < heap_.front()->when_;
  t->when_ = when;
  t->index_ = heap_.size();
  heap_.push_back(t);
  siftUp(t->index_);
  if (!was_earliest) return;
  if (due_now) {
    on_due_now_();
  } else {
    on_earliest_changed_(when);
  }
}

void TimerHeap::remove(TimerImpl* t) {
  if (t->index_ == TimerImpl::kInList) return unlink(t);
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
