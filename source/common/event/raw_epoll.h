#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "source/common/event/dispatcher_base.h"

namespace tern {
namespace event {

class RawEpollRuntime;

// raw_epoll: a shard is a serial executor with no thread of its own. The runtime's single
// poller thread owns one epoll set where every fd is EPOLLONESHOT; a ready fd is queued on
// its shard, and the shard runs on whichever pool thread is free. After the handler has
// read to EAGAIN the fd is re-armed with EPOLL_CTL_MOD.
class ShardDispatcher : public DispatcherBase {
public:
  ShardDispatcher(RawEpollRuntime& rt, uint32_t index, std::string name, uint32_t block_size);
  ~ShardDispatcher() override;

  // Dispatcher
  FileEventPtr createFileEvent(int fd, FileReadyCb cb, uint32_t events) override;

  // Poller thread: an fd of this shard is ready.
  void onReady(uint64_t id, uint32_t events);
  void onTimerReady();
  // Pool thread: run one batch of queued work.
  void runBatch();

protected:
  // DispatcherBase
  void registerFd(FileEventImpl& fe, bool add) override;
  void unregisterFd(FileEventImpl& fe) override;
  void wakeup() override;

private:
  void schedule(); // requires mu_
  void armTimerFd();

  RawEpollRuntime& rt_;
  const uint32_t index_;
  absl::Mutex mu_;
  std::vector<std::pair<uint64_t, uint32_t>> ready_ ABSL_GUARDED_BY(mu_);
  bool timer_ready_ ABSL_GUARDED_BY(mu_){false};
  bool wakeup_pending_ ABSL_GUARDED_BY(mu_){false};
  bool scheduled_ ABSL_GUARDED_BY(mu_){false};
};

// The poller thread and the worker pool behind a set of ShardDispatchers.
class RawEpollRuntime {
public:
  RawEpollRuntime(uint32_t shards, uint32_t threads, uint32_t block_size);
  ~RawEpollRuntime();

  std::vector<Dispatcher*> dispatchers();
  void start();
  // Stops the poller and pool; shards keep their objects until destroyed.
  void stop();

  int epollFd() const { return epoll_fd_; }
  void enqueue(ShardDispatcher* s);

  static uint64_t encode(uint32_t shard, uint64_t id) { return (uint64_t(shard) << 48) | id; }

private:
  void pollLoop();
  void workerLoop();

  int epoll_fd_{-1};
  int stop_fd_{-1};
  std::vector<std::unique_ptr<ShardDispatcher>> shards_;
  std::vector<std::thread> threads_;
  const uint32_t nthreads_;
  std::thread poller_;
  absl::Mutex mu_;
  std::deque<ShardDispatcher*> runnable_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_){false};
  std::atomic<bool> started_{false};
};

} // namespace event
} // namespace tern
