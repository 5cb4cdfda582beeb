#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include "source/common/event/dispatcher.h"

namespace tern {
namespace event {

class TimerHeap;

class TimerImpl : public Timer {
public:
  TimerImpl(TimerHeap& heap, TimerCb cb) : heap_(heap), cb_(std::move(cb)) {}
  ~TimerImpl() override { disableTimer(); }

  // Timer
  void enableTimer(std::chrono::milliseconds d) override;
  void disableTimer() override;
  bool enabled() const override { return index_ != kNotQueued; }

private:
  friend class TimerHeap;
  static constexpr uint32_t kNotQueued = ~0u;
  TimerHeap& heap_;
  TimerCb cb_;
  MonotonicTime when_{};
  uint32_t index_{kNotQueued}; // position in the heap: removal without a search
};

// Deadlines of one shard in a binary min-heap of timer pointers; each timer knows its own
// slot, so a timer costs one pointer here and nothing else (every idle connection has one).
// The owner arms one timerfd at the earliest deadline.
class TimerHeap {
public:
  // Called when the earliest deadline changes (so the owner can re-arm its timerfd).
  explicit TimerHeap(std::function<void(MonotonicTime)> on_earliest_changed)
      : on_earliest_changed_(std::move(on_earliest_changed)) {}

  void add(TimerImpl* t, MonotonicTime when);
  void remove(TimerImpl* t);
  // Runs every timer due at `now`.
  void runDue(MonotonicTime now);
  bool empty() const { return heap_.empty(); }
  MonotonicTime earliest() const { return heap_.front()->when_; }
  size_t size() const { return heap_.size(); }

private:
  void swapAt(uint32_t a, uint32_t b);
  void siftUp(uint32_t i);
  void siftDown(uint32_t i);

  std::vector<TimerImpl*> heap_;
  std::function<void(MonotonicTime)> on_earliest_changed_;
};

} // namespace event
} // namespace tern
