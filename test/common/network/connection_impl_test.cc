// ConnectionImpl over a real AF_UNIX stream socket pair: our end is driven by a running
// dispatcher (both IO models), the peer end is a plain blocking socket the test thread
// reads and writes. Every call into the connection happens on its dispatcher (runSync).
#include "source/common/network/connection_impl.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "source/common/stats/stats.h"
#include "test/test_common/dispatcher_harness.h"
#include "test/test_common/test_upstream.h"

namespace tern {
namespace network {
namespace {

using test::waitFor;

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i++) s[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  return s;
}

// Keeps what it is given (draining it, unless holding) and whether end_stream came.
class RecordingFilter : public ReadFilter {
public:
  FilterStatus onData(buffer::Buffer& data, bool end_stream) override {
    absl::MutexLock lock(&mu_);
    calls_++;
    if (end_stream) end_stream_ = true;
    if (!hold_) {
      received_ += data.toString();
      data.drain(data.length());
    }
    return FilterStatus::Continue;
  }
  void initializeReadFilterCallbacks(ReadFilterCallbacks& cb) override { callbacks_ = &cb; }

  std::string received() {
    absl::MutexLock lock(&mu_);
    return received_;
  }
  bool endStream() {
    absl::MutexLock lock(&mu_);
    return end_stream_;
  }
  int calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

  ReadFilterCallbacks* callbacks_{nullptr};
  bool hold_{false};

private:
  absl::Mutex mu_;
  std::string received_;
  bool end_stream_{false};
  int calls_{0};
};

class RecordingCallbacks : public ConnectionCallbacks {
public:
  void onEvent(ConnectionEvent event) override {
    absl::MutexLock lock(&mu_);
    events_.push_back(event);
  }
  void onAboveWriteBufferHighWatermark() override { above_++; }
  void onBelowWriteBufferLowWatermark() override { below_++; }

  std::vector<ConnectionEvent> events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }
  bool has(ConnectionEvent e) {
    for (auto x : events()) {
      if (x == e) return true;
    }
    return false;
  }

  std::atomic<int> above_{0};
  std::atomic<int> below_{0};

private:
  absl::Mutex mu_;
  std::vector<ConnectionEvent> events_;
};

class ConnectionImplTest : public testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    harness_ = test::DispatcherHarness::create(GetParam());
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    ASSERT_EQ(fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK), 0);
    ours_ = fds[0];
    peer_ = fds[1];
    // The peer blocks, but never forever.
    timeval tv{10, 0};
    setsockopt(peer_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(peer_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    filter_ = std::make_shared<RecordingFilter>();
  }

  void TearDown() override {
    EXPECT_TRUE(run([this] { conn_.reset(); }));
    harness_->stop();
    if (peer_ >= 0) close(peer_);
  }

  bool run(std::function<void()> fn) { return harness_->runSync(std::move(fn)); }

  // The connection owns our end of the pair from here on.
  void connect(std::function<void(ConnectionImpl&)> before_filters = nullptr) {
    ASSERT_TRUE(run([&] {
      conn_ = std::make_unique<ConnectionImpl>(harness_->dispatcher(), ours_, Address(),
                                               Address(), std::make_unique<RawBufferSocket>(),
                                               true);
      conn_->addConnectionCallbacks(callbacks_);
      if (before_filters) before_filters(*conn_);
      conn_->addReadFilter(filter_);
      EXPECT_TRUE(conn_->initializeReadFilters());
    }));
  }

  void write(const std::string& data, bool end_stream = false) {
    ASSERT_TRUE(run([&] {
      buffer::Buffer b;
      b.add(data);
      conn_->write(b, end_stream);
      EXPECT_TRUE(b.empty()) << "write() must take the bytes";
    }));
  }

  Connection::State state() {
    Connection::State s = Connection::State::Closed;
    EXPECT_TRUE(run([&] { s = conn_->state(); }));
    return s;
  }

  void peerWrite(const std::string& s) { ASSERT_TRUE(test::writeAll(peer_, s.data(), s.size())); }

  std::string peerRead(size_t n) {
    std::string out;
    char buf[65536];
    while (out.size() < n) {
      ssize_t r = read(peer_, buf, std::min(sizeof(buf), n - out.size()));
      if (r <= 0) break;
      out.append(buf, r);
    }
    return out;
  }

  // A pause and a round trip, before checking that something did NOT happen.
  void settle() {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_TRUE(run([] {}));
  }

  std::unique_ptr<test::DispatcherHarness> harness_;
  int ours_{-1};
  int peer_{-1};
  std::unique_ptr<ConnectionImpl> conn_;
  std::shared_ptr<RecordingFilter> filter_;
  RecordingCallbacks callbacks_;
};

