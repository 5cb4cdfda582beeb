// Dispatcher contract, run against both IO models: a LoopDispatcher on its own thread
// (worker_loops) and shard 0 of a RawEpollRuntime with 2 shards on 2 pool threads
// (raw_epoll). Objects that belong to the shard (timers, file events) are created and
// destroyed on it, through runSync().
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <iostream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "source/common/event/loop_dispatcher.h"
#include "source/common/event/raw_epoll.h"
#include "test/test_common/dispatcher_harness.h"

namespace tern {
namespace event {
namespace {

using std::chrono::milliseconds;

// Polls `pred` for up to 10 s: for waiting on another thread, never for measuring time.
bool waitFor(const std::function<bool()>& pred, int timeout_ms = 10000) {
  auto deadline = std::chrono::steady_clock::now() + milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(milliseconds(2));
  }
  return pred();
}

using test::DispatcherHarness;

bool runOn(Dispatcher& d, std::function<void()> fn) {
  return DispatcherHarness::runOn(d, std::move(fn));
}

class DispatcherTest : public testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    harness_ = DispatcherHarness::create(GetParam());
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds_), 0);
  }

  void TearDown() override {
    // Shard objects die on the shard.
    EXPECT_TRUE(runSync([this] {
      timers_.clear();
      fe_.reset();
    }));
    harness_->stop();
    harness_.reset();
    for (int fd : fds_) {
      if (fd >= 0) close(fd);
    }
  }

  Dispatcher& d() { return harness_->dispatcher(); }
  bool runSync(std::function<void()> fn) { return runOn(d(), std::move(fn)); }

  // Gives the dispatcher a chance to deliver anything pending (for "nothing happened"
  // checks): a pause, then a full round trip through its queue.
  void settle() {
    std::this_thread::sleep_for(milliseconds(50));
    ASSERT_TRUE(runSync([] {}));
  }

  void record(int v) {
    absl::MutexLock lock(&mu_);
    order_.push_back(v);
  }
  std::vector<int> order() {
    absl::MutexLock lock(&mu_);
    return order_;
  }
  size_t orderSize() { return order().size(); }

  // A read handler: reads to EAGAIN (or `max_per_call` bytes) and keeps the bytes.
  void readSome(size_t max_per_call) {
    char buf[256];
    size_t total = 0;
    while (total < max_per_call) {
      ssize_t n = read(fds_[0], buf, std::min(sizeof(buf), max_per_call - total));
      if (n == 0) eof_ = true;
      if (n <= 0) break;
      total += n;
      absl::MutexLock lock(&mu_);
      received_.append(buf, n);
    }
  }
  std::string received() {
    absl::MutexLock lock(&mu_);
    return received_;
  }
  void peerWrite(const std::string& s) {
    ASSERT_EQ(write(fds_[1], s.data(), s.size()), static_cast<ssize_t>(s.size()));
  }

  std::unique_ptr<DispatcherHarness> harness_;
  int fds_[2] = {-1, -1};
  std::vector<TimerPtr> timers_;
  FileEventPtr fe_;
  absl::Mutex mu_;
  std::vector<int> order_;
  std::string received_;
  std::atomic<int> callbacks_{0};
  std::atomic<uint32_t> events_seen_{0};
  std::atomic<bool> eof_{false};
};

INSTANTIATE_TEST_SUITE_P(IoModels, DispatcherTest, testing::Values("worker_loops", "raw_epoll"),
                         [](const testing::TestParamInfo<std::string>& p) { return p.param; });

// ---- post() ----

TEST_P(DispatcherTest, PostRunsOnTheDispatcher) {
  EXPECT_FALSE(d().isThreadSafe());
  std::atomic<bool> safe{false};
  std::thread::id ran_on;
  ASSERT_TRUE(runSync([&] {
    safe = d().isThreadSafe();
    ran_on = std::this_thread::get_id();
  }));
  EXPECT_TRUE(safe);
  EXPECT_NE(ran_on, std::this_thread::get_id());
}

