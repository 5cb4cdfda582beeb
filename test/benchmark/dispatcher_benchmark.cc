// Dispatcher micro-benchmarks for both IO models: cross-thread post() latency and
// throughput, a socket ping-pong through a file event, and timer enable/disable cost.
//   bazel run -c opt //test/benchmark:dispatcher_benchmark -- --benchmark_min_time=0.5
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "source/common/event/loop_dispatcher.h"
#include "test/test_common/dispatcher_harness.h"

namespace tern {
namespace event {
namespace {

using test::DispatcherHarness;

const char* modelName(int64_t m) { return m == 0 ? "worker_loops" : "raw_epoll"; }

// One post() from this thread, then wait (spinning) until it has run on the shard: the
// wake-up latency of an idle dispatcher.
void BM_PostRoundTrip(benchmark::State& state) {
  auto h = DispatcherHarness::create(modelName(state.range(0)));
  state.SetLabel(modelName(state.range(0)));
  std::atomic<uint64_t> done{0};
  uint64_t sent = 0;
  for (auto _ : state) {
    sent++;
    h->dispatcher().post([&done] { done.fetch_add(1, std::memory_order_release); });
    while (done.load(std::memory_order_acquire) != sent) {
    }
  }
  h->stop();
}
BENCHMARK(BM_PostRoundTrip)->Arg(0)->Arg(1)->UseRealTime();

// 1000 posts back to back, then wait for all: throughput when the queue is busy.
void BM_PostBatch(benchmark::State& state) {
  constexpr int kBatch = 1000;
  auto h = DispatcherHarness::create(modelName(state.range(0)));
  state.SetLabel(modelName(state.range(0)));
  std::atomic<uint64_t> done{0};
  uint64_t sent = 0;
  for (auto _ : state) {
    for (int i = 0; i < kBatch; i++) {
      h->dispatcher().post([&done] { done.fetch_add(1, std::memory_order_relaxed); });
    }
    sent += kBatch;
    while (done.load(std::memory_order_acquire) != sent) {
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  h->stop();
}
BENCHMARK(BM_PostBatch)->Arg(0)->Arg(1)->UseRealTime();

// One byte over a socket pair, echoed by a file event on the shard: the full readiness
// path (epoll, dispatch, callback, re-arm) per round trip.
void BM_SocketPingPong(benchmark::State& state) {
  auto h = DispatcherHarness::create(modelName(state.range(0)));
  state.SetLabel(modelName(state.range(0)));
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    state.SkipWithError("socketpair");
    return;
  }
  int ours = fds[0];
  fcntl(ours, F_SETFL, O_NONBLOCK);
  FileEventPtr fe;
  h->runSync([&] {
    fe = h->dispatcher().createFileEvent(
        ours,
        [ours](uint32_t) {
          char buf[64];
          ssize_t n;
          while ((n = read(ours, buf, sizeof(buf))) > 0) {
            ssize_t w = write(ours, buf, n);
            (void)w;
          }
        },
        FileReadyType::Read);
  });
  char c = 'p';
  for (auto _ : state) {
    if (write(fds[1], &c, 1) != 1 || read(fds[1], &c, 1) != 1) {
      state.SkipWithError("ping-pong failed");
      break;
    }
  }
  h->runSync([&] { fe.reset(); });
  h->stop();
  close(fds[0]);
  close(fds[1]);
}
BENCHMARK(BM_SocketPingPong)->Arg(0)->Arg(1)->UseRealTime();

// Timer enable + disable on a shard that already holds `range(0)` armed timers (an idle
// connection each). Timers are the same code in both IO models and touch only the shard's
// heap and timerfd, so this runs on a dispatcher that is not looping.
void BM_TimerEnableDisable(benchmark::State& state) {
  LoopDispatcher d("bench");
  std::vector<TimerPtr> others;
  for (int64_t i = 0; i < state.range(0); i++) {
    others.push_back(d.createTimer([] {}));
    others.back()->enableTimer(std::chrono::milliseconds(60000 + i));
  }
  TimerPtr t = d.createTimer([] {});
  for (auto _ : state) {
    t->enableTimer(std::chrono::milliseconds(30000));
    t->disableTimer();
  }
}
BENCHMARK(BM_TimerEnableDisable)->Arg(0)->Arg(1000)->Arg(100000);

// Pushing an armed timer's deadline later (an idle timeout touched on every read).
void BM_TimerReEnable(benchmark::State& state) {
  LoopDispatcher d("bench");
  std::vector<TimerPtr> others;
  for (int64_t i = 0; i < state.range(0); i++) {
    others.push_back(d.createTimer([] {}));
    others.back()->enableTimer(std::chrono::milliseconds(60000 + i));
  }
  TimerPtr t = d.createTimer([] {});
  int64_t ms = 1000;
  for (auto _ : state) {
    t->enableTimer(std::chrono::milliseconds(ms++ % 120000));
  }
}
BENCHMARK(BM_TimerReEnable)->Arg(0)->Arg(1000)->Arg(100000);

} // namespace
} // namespace event
} // namespace tern