INSTANTIATE_TEST_SUITE_P(IoModels, ConnectionImplTest,
                         testing::Values("worker_loops", "raw_epoll"),
                         [](const testing::TestParamInfo<std::string>& p) { return p.param; });

TEST_P(ConnectionImplTest, ReadsReachTheFilterAndWritesReachThePeer) {
  stats::Store store;
  connect([&](ConnectionImpl& c) {
    c.setConnectionStats({&store.counter("rx"), &store.counter("tx")});
  });
  peerWrite("ping");
  ASSERT_TRUE(waitFor([&] { return filter_->received() == "ping"; }));
  EXPECT_FALSE(filter_->endStream());
  write("pong");
  EXPECT_EQ(peerRead(4), "pong");
  // A larger message, many blocks long, both ways.
  std::string big = pattern(300000);
  std::thread reader([&] { EXPECT_EQ(peerRead(big.size()), big); });
  write(big);
  reader.join();
  peerWrite(big);
  ASSERT_TRUE(waitFor([&] { return filter_->received().size() == 4 + big.size(); }));
  EXPECT_EQ(filter_->received(), "ping" + big);
  EXPECT_EQ(store.counterValue("rx"), 4 + big.size());
  EXPECT_EQ(store.counterValue("tx"), 4 + big.size());
  EXPECT_EQ(state(), Connection::State::Open);
}

TEST_P(ConnectionImplTest, WriteFiltersSeeOutgoingData) {
  struct Upper : public WriteFilter {
    FilterStatus onWrite(buffer::Buffer& data, bool) override {
      std::string s = data.toString();
      for (auto& ch : s) ch = static_cast<char>(toupper(ch));
      data.drain(data.length());
      data.add(s);
      return FilterStatus::Continue;
    }
  };
  connect([](ConnectionImpl& c) { c.addWriteFilter(std::make_shared<Upper>()); });
  write("shout");
  EXPECT_EQ(peerRead(5), "SHOUT");
}

// readDisable is counted: reading resumes only when every disable is undone, and then
// the bytes that arrived meanwhile are delivered.
TEST_P(ConnectionImplTest, ReadDisableStopsDeliveryAndReEnableResumes) {
  connect();
  ASSERT_TRUE(run([&] {
    conn_->readDisable(true);
    conn_->readDisable(true);
    EXPECT_FALSE(conn_->readEnabled());
  }));
  peerWrite("abc");
  settle();
  EXPECT_EQ(filter_->received(), "");
  ASSERT_TRUE(run([&] { conn_->readDisable(false); }));
  settle();
  EXPECT_EQ(filter_->received(), "") << "one disable is still outstanding";
  ASSERT_TRUE(run([&] {
    conn_->readDisable(false);
    EXPECT_TRUE(conn_->readEnabled());
  }));
  EXPECT_TRUE(waitFor([&] { return filter_->received() == "abc"; }));
  // An extra enable is ignored rather than going negative.
  ASSERT_TRUE(run([&] {
    conn_->readDisable(false);
    conn_->readDisable(true);
    EXPECT_FALSE(conn_->readEnabled());
    conn_->readDisable(false);
  }));
  peerWrite("d");
  EXPECT_TRUE(waitFor([&] { return filter_->received() == "abcd"; }));
}

// Bytes that a filter left in the read buffer are delivered again when reading resumes,
// even if nothing new arrives.
TEST_P(ConnectionImplTest, BufferedBytesRedeliveredAfterReadEnable) {
  filter_->hold_ = true;
  connect();
  peerWrite("kept");
  ASSERT_TRUE(waitFor([&] { return filter_->calls() >= 1; }));
  ASSERT_TRUE(run([&] {
    conn_->readDisable(true);
    filter_->hold_ = false;
  }));
  int calls = filter_->calls();
  ASSERT_TRUE(run([&] { conn_->readDisable(false); }));
  EXPECT_TRUE(waitFor([&] { return filter_->received() == "kept"; }));
  EXPECT_GT(filter_->calls(), calls);
}