TEST_P(DispatcherTest, PostsFromManyThreadsRunOnceInOrderPerThread) {
  constexpr int kThreads = 4;
  constexpr int kPosts = 2000;
  std::vector<std::vector<int>> seen(kThreads); // touched only on the dispatcher
  std::atomic<int> ran{0};
  std::vector<std::thread> posters;
  for (int t = 0; t < kThreads; t++) {
    posters.emplace_back([&, t] {
      for (int i = 0; i < kPosts; i++) {
        d().post([&, t, i] {
          seen[t].push_back(i);
          ran++;
        });
      }
    });
  }
  for (auto& p : posters) p.join();
  ASSERT_TRUE(waitFor([&] { return ran == kThreads * kPosts; }));
  ASSERT_TRUE(runSync([] {})); // happens-after every callback above
  for (int t = 0; t < kThreads; t++) {
    ASSERT_EQ(seen[t].size(), static_cast<size_t>(kPosts));
    for (int i = 0; i < kPosts; i++) ASSERT_EQ(seen[t][i], i) << "thread " << t;
  }
}

TEST_P(DispatcherTest, PostFromInsideACallbackRuns) {
  std::atomic<bool> inner{false};
  ASSERT_TRUE(runSync([&] { d().post([&] { inner = d().isThreadSafe(); }); }));
  EXPECT_TRUE(waitFor([&] { return inner.load(); }));
}

// ---- timers ----

TEST_P(DispatcherTest, TimerFiresOnceOnTheDispatcher) {
  std::atomic<int> fired{0};
  std::atomic<bool> on_shard{false}, enabled_inside{true}, enabled_after_enable{false};
  ASSERT_TRUE(runSync([&] {
    timers_.push_back(d().createTimer([&] {
      on_shard = d().isThreadSafe();
      enabled_inside = timers_[0]->enabled();
      fired++;
    }));
    timers_[0]->enableTimer(milliseconds(5));
    enabled_after_enable = timers_[0]->enabled();
    // A later sentinel: once it fires, the first timer had every chance to fire twice.
    timers_.push_back(d().createTimer([&] { record(1); }));
    timers_[1]->enableTimer(milliseconds(60));
  }));
  EXPECT_TRUE(enabled_after_enable);
  ASSERT_TRUE(waitFor([&] { return orderSize() == 1; }));
  EXPECT_EQ(fired.load(), 1);
  EXPECT_TRUE(on_shard);
  EXPECT_FALSE(enabled_inside) << "a firing timer is no longer enabled";
}

TEST_P(DispatcherTest, DisabledOrDestroyedTimerDoesNotFire) {
  std::atomic<bool> enabled_after_disable{true};
  ASSERT_TRUE(runSync([&] {
    timers_.push_back(d().createTimer([&] { record(1); }));
    timers_[0]->enableTimer(milliseconds(5));
    timers_[0]->disableTimer();
    enabled_after_disable = timers_[0]->enabled();
    auto doomed = d().createTimer([&] { record(2); });
    doomed->enableTimer(milliseconds(5));
    doomed.reset();
    timers_.push_back(d().createTimer([&] { record(3); }));
    timers_[1]->enableTimer(milliseconds(60));
  }));
  EXPECT_FALSE(enabled_after_disable);
  ASSERT_TRUE(waitFor([&] { return orderSize() >= 1; }));
  settle();
  EXPECT_EQ(order(), std::vector<int>({3}));
}

