#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "source/common/common/recycler.h"
#include "source/common/event/dispatcher.h"

namespace tern {
namespace event {

class TimerHeap;

class TimerImpl : public Timer {
public:
  TERN_RECYCLED(TimerImpl)
  TimerImpl(TimerHeap& heap, TimerCb cb) : heap_(heap), cb_(std::move(cb)) {}
  ~TimerImpl() override { disableTimer(); }

  // Timer
  void enableTimer(std::chrono::milliseconds d) override;
  void disableTimer() override;
  bool enabled() const override { return index_ != kNotQueued; }

private:
  friend class TimerHeap;
  static constexpr uint32_t kNotQueued = ~0u;
  static constexpr uint32_t kInList = ~0u - 1; // in one of the heap's fixed-duration lists
  TimerHeap& heap_;
  TimerCb cb_;
  MonotonicTime when_{};
  uint32_t index_{kNotQueued}; // position in the heap: removal without a search
  uint8_t list_{0};            // which fixed-duration list, when index_ == kInList
  TimerImpl* prev_{nullptr};   // neighbours in that list
  TimerImpl* next_{nullptr};
};

// Deadlines of one shard. The owner arms one timerfd at the earliest deadline.
//
// Most timers are timeouts of a configured length (stream idle, route timeout, per-try
// timeout) armed per request and cancelled long before they fire. Like libevent's
// "common timeouts", each such length gets a list: deadlines of one length are appended
// in time order, so arming and cancelling are O(1) and only the list's head matters. A
// list sits in the binary min-heap as one runner timer, armed at (or before) its head's
// deadline; a cancelled head leaves the runner early, and it re-arms when it finds its new
// head not yet due. Other timers (short or one-off delays) go to the heap directly; each
// knows its slot, so removal needs no search.
class TimerHeap {
public:
  // `on_earliest_changed`: the earliest deadline changed (so the owner can re-arm its
  // timerfd). `on_due_now`: a zero-delay timer became the earliest; the owner runs
  // runDue() before it sleeps again instead of arming the timerfd (which would cost a
  // settime, a wake-up and a read for what is already due).
  TimerHeap(std::function<void(MonotonicTime)> on_earliest_changed,
            std::function<void()> on_due_now)
      : on_earliest_changed_(std::move(on_earliest_changed)), on_due_now_(std::move(on_due_now)) {}
  ~TimerHeap();

  // Arms `t` for `d` from now (a timer is in at most one place).
  void enable(TimerImpl* t, std::chrono::milliseconds d);
  void add(TimerImpl* t, MonotonicTime when, bool due_now = false); // heap only
  void remove(TimerImpl* t);
  // Runs every timer due at `now`.
  void runDue(MonotonicTime now);
  bool empty() const { return heap_.empty(); }
  MonotonicTime earliest() const { return heap_.front()->when_; }

  // Lists are for timeouts at least this long (short delays are rarely cancelled), at
  // most kMaxLists distinct lengths per shard; beyond that timers use the heap.
  static constexpr std::chrono::milliseconds kListMinimum{500};
  static constexpr size_t kMaxLists = 8;

private:
  struct List {
    std::chrono::milliseconds length;
    TimerImpl* head{nullptr};
    TimerImpl* tail{nullptr};
    std::unique_ptr<TimerImpl> runner; // in the heap while the list has timers
  };

  void swapAt(uint32_t a, uint32_t b);
  void siftUp(uint32_t i);
  void siftDown(uint32_t i);
  int listFor(std::chrono::milliseconds d); // index in lists_, -1: use the heap
  void unlink(TimerImpl* t);
  void runList(List& l);

  std::vector<TimerImpl*> heap_;
  std::vector<std::unique_ptr<List>> lists_;
  std::function<void(MonotonicTime)> on_earliest_changed_;
  std::function<void()> on_due_now_;
};

} // namespace event
} // namespace tern