// The peer does not read: once more than the limit is buffered the high watermark fires
// (once); when the peer drains it, the low watermark fires, and every byte arrives.
// Writes made during one loop turn leave together when the turn ends (one writev for
// the responses of many streams), not one system call each.
TEST_P(ConnectionImplTest, WritesOfOneTurnLeaveTogetherAtItsEnd) {
  connect();
  ssize_t seen_during_turn = -2;
  ASSERT_TRUE(run([&] {
    buffer::Buffer a, b;
    a.add("first ");
    conn_->write(a, false);
    b.add("second");
    conn_->write(b, false);
    char buf[64];
    seen_during_turn = recv(peer_, buf, sizeof(buf), MSG_DONTWAIT);
  }));
  EXPECT_EQ(seen_during_turn, -1) << "bytes reached the socket before the turn ended";
  EXPECT_EQ(peerRead(12), "first second");
}

TEST_P(ConnectionImplTest, WatermarksFollowTheWriteBuffer) {
  connect([](ConnectionImpl& c) { c.setBufferLimits(64 * 1024); });
  const std::string chunk = pattern(64 * 1024);
  size_t written = 0;
  bool above = false;
  uint64_t buffered_below = 0, buffered_at_crossing = 0;
  ASSERT_TRUE(run([&] {
    // Keep writing until the kernel is full and our buffer passes the limit.
    for (int i = 0; i < 4096 && !conn_->aboveHighWatermark(); i++) {
      buffer::Buffer b;
      b.add(chunk);
      conn_->write(b, false);
      written += chunk.size();
      if (conn_->aboveHighWatermark()) {
        buffered_at_crossing = conn_->bytesBuffered();
      } else {
        buffered_below = std::max<uint64_t>(buffered_below, conn_->bytesBuffered());
      }
    }
    above = conn_->aboveHighWatermark();
    // Writes leave at the end of the loop turn: queue more than the kernel can take then
    // (16 MiB), so the buffer is still above the limit after that flush.
    while (written < 16u * 1024 * 1024) {
      buffer::Buffer b;
      b.add(chunk);
      conn_->write(b, false);
      written += chunk.size();
    }
  }));
  ASSERT_TRUE(above) << "never went above the high watermark after " << written << " bytes";
  // It fires on the write that crosses the limit, not before, not later.
  EXPECT_LE(buffered_below, 64u * 1024);
  EXPECT_GT(buffered_at_crossing, 64u * 1024);
  EXPECT_LE(buffered_at_crossing, 64u * 1024 + chunk.size());
  EXPECT_EQ(callbacks_.above_.load(), 1);
  EXPECT_EQ(callbacks_.below_.load(), 0);

  std::string got = peerRead(written);
  ASSERT_EQ(got.size(), written);
  for (size_t off = 0; off < written; off += chunk.size()) {
    ASSERT_EQ(got.compare(off, chunk.size(), chunk), 0) << "corrupt at " << off;
  }
  EXPECT_TRUE(waitFor([&] { return callbacks_.below_ == 1; }));
  EXPECT_EQ(callbacks_.above_.load(), 1);
  bool still_above = true;
  ASSERT_TRUE(run([&] { still_above = conn_->aboveHighWatermark(); }));
  EXPECT_FALSE(still_above);
}

// close(FlushWrite) with bytes the kernel could not take yet: the connection keeps
// writing, then closes; the peer gets every byte and then EOF.
TEST_P(ConnectionImplTest, CloseFlushWriteDeliversBufferedBytesFirst) {
  connect();
  const std::string data = pattern(4 * 1024 * 1024);
  Connection::State after_close = Connection::State::Open;
  ASSERT_TRUE(run([&] {
    buffer::Buffer b;
    b.add(data);
    conn_->write(b, false);
    conn_->close(ConnectionCloseType::FlushWrite);
    after_close = conn_->state();
  }));
  EXPECT_EQ(after_close, Connection::State::Closing) << "4 MiB cannot all be in the kernel";
  EXPECT_FALSE(callbacks_.has(ConnectionEvent::LocalClose));
  std::string got = test::readToEof(peer_);
  EXPECT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data);
  EXPECT_TRUE(waitFor([&] { return callbacks_.has(ConnectionEvent::LocalClose); }));
  EXPECT_EQ(state(), Connection::State::Closed);
}