// Re-enabling replaces the deadline, later or earlier, and the timerfd follows it.
TEST_P(DispatcherTest, ReEnableMovesTheDeadline) {
  std::atomic<int64_t> late_fired_after_ms{-1};
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(runSync([&] {
    // 1: 10 ms, then moved to 300 ms. 2: sentinel at 100 ms.
    timers_.push_back(d().createTimer([&] {
      late_fired_after_ms =
          std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - t0).count();
      record(1);
    }));
    timers_.push_back(d().createTimer([&] { record(2); }));
    // 3: 1 s, then moved to 20 ms (an earlier deadline must re-arm the kernel timer).
    timers_.push_back(d().createTimer([&] { record(3); }));
    timers_[0]->enableTimer(milliseconds(10));
    timers_[2]->enableTimer(milliseconds(1000));
    timers_[1]->enableTimer(milliseconds(100));
    timers_[0]->enableTimer(milliseconds(300));
    timers_[2]->enableTimer(milliseconds(20));
  }));
  ASSERT_TRUE(waitFor([&] { return orderSize() == 3; }));
  EXPECT_EQ(order(), std::vector<int>({3, 2, 1}));
  // Not a speed check: a lower bound the deadline itself guarantees.
  EXPECT_GE(late_fired_after_ms.load(), 300);
}

// Zero-delay timers run before the loop sleeps, with no timerfd round trip: they fire,
// in order, a cancelled or destroyed one does not, and one re-arming itself from its own
// callback keeps running (each time in a later pass, never recursively).
TEST_P(DispatcherTest, ZeroDelayTimersRunBeforeTheLoopSleeps) {
  std::atomic<int> chain{0};
  std::atomic<int> depth{0}, max_depth{0};
  ASSERT_TRUE(runSync([&] {
    timers_.push_back(d().createTimer([&] { record(1); }));
    timers_.push_back(d().createTimer([&] { record(2); }));
    timers_.push_back(d().createTimer([&] {
      depth++;
      max_depth = std::max(max_depth.load(), depth.load());
      if (++chain < 100) {
        timers_[2]->enableTimer(milliseconds(0));
      } else {
        record(3);
      }
      depth--;
    }));
    timers_[0]->enableTimer(milliseconds(0));
    timers_[1]->enableTimer(milliseconds(0));
    timers_[1]->disableTimer();
    auto doomed = d().createTimer([&] { record(4); });
    doomed->enableTimer(milliseconds(0));
    doomed.reset();
    timers_[2]->enableTimer(milliseconds(0));
  }));
  ASSERT_TRUE(waitFor([&] { return orderSize() == 2; }));
  settle();
  EXPECT_EQ(order(), std::vector<int>({1, 3}));
  EXPECT_EQ(chain.load(), 100);
  EXPECT_EQ(max_depth.load(), 1);
}

// Timeouts of 500 ms or more share a list per length (TimerHeap): cancelling the head, a
// middle entry or the tail, destroying one, and re-arming from a callback all behave as
// in the heap, and lists and heap timers interleave by deadline.
TEST_P(DispatcherTest, FixedLengthTimeoutListsBehaveLikeTheHeap) {
  std::atomic<int64_t> first_fired_after_ms{-1};
  std::atomic<int> rearmed{0};
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(runSync([&] {
    for (int i = 0; i < 5; i++) {
      timers_.push_back(d().createTimer([&, i] {
        if (i == 3) {
          first_fired_after_ms = std::chrono::duration_cast<milliseconds>(
                                     std::chrono::steady_clock::now() - t0)
                                     .count();
          if (rearmed++ == 0) timers_[3]->enableTimer(milliseconds(600)); // again, later
        }
        record(i);
      }));
    }
    for (int i = 0; i < 5; i++) timers_[i]->enableTimer(milliseconds(600));
    timers_[0]->disableTimer(); // the head
    timers_[2]->disableTimer(); // a middle one
    timers_[1].reset();         // destroyed while listed
    timers_[4]->disableTimer(); // the tail
    timers_[4]->enableTimer(milliseconds(600)); // re-armed: now after 3
    // A heap timer between the two rounds of the list.
    timers_.push_back(d().createTimer([&] { record(5); }));
    timers_[5]->enableTimer(milliseconds(100));
  }));
  ASSERT_TRUE(waitFor([&] { return orderSize() == 4; }));
  settle();
  EXPECT_EQ(order(), std::vector<int>({5, 3, 4, 3}));
  EXPECT_GE(first_fired_after_ms.load(), 600); // a lower bound the deadline guarantees
}

