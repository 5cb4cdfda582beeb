#include "source/common/event/dispatcher_base.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace tern {
namespace event {

namespace {
thread_local const DispatcherBase* t_current = nullptr;
}

DispatcherBase::ScopedCurrent::ScopedCurrent(const DispatcherBase* d) : prev_(t_current) {
  t_current = d;
}
DispatcherBase::ScopedCurrent::~ScopedCurrent() { t_current = prev_; }

DispatcherBase::DispatcherBase(std::string name, uint32_t block_size)
    : name_(std::move(name)), pool_(block_size),
      timers_([this](MonotonicTime when) { setTimerFd(when); },
              [this] { timers_due_now_ = true; }) {
  timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (timer_fd_ < 0) throw std::runtime_error(std::string("timerfd_create: ") + strerror(errno));
}

DispatcherBase::~DispatcherBase() {
  clearDeferred();
  close(timer_fd_);
}

uint64_t DispatcherBase::nextId() {
  uint64_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    if (slots_.size() < next_id_) slots_.resize(next_id_, nullptr); // reserved ids
    slot = slots_.size();
    if (slot > kSlotMask) throw std::runtime_error("too many file events on one shard");
    slots_.push_back(nullptr);
  }
  generation_ = (generation_ + 1) & 0xffffff;
  if (generation_ == 0) generation_ = 1;
  return (uint64_t(generation_) << 24) | slot;
}

bool DispatcherBase::isThreadSafe() const { return t_current == this; }

TimerPtr DispatcherBase::createTimer(TimerCb cb) {
  return std::make_unique<TimerImpl>(timers_, std::move(cb));
}

void DispatcherBase::deferredDelete(DeferredDeletablePtr obj) {
  deferred_.push_back(std::move(obj));
  if (deferred_.size() == 1) wakeup();
}

void DispatcherBase::post(std::function<void()> cb) {
  bool first;
  {
    absl::MutexLock lock(&post_mu_);
    first = posted_.empty();
    posted_.push_back(std::move(cb));
    has_posted_.store(true, std::memory_order_release);
  }
  if (first) wakeup();
}

void DispatcherBase::runPosted() {
  if (!has_posted_.load(std::memory_order_acquire)) return;
  std::vector<std::function<void()>> batch;
  {
    absl::MutexLock lock(&post_mu_);
    batch.swap(posted_);
    has_posted_.store(false, std::memory_order_relaxed);
  }
  for (auto& cb : batch) cb();
}

void DispatcherBase::setTimerFd(MonotonicTime when) {
  if (when == timer_fd_armed_) return; // already set for it (and not fired yet)
  timer_fd_armed_ = when;
  // Absolute, monotonic clock.
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch()).count();
  if (ns <= 0) ns = 1;
  itimerspec its{};
  its.it_value.tv_sec = ns / 1000000000;
  its.it_value.tv_nsec = ns % 1000000000;
  timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &its, nullptr);
}

void DispatcherBase::runTimers() {
  uint64_t expirations;
  while (read(timer_fd_, &expirations, sizeof(expirations)) > 0) {
  }
  timer_fd_armed_ = MonotonicTime(); // it fired: disarmed
  runDueTimers();
}

void DispatcherBase::runDueTimers() {
  timers_due_now_ = false;
  updateTime();
  timers_.runDue(now_);
}

void DispatcherBase::atEndOfTurn(EndOfTurnCallback& cb) { end_of_turn_.push_back(&cb); }

void DispatcherBase::cancelEndOfTurn(EndOfTurnCallback& cb) {
  for (auto*& p : end_of_turn_) {
    if (p == &cb) p = nullptr;
  }
  for (auto*& p : end_of_turn_batch_) {
    if (p == &cb) p = nullptr;
  }
}

void DispatcherBase::runEndOfTurn() {
  // A callback may add more (a flush that closes a connection wakes another): repeat.
  while (!end_of_turn_.empty()) {
    end_of_turn_batch_.swap(end_of_turn_);
    for (size_t i = 0; i < end_of_turn_batch_.size(); i++) {
      EndOfTurnCallback* cb = end_of_turn_batch_[i];
      if (cb != nullptr) cb->onEndOfTurn();
    }
    end_of_turn_batch_.clear();
  }
}

void DispatcherBase::clearDeferred() {
  // Destructors may defer more deletes; loop until none are left.
  // The two vectors trade places and keep their capacity: no allocation per loop turn.
  while (!deferred_.empty()) {
    deferred_batch_.swap(deferred_);
    deferred_batch_.clear();
  }
}

bool DispatcherBase::runActivated() {
  std::vector<std::pair<uint64_t, uint32_t>> batch;
  batch.swap(activated_);
  for (auto& [id, ev] : batch) dispatchFd(id, ev);
  return !activated_.empty();
}

void DispatcherBase::dispatchFd(uint64_t id, uint32_t events) {
  FileEventImpl* fe = find(id);
  if (fe == nullptr) return; // destroyed after the kernel reported it
  uint32_t deliver = events & (fe->enabled_ | FileReadyType::Closed);
  if (oneshot_) fe->rearm_needed_ = true;
  if (deliver != 0) {
    fe->in_callback_ = true;
    fe->cb_(deliver);
    // The callback may have destroyed the event.
    fe = find(id);
    if (fe == nullptr) return;
    fe->in_callback_ = false;
  }
  if (fe->rearm_needed_) {
    fe->rearm_needed_ = false;
    // Nothing enabled: stay disarmed. Epoll reports EPOLLHUP/EPOLLERR even without
    // interest, so re-arming would bring a hang-up straight back, over and over, for as
    // long as the owner keeps the event disabled. setEnabled() re-arms when it changes.
    if (fe->enabled_ != 0) registerFd(*fe, false);
  }
}

DispatcherBase::FileEventImpl::FileEventImpl(DispatcherBase& d, int fd, FileReadyCb cb,
                                             uint32_t events, uint64_t id)
    : dispatcher_(d), fd_(fd), cb_(std::move(cb)), enabled_(events), id_(id) {
  dispatcher_.slots_[id_ & kSlotMask] = this;
  dispatcher_.registerFd(*this, true);
}

DispatcherBase::FileEventImpl::~FileEventImpl() {
  dispatcher_.unregisterFd(*this);
  dispatcher_.slots_[id_ & kSlotMask] = nullptr;
  dispatcher_.free_slots_.push_back(static_cast<uint32_t>(id_ & kSlotMask));
}

void DispatcherBase::FileEventImpl::setEnabled(uint32_t events) {
  if (events == enabled_) return;
  enabled_ = events;
  // Re-registering reports the current state (both models), so nothing is lost. With
  // EPOLLONESHOT, inside our own callback the re-arm happens once, after it returns.
  if (dispatcher_.oneshot_ && in_callback_) {
    rearm_needed_ = true;
  } else {
    dispatcher_.registerFd(*this, false);
  }
}

void DispatcherBase::FileEventImpl::activate(uint32_t events) {
  dispatcher_.activated_.emplace_back(id_, events);
  if (dispatcher_.activated_.size() == 1) dispatcher_.wakeup();
}

} // namespace event
} // namespace tern