TEST_P(ConnectionImplTest, CloseNoFlushClosesAtOnce) {
  connect();
  ASSERT_TRUE(run([&] {
    buffer::Buffer b;
    b.add(pattern(4 * 1024 * 1024));
    conn_->write(b, false);
    conn_->close(ConnectionCloseType::NoFlush);
    EXPECT_EQ(conn_->state(), Connection::State::Closed);
    EXPECT_EQ(conn_->bytesBuffered(), 0u);
  }));
  EXPECT_EQ(callbacks_.events(), std::vector<ConnectionEvent>{ConnectionEvent::LocalClose});
  EXPECT_LT(test::readToEof(peer_).size(), 4u * 1024 * 1024);
}

// With half-close the peer's FIN reaches the filter as end_stream and we can still answer;
// our own end_stream then finishes the connection.
TEST_P(ConnectionImplTest, HalfCloseDeliversEndStreamAndKeepsWriting) {
  connect([](ConnectionImpl& c) { c.enableHalfClose(true); });
  peerWrite("request");
  ASSERT_EQ(shutdown(peer_, SHUT_WR), 0);
  ASSERT_TRUE(waitFor([&] { return filter_->endStream(); }));
  EXPECT_EQ(filter_->received(), "request");
  settle();
  EXPECT_EQ(state(), Connection::State::Open);
  EXPECT_TRUE(callbacks_.events().empty());
  write("response", /*end_stream=*/true);
  EXPECT_EQ(test::readToEof(peer_), "response");
  EXPECT_TRUE(waitFor([&] { return callbacks_.has(ConnectionEvent::LocalClose); }));
  EXPECT_EQ(state(), Connection::State::Closed);
}

// Our end_stream first: the peer sees EOF, we keep reading until its FIN.
TEST_P(ConnectionImplTest, HalfCloseOurSideFirst) {
  connect([](ConnectionImpl& c) { c.enableHalfClose(true); });
  write("bye", /*end_stream=*/true);
  EXPECT_EQ(test::readToEof(peer_), "bye");
  EXPECT_EQ(state(), Connection::State::Open);
  peerWrite("late");
  ASSERT_TRUE(waitFor([&] { return filter_->received() == "late"; }));
  ASSERT_EQ(shutdown(peer_, SHUT_WR), 0);
  EXPECT_TRUE(waitFor([&] { return filter_->endStream(); }));
  EXPECT_TRUE(waitFor([&] { return !callbacks_.events().empty(); }));
  EXPECT_EQ(state(), Connection::State::Closed);
}

// Without half-close a FIN still reaches the filter as end_stream, then the connection
// closes as a remote close.
TEST_P(ConnectionImplTest, WithoutHalfClosePeerFinClosesTheConnection) {
  connect();
  peerWrite("x");
  ASSERT_EQ(shutdown(peer_, SHUT_WR), 0);
  ASSERT_TRUE(waitFor([&] { return callbacks_.has(ConnectionEvent::RemoteClose); }));
  EXPECT_EQ(filter_->received(), "x");
  EXPECT_TRUE(filter_->endStream());
  std::string reason;
  ASSERT_TRUE(run([&] { reason = conn_->closeReason(); }));
  EXPECT_EQ(reason, "peer closed");
  EXPECT_TRUE(test::waitClosed(peer_));
  // Writes after close are dropped, not queued.
  ASSERT_TRUE(run([&] {
    buffer::Buffer b;
    b.add("late");
    conn_->write(b, false);
    EXPECT_TRUE(b.empty());
    EXPECT_EQ(conn_->bytesBuffered(), 0u);
  }));
}

TEST_P(ConnectionImplTest, PeerCloseWhileReadDisabledIsSeenOnEnable) {
  connect();
  ASSERT_TRUE(run([&] { conn_->readDisable(true); }));
  peerWrite("last words");
  close(peer_);
  peer_ = -1;
  settle();
  EXPECT_EQ(filter_->received(), "");
  ASSERT_TRUE(run([&] { conn_->readDisable(false); }));
  ASSERT_TRUE(waitFor([&] { return callbacks_.has(ConnectionEvent::RemoteClose); }));
  EXPECT_EQ(filter_->received(), "last words");
  EXPECT_TRUE(filter_->endStream());
}

} // namespace
} // namespace network
} // namespace tern