// More distinct lengths than the heap keeps lists for: the rest use the heap, and all
// fire in deadline order.
TEST_P(DispatcherTest, ManyTimeoutLengthsFireInDeadlineOrder) {
  const std::vector<int> delays = {950, 500, 900, 550, 850, 600, 800, 650, 750, 700};
  ASSERT_TRUE(runSync([&] {
    for (int ms : delays) {
      timers_.push_back(d().createTimer([&, ms] { record(ms); }));
      timers_.back()->enableTimer(milliseconds(ms));
    }
  }));
  ASSERT_TRUE(waitFor([&] { return orderSize() == delays.size(); }));
  EXPECT_EQ(order(), std::vector<int>({500, 550, 600, 650, 700, 750, 800, 850, 900, 950}));
}

TEST_P(DispatcherTest, TimersFireInDeadlineOrder) {
  const std::vector<int> delays = {50, 10, 0, 40, 20, 30};
  ASSERT_TRUE(runSync([&] {
    for (int ms : delays) {
      timers_.push_back(d().createTimer([this, ms] { record(ms); }));
      timers_.back()->enableTimer(milliseconds(ms));
    }
  }));
  ASSERT_TRUE(waitFor([&] { return orderSize() == delays.size(); }));
  EXPECT_EQ(order(), std::vector<int>({0, 10, 20, 30, 40, 50}));
}

TEST_P(DispatcherTest, TimerMayReEnableOrDestroyItselfInItsCallback) {
  std::atomic<int> ticks{0};
  std::atomic<bool> destroyed{false};
  ASSERT_TRUE(runSync([&] {
    timers_.resize(2);
    timers_[0] = d().createTimer([&] {
      if (++ticks < 3) timers_[0]->enableTimer(milliseconds(1));
    });
    timers_[0]->enableTimer(milliseconds(1));
    timers_[1] = d().createTimer([this, &destroyed] {
      timers_[1].reset();
      destroyed = true;
    });
    timers_[1]->enableTimer(milliseconds(1));
  }));
  ASSERT_TRUE(waitFor([&] { return ticks == 3 && destroyed; }));
  settle();
  EXPECT_EQ(ticks.load(), 3);
}

// ---- deferred delete ----

struct Tracked : public DeferredDeletable {
  explicit Tracked(std::function<void()> on_destroy) : on_destroy_(std::move(on_destroy)) {}
  ~Tracked() override { on_destroy_(); }
  std::function<void()> on_destroy_;
};

TEST_P(DispatcherTest, DeferredDeleteWaitsForTheCurrentCallback) {
  std::atomic<bool> destroyed{false}, alive_at_callback_end{false}, destroyed_on_shard{false};
  ASSERT_TRUE(runSync([&] {
    d().deferredDelete(std::make_unique<Tracked>([&] {
      destroyed_on_shard = d().isThreadSafe();
      destroyed = true;
    }));
    alive_at_callback_end = !destroyed;
  }));
  EXPECT_TRUE(alive_at_callback_end);
  ASSERT_TRUE(waitFor([&] { return destroyed.load(); }));
  EXPECT_TRUE(destroyed_on_shard);
}

TEST_P(DispatcherTest, DeferredDeleteFromADestructorAndFromATimer) {
  std::atomic<int> destroyed{0};
  ASSERT_TRUE(runSync([&] {
    // A destructor that defers another delete: both go.
    d().deferredDelete(std::make_unique<Tracked>([&] {
      destroyed++;
      d().deferredDelete(std::make_unique<Tracked>([&] { destroyed++; }));
    }));
    timers_.push_back(d().createTimer([&] {
      d().deferredDelete(std::make_unique<Tracked>([&] { destroyed++; }));
    }));
    timers_[0]->enableTimer(milliseconds(1));
  }));
  EXPECT_TRUE(waitFor([&] { return destroyed == 3; }));
}

// ---- file events ----

