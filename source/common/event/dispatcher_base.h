#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "source/common/buffer/block_pool.h"
#include "source/common/event/dispatcher.h"
#include "source/common/event/timer_heap.h"

namespace tern {
namespace event {

// What both IO models share: the timer heap behind one timerfd, posted callbacks,
// deferred deletes, synthetic activations, the fd-event table, the block pool.
// File events are found by a numeric id rather than a pointer, so an event already
// reported by epoll for an fd whose FileEvent was just destroyed is simply dropped.
class DispatcherBase : public Dispatcher {
public:
  DispatcherBase(std::string name, uint32_t block_size);
  ~DispatcherBase() override;

  // Dispatcher
  const std::string& name() const override { return name_; }
  TimerPtr createTimer(TimerCb cb) override;
  void deferredDelete(DeferredDeletablePtr obj) override;
  void atEndOfTurn(EndOfTurnCallback& cb) override;
  void cancelEndOfTurn(EndOfTurnCallback& cb) override;
  void post(std::function<void()> cb) override;
  MonotonicTime now() const override { return now_; }
  std::chrono::system_clock::time_point systemNow() const override { return system_now_; }
  buffer::BlockPool& blockPool() override { return pool_; }
  bool isThreadSafe() const override;

  int timerFd() const { return timer_fd_; }

protected:
  class FileEventImpl;
  friend class FileEventImpl;

  // The IO model's part of a file event: (re)register interest with the kernel.
  virtual void registerFd(FileEventImpl& fe, bool add) = 0;
  virtual void unregisterFd(FileEventImpl& fe) = 0;
  // Something was queued from another thread (post) or this one (activate).
  virtual void wakeup() = 0;

  // Delivers a kernel readiness report for event `id`.
  void dispatchFd(uint64_t id, uint32_t events);
  // Runs posted callbacks, activations, due timers and deferred deletes, in that order.
  // Returns true when work remains (an activation queued by a callback).
  void runPosted();
  bool runActivated();
  // The timerfd fired: drain it and run what is due.
  void runTimers();
  // Runs what is due; the loops call it directly for zero-delay timers armed this turn
  // (timers_due_now_), which need no timerfd round trip.
  void runDueTimers();
  void setTimerFd(MonotonicTime when);
  // Runs the end-of-turn callbacks (and those they add).
  void runEndOfTurn();
  void clearDeferred();
  bool hasActivated() const { return !activated_.empty(); }

  // Marks the calling thread as running this shard for the scope.
  class ScopedCurrent {
  public:
    explicit ScopedCurrent(const DispatcherBase* d);
    ~ScopedCurrent();

  private:
    const DispatcherBase* prev_;
  };

  class FileEventImpl : public FileEvent {
  public:
    FileEventImpl(DispatcherBase& d, int fd, FileReadyCb cb, uint32_t events, uint64_t id);
    ~FileEventImpl() override;
    // FileEvent
    void setEnabled(uint32_t events) override;
    void activate(uint32_t events) override;

    int fd() const { return fd_; }
    uint64_t id() const { return id_; }
    uint32_t enabled() const { return enabled_; }
    bool inCallback() const { return in_callback_; }

  private:
    friend class DispatcherBase;
    DispatcherBase& dispatcher_;
    const int fd_;
    FileReadyCb cb_;
    uint32_t enabled_;
    const uint64_t id_;
    bool in_callback_{false};
    bool rearm_needed_{false};
  };

  // An id for a new file event: its slot in slots_ (low 24 bits) and a generation (the
  // next 24), so an event the kernel reported for a slot's previous owner finds no match.
  uint64_t nextId();
  FileEventImpl* find(uint64_t id) {
    const uint64_t slot = id & kSlotMask;
    if (slot >= slots_.size()) return nullptr;
    FileEventImpl* fe = slots_[slot];
    return fe != nullptr && fe->id() == id ? fe : nullptr;
  }
  static constexpr uint64_t kSlotMask = (uint64_t(1) << 24) - 1;

  const std::string name_;
  buffer::BlockPool pool_;
  int timer_fd_{-1};
  TimerHeap timers_;
  bool timers_due_now_{false};
  MonotonicTime timer_fd_armed_{}; // the deadline the timerfd is set for (epoch: none)
  // Read once per loop turn (updateTime), by the thread running the shard.
  MonotonicTime now_{std::chrono::steady_clock::now()};
  std::chrono::system_clock::time_point system_now_{std::chrono::system_clock::now()};
  void updateTime() {
    now_ = std::chrono::steady_clock::now();
    system_now_ = std::chrono::system_clock::now();
  }
  std::vector<FileEventImpl*> slots_; // by id & kSlotMask; 8 bytes per open fd
  std::vector<uint32_t> free_slots_;
  std::vector<std::pair<uint64_t, uint32_t>> activated_;
  std::vector<EndOfTurnCallback*> end_of_turn_;       // nullptr: cancelled
  std::vector<EndOfTurnCallback*> end_of_turn_batch_; // being run
  std::vector<DeferredDeletablePtr> deferred_;
  std::vector<DeferredDeletablePtr> deferred_batch_; // being destroyed by clearDeferred()
  absl::Mutex post_mu_;
  std::vector<std::function<void()>> posted_ ABSL_GUARDED_BY(post_mu_);
  // Whether posted_ may be non-empty: checked every loop turn without taking post_mu_.
  std::atomic<bool> has_posted_{false};
  uint64_t next_id_{1}; // the first slot handed out (ids below it are the IO model's own)
  uint32_t generation_{0};
  // Whether the IO model re-arms after each callback (EPOLLONESHOT).
  bool oneshot_{false};
};

} // namespace event
} // namespace tern
