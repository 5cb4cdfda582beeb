#pragma once

#include <memory>
#include <thread>
#include <vector>

#include "source/common/event/dispatcher.h"
#include "source/common/event/loop_dispatcher.h"
#include "source/common/event/raw_epoll.h"

namespace tern {
namespace server {

// How shards meet threads (api/tern/bootstrap/v1/settings.proto: io_model).
class IoRuntime {
public:
  virtual ~IoRuntime() = default;
  virtual std::vector<event::Dispatcher*> dispatchers() = 0;
  virtual void start() = 0;
  // Stops every shard; objects on them must already be gone or be destroyed after.
  virtual void stop() = 0;
};

// worker_loops: a thread per shard, each running its own epoll loop.
class WorkerLoopsRuntime : public IoRuntime {
public:
  WorkerLoopsRuntime(uint32_t workers, uint32_t block_size);
  ~WorkerLoopsRuntime() override;
  std::vector<event::Dispatcher*> dispatchers() override;
  void start() override;
  void stop() override;

private:
  std::vector<std::unique_ptr<event::LoopDispatcher>> loops_;
  std::vector<std::thread> threads_;
};

// raw_epoll: one poller, shards on a pool of `threads` threads.
class RawEpollIoRuntime : public IoRuntime {
public:
  RawEpollIoRuntime(uint32_t shards, uint32_t threads, uint32_t block_size)
      : rt_(shards, threads, block_size) {}
  std::vector<event::Dispatcher*> dispatchers() override { return rt_.dispatchers(); }
  void start() override { rt_.start(); }
  void stop() override { rt_.stop(); }

private:
  event::RawEpollRuntime rt_;
};

} // namespace server
} // namespace tern