TEST_P(DispatcherTest, ReadReadinessIsDelivered) {
  ASSERT_TRUE(runSync([&] {
    fe_ = d().createFileEvent(
        fds_[0],
        [this](uint32_t ev) {
          events_seen_ |= ev;
          callbacks_++;
          if (ev & FileReadyType::Read) readSome(SIZE_MAX);
        },
        FileReadyType::Read);
  }));
  peerWrite("hello");
  ASSERT_TRUE(waitFor([&] { return received() == "hello"; }));
  // Drained to EAGAIN: the next write raises a new edge and a new callback.
  peerWrite(" world");
  ASSERT_TRUE(waitFor([&] { return received() == "hello world"; }));
  EXPECT_FALSE(events_seen_ & FileReadyType::Write) << "Write was not enabled";
}

TEST_P(DispatcherTest, WriteReadinessIsDelivered) {
  ASSERT_TRUE(runSync([&] {
    fe_ = d().createFileEvent(
        fds_[0], [this](uint32_t ev) { events_seen_ |= ev; }, FileReadyType::Write);
  }));
  EXPECT_TRUE(waitFor([&] { return (events_seen_ & FileReadyType::Write) != 0; }));
}

TEST_P(DispatcherTest, PeerCloseIsDelivered) {
  ASSERT_TRUE(runSync([&] {
    fe_ = d().createFileEvent(
        fds_[0],
        [this](uint32_t ev) {
          events_seen_ |= ev;
          readSome(SIZE_MAX);
        },
        FileReadyType::Read);
  }));
  peerWrite("bye");
  close(fds_[1]);
  fds_[1] = -1;
  ASSERT_TRUE(waitFor([&] { return eof_.load(); }));
  EXPECT_EQ(received(), "bye");
}

// setEnabled(0) stops delivery; enabling Read again must report data that arrived while
// disabled. worker_loops' edge already fired (and was filtered) so it must look again;
// raw_epoll's EPOLL_CTL_MOD re-arm reports the level.
TEST_P(DispatcherTest, ReEnablingReadDeliversDataThatArrivedWhileDisabled) {
  ASSERT_TRUE(runSync([&] {
    fe_ = d().createFileEvent(
        fds_[0],
        [this](uint32_t ev) {
          if (ev & FileReadyType::Read) {
            callbacks_++;
            readSome(SIZE_MAX);
          }
        },
        FileReadyType::Read);
    fe_->setEnabled(0);
  }));
  peerWrite("abc");
  settle();
  EXPECT_EQ(callbacks_.load(), 0) << "delivered while disabled";
  EXPECT_EQ(received(), "");
  ASSERT_TRUE(runSync([&] { fe_->setEnabled(FileReadyType::Read); }));
  EXPECT_TRUE(waitFor([&] { return received() == "abc"; }));
}

// The same, with the disable done inside the callback without draining the socket (the
// case where raw_epoll defers its re-arm until the callback returns).
TEST_P(DispatcherTest, DisableInsideCallbackWithoutDrainingThenReEnable) {
  ASSERT_TRUE(runSync([&] {
    fe_ = d().createFileEvent(
        fds_[0],
        [this](uint32_t ev) {
          if (!(ev & FileReadyType::Read)) return;
          callbacks_++;
          readSome(1);
          fe_->setEnabled(0);
        },
        FileReadyType::Read);
  }));
  peerWrite("xyz");
  ASSERT_TRUE(waitFor([&] { return received() == "x"; }));
  settle();
  EXPECT_EQ(received(), "x") << "delivered while disabled";
  ASSERT_TRUE(runSync([&] { fe_->setEnabled(FileReadyType::Read); }));
  ASSERT_TRUE(waitFor([&] { return received() == "xy"; }));
  ASSERT_TRUE(runSync([&] { fe_->setEnabled(FileReadyType::Read); }));
  ASSERT_TRUE(waitFor([&] { return received() == "xyz"; }));
  EXPECT_EQ(callbacks_.load(), 3);
}

