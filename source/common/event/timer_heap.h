#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <utility>

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
  bool enabled() const override { return enabled_; }

private:
  friend class TimerHeap;
  TimerHeap& heap_;
  TimerCb cb_;
  bool enabled_{false};
  std::set<std::pair<MonotonicTime, uint64_t>>::iterator pos_;
  uint64_t seq_{0};
};

// Deadlines of one shard, ordered; the owner arms one timerfd at the earliest.
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
  MonotonicTime earliest() const { return heap_.begin()->first; }

private:
  std::set<std::pair<MonotonicTime, uint64_t>> heap_;
  std::map<uint64_t, TimerImpl*> by_seq_;
  uint64_t next_seq_{1};
  std::function<void(MonotonicTime)> on_earliest_changed_;
};

} // namespace event
} // namespace tern
