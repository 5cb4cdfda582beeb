#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "source/common/event/loop_dispatcher.h"
#include "source/common/event/raw_epoll.h"

namespace tern {
namespace test {

// One running dispatcher of either IO model, for tests that must hold for both:
// "worker_loops" is a LoopDispatcher on its own thread; "raw_epoll" is shard 0 of a
// RawEpollRuntime with 2 shards on 2 pool threads (so the shard hops between threads).
class DispatcherHarness {
public:
  virtual ~DispatcherHarness() = default;
  virtual event::Dispatcher& dispatcher() = 0;
  // Stops the loop or pool; objects on the shard may then be destroyed from any thread.
  virtual void stop() = 0;

  static std::unique_ptr<DispatcherHarness> create(const std::string& io_model);

  // Runs `fn` on the dispatcher and waits for it (false if it did not run within `timeout`).
  bool runSync(std::function<void()> fn, absl::Duration timeout = absl::Seconds(10)) {
    return runOn(dispatcher(), std::move(fn), timeout);
  }
  static bool runOn(event::Dispatcher& d, std::function<void()> fn,
                    absl::Duration timeout = absl::Seconds(10)) {
    auto done = std::make_shared<absl::Notification>();
    d.post([fn = std::move(fn), done] {
      fn();
      done->Notify();
    });
    return done->WaitForNotificationWithTimeout(timeout);
  }
};

class LoopHarness : public DispatcherHarness {
public:
  LoopHarness() : thread_([this] { loop_.run(); }) {}
  ~LoopHarness() override { stop(); }
  event::Dispatcher& dispatcher() override { return loop_; }
  void stop() override {
    if (thread_.joinable()) {
      loop_.exit();
      thread_.join();
    }
  }

private:
  event::LoopDispatcher loop_{"worker_0"};
  std::thread thread_;
};

class RawEpollHarness : public DispatcherHarness {
public:
  RawEpollHarness(uint32_t shards = 2, uint32_t threads = 2)
      : rt_(shards, threads, buffer::BlockPool::kDefaultBlockSize) {
    rt_.start();
  }
  ~RawEpollHarness() override { stop(); }
  event::Dispatcher& dispatcher() override { return *rt_.dispatchers()[0]; }
  void stop() override { rt_.stop(); }
  event::RawEpollRuntime& runtime() { return rt_; }

private:
  event::RawEpollRuntime rt_;
};

inline std::unique_ptr<DispatcherHarness> DispatcherHarness::create(const std::string& io_model) {
  if (io_model == "raw_epoll") return std::make_unique<RawEpollHarness>();
  return std::make_unique<LoopHarness>();
}

} // namespace test
} // namespace tern