// "Enabling an event that is already ready produces a callback": a handler that reads
// one byte and toggles Read off and on again is called until the socket is empty.
TEST_P(DispatcherTest, ToggleInsideCallbackRechecksReadiness) {
  ASSERT_TRUE(runSync([&] {
    fe_ = d().createFileEvent(
        fds_[0],
        [this](uint32_t ev) {
          if (!(ev & FileReadyType::Read)) return;
          readSome(1);
          fe_->setEnabled(0);
          fe_->setEnabled(FileReadyType::Read);
        },
        FileReadyType::Read);
  }));
  peerWrite("12345");
  EXPECT_TRUE(waitFor([&] { return received() == "12345"; }));
}

TEST_P(DispatcherTest, ActivateDeliversASyntheticEvent) {
  ASSERT_TRUE(runSync([&] {
    fe_ = d().createFileEvent(
        fds_[0],
        [this](uint32_t ev) {
          if (ev & FileReadyType::Read) callbacks_++;
        },
        FileReadyType::Read);
  }));
  settle();
  EXPECT_EQ(callbacks_.load(), 0); // nothing to read yet
  ASSERT_TRUE(runSync([&] { fe_->activate(FileReadyType::Read); }));
  EXPECT_TRUE(waitFor([&] { return callbacks_ == 1; }));
}

// A hang-up is reported by epoll even for an fd with no interest. While the owner has
// disabled the event it must not be redelivered over and over (raw_epoll re-armed its
// EPOLLONESHOT registration after each delivery, and the level-triggered HUP came straight
// back: a busy loop for as long as reading stayed disabled). Enabling Read then reports it.
TEST_P(DispatcherTest, HangupWhileDisabledIsNotRedeliveredInALoop) {
  ASSERT_TRUE(runSync([&] {
    fe_ = d().createFileEvent(
        fds_[0],
        [this](uint32_t ev) {
          callbacks_++;
          events_seen_ |= ev;
          if (ev & FileReadyType::Read) readSome(SIZE_MAX);
        },
        FileReadyType::Read);
    fe_->setEnabled(0);
  }));
  close(fds_[1]); // both directions gone: EPOLLHUP on our end
  fds_[1] = -1;
  std::this_thread::sleep_for(milliseconds(100));
  ASSERT_TRUE(runSync([] {}));
  EXPECT_LE(callbacks_.load(), 2) << "hang-up redelivered while disabled (a spin)";
  EXPECT_FALSE(eof_.load());
  ASSERT_TRUE(runSync([&] { fe_->setEnabled(FileReadyType::Read); }));
  EXPECT_TRUE(waitFor([&] { return eof_.load(); }));
}

// The event is gone from inside its own callback, with another delivery for it already
// queued: the queued one is dropped, later readiness reaches nobody, nothing crashes.
TEST_P(DispatcherTest, FileEventDestroyedInsideItsOwnCallback) {
  ASSERT_TRUE(runSync([&] {
    fe_ = d().createFileEvent(
        fds_[0],
        [this](uint32_t ev) {
          if (!(ev & FileReadyType::Read)) return;
          auto* self = this; // the closure dies with the event: use locals only
          self->callbacks_++;
          self->fe_->activate(FileReadyType::Read);
          FileEventPtr victim = std::move(self->fe_);
          victim.reset();
        },
        FileReadyType::Read);
  }));
  peerWrite("a");
  ASSERT_TRUE(waitFor([&] { return callbacks_ == 1; }));
  settle();
  peerWrite("b");
  settle();
  EXPECT_EQ(callbacks_.load(), 1);
  // The dispatcher still works.
  std::atomic<bool> alive{false};
  ASSERT_TRUE(runSync([&] { alive = true; }));
  EXPECT_TRUE(alive);
}

// ---- raw_epoll: a shard is a serial executor, whichever pool thread runs it ----

