#pragma once

#include <atomic>

#include "source/common/event/dispatcher_base.h"

namespace tern {
namespace event {

// worker_loops: one shard per thread, its own edge-triggered epoll set.
class LoopDispatcher : public DispatcherBase {
public:
  explicit LoopDispatcher(std::string name,
                          uint32_t block_size = buffer::BlockPool::kDefaultBlockSize);
  ~LoopDispatcher() override;

  // Dispatcher
  FileEventPtr createFileEvent(int fd, FileReadyCb cb, uint32_t events) override;

  // Runs on the calling thread until exit() (thread-safe) is called.
  void run();
  void exit();

protected:
  // DispatcherBase
  void registerFd(FileEventImpl& fe, bool add) override;
  void unregisterFd(FileEventImpl& fe) override;
  void wakeup() override;

private:
  int epoll_fd_{-1};
  int wake_fd_{-1};
  std::atomic<bool> exit_{false};
};

} // namespace event
} // namespace tern
