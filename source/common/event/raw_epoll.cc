#include "source/common/event/raw_epoll.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "source/common/event/epoll_util.h"

namespace tern {
namespace event {

ShardDispatcher::ShardDispatcher(RawEpollRuntime& rt, uint32_t index, std::string name,
                                 uint32_t block_size)
    : DispatcherBase(std::move(name), block_size), rt_(rt), index_(index) {
  oneshot_ = true;
  next_id_ = kFirstFdId;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLONESHOT;
  ev.data.u64 = RawEpollRuntime::encode(index_, kTimerId);
  epoll_ctl(rt_.epollFd(), EPOLL_CTL_ADD, timer_fd_, &ev);
}

ShardDispatcher::~ShardDispatcher() {
  ScopedCurrent current(this);
  clearDeferred();
  epoll_ctl(rt_.epollFd(), EPOLL_CTL_DEL, timer_fd_, nullptr);
}

FileEventPtr ShardDispatcher::createFileEvent(int fd, FileReadyCb cb, uint32_t events) {
  return std::make_unique<FileEventImpl>(*this, fd, std::move(cb), events, nextId());
}

void ShardDispatcher::registerFd(FileEventImpl& fe, bool add) {
  epoll_event ev{};
  ev.events = toEpoll(fe.enabled()) | EPOLLONESHOT;
  ev.data.u64 = RawEpollRuntime::encode(index_, fe.id());
  epoll_ctl(rt_.epollFd(), add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fe.fd(), &ev);
}

void ShardDispatcher::unregisterFd(FileEventImpl& fe) {
  epoll_ctl(rt_.epollFd(), EPOLL_CTL_DEL, fe.fd(), nullptr);
}

void ShardDispatcher::schedule() {
  if (!scheduled_) {
    scheduled_ = true;
    rt_.enqueue(this);
  }
}

void ShardDispatcher::wakeup() {
  absl::MutexLock lock(&mu_);
  wakeup_pending_ = true;
  schedule();
}

void ShardDispatcher::onReady(uint64_t id, uint32_t events) {
  absl::MutexLock lock(&mu_);
  ready_.emplace_back(id, events);
  schedule();
}

void ShardDispatcher::onTimerReady() {
  absl::MutexLock lock(&mu_);
  timer_ready_ = true;
  schedule();
}

void ShardDispatcher::armTimerFd() {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLONESHOT;
  ev.data.u64 = RawEpollRuntime::encode(index_, kTimerId);
  epoll_ctl(rt_.epollFd(), EPOLL_CTL_MOD, timer_fd_, &ev);
}

void ShardDispatcher::runBatch() {
  ScopedCurrent current(this);
  std::vector<std::pair<uint64_t, uint32_t>> ready;
  bool timer;
  {
    absl::MutexLock lock(&mu_);
    ready.swap(ready_);
    timer = timer_ready_;
    timer_ready_ = false;
    wakeup_pending_ = false;
  }
  updateTime();
  for (auto& [id, ev] : ready) dispatchFd(id, ev);
  if (timer) {
    runTimers();
    armTimerFd();
  }
  runPosted();
  runActivated();
  if (timers_due_now_) runDueTimers();
  runEndOfTurn();
  clearDeferred();
  absl::MutexLock lock(&mu_);
  scheduled_ = false;
  bool more = !ready_.empty() || timer_ready_ || wakeup_pending_ || hasActivated() ||
              timers_due_now_;
  if (!more) more = has_posted_.load(std::memory_order_acquire);
  if (more) schedule();
}

RawEpollRuntime::RawEpollRuntime(uint32_t shards, uint32_t threads, uint32_t block_size)
    : nthreads_(threads) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || stop_fd_ < 0) {
    throw std::runtime_error(std::string("epoll/eventfd: ") + strerror(errno));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = encode(0xffff, kWakeId);
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, stop_fd_, &ev);
  for (uint32_t i = 0; i < shards; i++) {
    shards_.push_back(
        std::make_unique<ShardDispatcher>(*this, i, absl::StrCat("shard_", i), block_size));
  }
}

RawEpollRuntime::~RawEpollRuntime() {
  stop();
  shards_.clear();
  close(stop_fd_);
  close(epoll_fd_);
}

std::vector<Dispatcher*> RawEpollRuntime::dispatchers() {
  std::vector<Dispatcher*> out;
  for (auto& s : shards_) out.push_back(s.get());
  return out;
}

void RawEpollRuntime::start() {
  started_ = true;
  for (uint32_t i = 0; i < nthreads_; i++) threads_.emplace_back([this] { workerLoop(); });
  poller_ = std::thread([this] { pollLoop(); });
}

void RawEpollRuntime::stop() {
  if (!started_.exchange(false)) return;
  uint64_t one = 1;
  ssize_t rc = write(stop_fd_, &one, sizeof(one));
  (void)rc;
  poller_.join();
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void RawEpollRuntime::enqueue(ShardDispatcher* s) {
  absl::MutexLock lock(&mu_);
  runnable_.push_back(s);
}

void RawEpollRuntime::pollLoop() {
  constexpr int kMaxEvents = 512;
  epoll_event events[kMaxEvents];
  for (;;) {
    int n = epoll_wait(epoll_fd_, events, kMaxEvents, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < n; i++) {
      uint64_t data = events[i].data.u64;
      uint32_t shard = static_cast<uint32_t>(data >> 48);
      uint64_t id = data & ((uint64_t(1) << 48) - 1);
      if (shard == 0xffff) return; // stop
      if (id == kTimerId) {
        shards_[shard]->onTimerReady();
      } else {
        shards_[shard]->onReady(id, toFileReady(events[i].events));
      }
    }
  }
}

void RawEpollRuntime::workerLoop() {
  for (;;) {
    ShardDispatcher* s;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](RawEpollRuntime* rt) ABSL_EXCLUSIVE_LOCKS_REQUIRED(rt->mu_) {
            return rt->stopping_ || !rt->runnable_.empty();
          },
          this));
      if (runnable_.empty()) return;
      s = runnable_.front();
      runnable_.pop_front();
    }
    s->runBatch();
  }
}

} // namespace event
} // namespace tern
