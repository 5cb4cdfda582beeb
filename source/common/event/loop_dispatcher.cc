#include "source/common/event/loop_dispatcher.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "source/common/event/epoll_util.h"

namespace tern {
namespace event {

LoopDispatcher::LoopDispatcher(std::string name, uint32_t block_size)
    : DispatcherBase(std::move(name), block_size) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || wake_fd_ < 0) {
    throw std::runtime_error(std::string("epoll/eventfd: ") + strerror(errno));
  }
  next_id_ = kFirstFdId;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeId;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  ev.data.u64 = kTimerId;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, timer_fd_, &ev);
}

LoopDispatcher::~LoopDispatcher() {
  clearDeferred();
  close(wake_fd_);
  close(epoll_fd_);
}

FileEventPtr LoopDispatcher::createFileEvent(int fd, FileReadyCb cb, uint32_t events) {
  return std::make_unique<FileEventImpl>(*this, fd, std::move(cb), events, nextId());
}

void LoopDispatcher::registerFd(FileEventImpl& fe, bool add) {
  // Interest follows what the owner enabled: a socket nobody wants to write to raises no
  // EPOLLOUT edge on every ACK of a bulk transfer. EPOLL_CTL_MOD re-checks readiness, so
  // enabling an event that is already ready reports it at once.
  epoll_event ev{};
  ev.events = toEpoll(fe.enabled()) | EPOLLET;
  ev.data.u64 = fe.id();
  epoll_ctl(epoll_fd_, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fe.fd(), &ev);
}

void LoopDispatcher::unregisterFd(FileEventImpl& fe) {
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fe.fd(), nullptr);
}

void LoopDispatcher::wakeup() {
  if (isThreadSafe()) return; // the loop looks at its queues before sleeping again
  uint64_t one = 1;
  ssize_t rc = write(wake_fd_, &one, sizeof(one));
  (void)rc;
}

void LoopDispatcher::exit() {
  exit_.store(true);
  uint64_t one = 1;
  ssize_t rc = write(wake_fd_, &one, sizeof(one));
  (void)rc;
}

void LoopDispatcher::run() {
  ScopedCurrent current(this);
  constexpr int kMaxEvents = 256;
  epoll_event events[kMaxEvents];
  while (!exit_.load(std::memory_order_relaxed)) {
    bool busy = hasActivated() || !deferred_.empty() || timers_due_now_ ||
                has_posted_.load(std::memory_order_acquire);
    int n = epoll_wait(epoll_fd_, events, kMaxEvents, busy ? 0 : -1);
    if (n < 0 && errno != EINTR) break;
    updateTime();
    for (int i = 0; i < n; i++) {
      uint64_t id = events[i].data.u64;
      if (id == kWakeId) {
        uint64_t v;
        ssize_t rc = read(wake_fd_, &v, sizeof(v));
        (void)rc;
      } else if (id == kTimerId) {
        runTimers();
      } else {
        dispatchFd(id, toFileReady(events[i].events));
      }
    }
    runPosted();
    runActivated();
    if (timers_due_now_) runDueTimers();
    runEndOfTurn();
    clearDeferred();
  }
  // Shut down: let deferred objects go while the shard is still "current".
  runPosted();
  runEndOfTurn();
  clearDeferred();
}

} // namespace event
} // namespace tern