TEST(RawEpollShardTest, ShardCallbacksNeverRunConcurrently) {
  constexpr int kShards = 4;
  constexpr int kPostsPerThread = 4000;
  constexpr int kPosters = 4;
  RawEpollRuntime rt(kShards, 4, buffer::BlockPool::kDefaultBlockSize);
  auto ds = rt.dispatchers();
  ASSERT_EQ(ds.size(), static_cast<size_t>(kShards));
  rt.start();

  std::atomic<int> inside[kShards];
  for (auto& i : inside) i = 0;
  std::atomic<int> overlaps{0}, not_current{0}, posts_ran{0}, reads{0}, ticks{0};
  absl::Mutex threads_mu;
  std::set<std::thread::id> threads_seen;

  // Every callback of shard `s` goes through this: it must find the shard empty.
  auto guarded = [&](int s, const std::function<void()>& body) {
    if (inside[s].fetch_add(1) != 0) overlaps++;
    if (!ds[s]->isThreadSafe()) not_current++;
    for (int k = 0; k < kShards; k++) {
      if (k != s && ds[k]->isThreadSafe()) not_current++;
    }
    body();
    // Widen the window in which a second thread could wrongly enter.
    for (volatile int spin = 0; spin < 2000; spin = spin + 1) {
    }
    {
      absl::MutexLock lock(&threads_mu);
      threads_seen.insert(std::this_thread::get_id());
    }
    inside[s].fetch_sub(1);
  };

  // Per shard: a socket pair whose reads run on the shard, and a timer that re-arms.
  int pairs[kShards][2];
  std::vector<FileEventPtr> events(kShards);
  std::vector<TimerPtr> timers(kShards);
  std::atomic<bool> stop_timers{false};
  for (int s = 0; s < kShards; s++) {
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pairs[s]), 0);
    ASSERT_TRUE(runOn(*ds[s], [&, s] {
      events[s] = ds[s]->createFileEvent(
          pairs[s][0],
          [&, s](uint32_t) {
            guarded(s, [&] {
              char buf[64];
              while (read(pairs[s][0], buf, sizeof(buf)) > 0) reads++;
            });
          },
          FileReadyType::Read);
      timers[s] = ds[s]->createTimer([&, s] {
        guarded(s, [&] {
          ticks++;
          if (!stop_timers) timers[s]->enableTimer(milliseconds(ticks % 2));
        });
      });
      timers[s]->enableTimer(milliseconds(1));
    }));
  }

  std::atomic<bool> stop_writer{false};
  std::thread writer([&] {
    while (!stop_writer) {
      for (int s = 0; s < kShards; s++) {
        ssize_t rc = write(pairs[s][1], "x", 1);
        (void)rc;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  std::vector<std::thread> posters;
  for (int t = 0; t < kPosters; t++) {
    posters.emplace_back([&, t] {
      for (int i = 0; i < kPostsPerThread; i++) {
        int s = (i * 7 + t) % kShards;
        ds[s]->post([&, s] { guarded(s, [&] { posts_ran++; }); });
      }
    });
  }
  for (auto& p : posters) p.join();
  EXPECT_TRUE(waitFor([&] { return posts_ran == kPosters * kPostsPerThread; }, 60000));
  stop_writer = true;
  writer.join();
  stop_timers = true;
  for (int s = 0; s < kShards; s++) {
    ASSERT_TRUE(runOn(*ds[s], [&, s] {
      timers[s].reset();
      events[s].reset();
    }));
  }
  rt.stop();
  for (auto& p : pairs) {
    close(p[0]);
    close(p[1]);
  }

  EXPECT_EQ(overlaps.load(), 0) << "two threads ran one shard at once";
  EXPECT_EQ(not_current.load(), 0) << "isThreadSafe() wrong inside a shard callback";
  EXPECT_GT(reads.load(), 0);
  EXPECT_GT(ticks.load(), 0);
  absl::MutexLock lock(&threads_mu);
  // Informational: a shard hops between pool threads; the test is only meaningful then.
  std::cout << "pool threads that ran shard code: " << threads_seen.size() << "\n";
}

} // namespace
} // namespace event
} // namespace tern
