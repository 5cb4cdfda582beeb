// stream::RpcConnPool against a real upstream socket: the test thread plays the provider
// (it reads the Bolt frames the pool sent and writes answers itself), so which id went
// out when, and what is in flight, is under the test's control. Ids come from a Bolt
// codec whose largest id is 3, so wrap-around happens within a few requests.
#include "source/common/stream/rpc_conn_pool.h"

#include <poll.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "extensions/codecs/bolt/bolt_codec.h"
#include "gtest/gtest.h"
#include "test/test_common/dispatcher_harness.h"
#include "test/test_common/test_upstream.h"

namespace tern {
namespace stream {
namespace {

class TinyIdBolt : public bolt::BoltCodec {
public:
  uint64_t maxRequestId() const override { return 3; }
};

void putBe16(std::string& s, uint16_t v) {
  s.push_back(char(v >> 8));
  s.push_back(char(v));
}
void putBe32(std::string& s, uint32_t v) {
  putBe16(s, uint16_t(v >> 16));
  putBe16(s, uint16_t(v));
}
uint32_t be32(const std::string& s, size_t at) {
  return (uint32_t(uint8_t(s[at])) << 24) | (uint32_t(uint8_t(s[at + 1])) << 16) |
         (uint32_t(uint8_t(s[at + 2])) << 8) | uint8_t(s[at + 3]);
}
uint16_t be16(const std::string& s, size_t at) { return uint16_t((uint8_t(s[at]) << 8) | uint8_t(s[at + 1])); }

// Bolt v1: request (22-byte header) or response (20-byte header), no class or headers.
std::string boltFrame(bool request, uint32_t id, const std::string& content) {
  std::string f;
  f.push_back(1);
  f.push_back(request ? 1 : 0);
  putBe16(f, request ? 1 : 2);
  f.push_back(1);
  putBe32(f, id);
  f.push_back(1);
  if (request) putBe32(f, 3000);
  else putBe16(f, 0);
  putBe16(f, 0);
  putBe16(f, 0);
  putBe32(f, uint32_t(content.size()));
  return f + content;
}

// The provider side: every accepted connection's frames, read on its own thread.
class Provider {
public:
  struct Seen {
    int fd;
    uint32_t id;
    std::string content;
  };
  Provider()
      : upstream_([this](int fd) {
          std::string buf;
          for (;;) {
            while (buf.size() >= 22 && buf.size() >= 22 + be32(buf, 18)) {
              size_t n = 22 + be32(buf, 18);
              absl::MutexLock l(&mu_);
              seen_.push_back({fd, be32(buf, 5), buf.substr(22, n - 22)});
              buf.erase(0, n);
            }
            pollfd p{fd, POLLIN, 0};
            if (poll(&p, 1, 30000) <= 0) return;
            char tmp[4096];
            ssize_t r = ::read(fd, tmp, sizeof(tmp));
            if (r <= 0) return;
            buf.append(tmp, size_t(r));
          }
        }) {}
  uint16_t port() const { return upstream_.port(); }
  int connections() const { return upstream_.accepted(); }
  std::vector<Seen> seen() {
    absl::MutexLock l(&mu_);
    return seen_;
  }
  bool waitSeen(size_t n) {
    return test::waitFor([&] { return seen().size() >= n; }) && seen().size() == n;
  }
  void answer(int fd, uint32_t id, const std::string& content) {
    std::string f = boltFrame(false, id, content);
    ASSERT_TRUE(test::writeAll(fd, f.data(), f.size()));
  }
  void stop() { upstream_.stop(); }

private:
  absl::Mutex mu_;
  std::vector<Seen> seen_ ABSL_GUARDED_BY(mu_);
  test::TestUpstream upstream_;
};

struct Request : public RpcUpstreamRequest {
  void onUpstreamResponse(rpc::FramePtr response) override {
    std::string raw = response->raw.toString();
    answer = raw.substr(20 + be16(raw, 12) + be16(raw, 14));
    done = true;
  }
  void onUpstreamFailure(RpcPoolFailure r, const char*) override {
    failure = r;
    failed = true;
    done = true;
  }
  std::string answer;
  bool done{false};
  bool failed{false};
  RpcPoolFailure failure{RpcPoolFailure::Overflow};
};

class RpcConnPoolTest : public testing::TestWithParam<const char*> {
public:
  void SetUp() override { harness_ = test::DispatcherHarness::create(GetParam()); }
  void TearDown() override {
    run([&] { pool_.reset(); });
    harness_->stop();
  }

  void start(RpcConnPool::Options options, uint16_t port, uint32_t max_pending = 1024) {
    envoy::config::cluster::v3::Cluster c;
    c.set_name("rpc");
    c.mutable_connect_timeout()->set_seconds(5);
    c.mutable_circuit_breakers()->add_thresholds()->mutable_max_pending_requests()->set_value(max_pending);
    cluster_ = std::make_unique<upstream::Cluster>(c, store_);
    shard_ = std::make_unique<upstream::ShardClusterManager>(cm_, harness_->dispatcher(), 1);
    auto addr = network::Address::fromIpPort("127.0.0.1", port);
    ASSERT_TRUE(addr.ok());
    host_ = std::make_shared<upstream::Host>(*addr, "127.0.0.1", 1, 0);
    ASSERT_TRUE(run([&] { pool_ = std::make_unique<RpcConnPool>(*shard_, *cluster_, host_, codec_, options); }));
  }

  bool run(std::function<void()> fn) { return harness_->runSync(std::move(fn)); }
  bool until(const std::function<bool()>& pred) {
    return test::waitFor([&] {
      bool v = false;
      run([&] { v = pred(); });
      return v;
    });
  }
  Request& send(const std::string& content) {
    requests_.push_back(std::make_unique<Request>());
    Request& r = *requests_.back();
    run([&] {
      buffer::Buffer b;
      b.add(boltFrame(true, 999, content));
      pool_->send(b, &r);
    });
    return r;
  }
  int64_t gauge(const std::string& name) { return store_.gaugeValue("cluster.rpc." + name); }

  TinyIdBolt codec_;
  stats::Store store_;
  upstream::ClusterManager cm_{store_};
  std::unique_ptr<upstream::Cluster> cluster_;
  std::unique_ptr<upstream::ShardClusterManager> shard_;
  upstream::HostSharedPtr host_;
  std::vector<std::unique_ptr<Request>> requests_; // outlive the pool
  std::unique_ptr<test::DispatcherHarness> harness_;
  std::unique_ptr<RpcConnPool> pool_;
};

INSTANTIATE_TEST_SUITE_P(IoModels, RpcConnPoolTest, testing::Values("worker_loops", "raw_epoll"));

// Ids are the pool's own (the frame said 999); they wrap at the protocol's maximum, skip
// ids still in flight, and a connection with every id in flight queues the next request.
TEST_P(RpcConnPoolTest, IdsWrapSkipInFlightAndQueueWhenExhausted) {
  Provider p;
  start({1, 0}, p.port());
  Request& r1 = send("r1");
  Request& r2 = send("r2");
  Request& r3 = send("r3");
  ASSERT_TRUE(p.waitSeen(3));
  Request& r4 = send("r4"); // ids 1..3 all in flight: waits
  EXPECT_TRUE(until([&] { return gauge("upstream_rq_pending_active") == 1; }));
  auto seen = p.seen();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].id, 1u);
  EXPECT_EQ(seen[1].id, 2u);
  EXPECT_EQ(seen[2].id, 3u);
  const int fd = seen[0].fd;

  p.answer(fd, 2, "answer-r2");
  ASSERT_TRUE(until([&] { return r2.done; }));
  EXPECT_EQ(r2.answer, "answer-r2");
  // r4 went out on the freed id (1 and 3 are still in flight).
  ASSERT_TRUE(p.waitSeen(4));
  EXPECT_EQ(p.seen()[3].id, 2u);
  EXPECT_EQ(p.seen()[3].content, "r4");

  p.answer(fd, 3, "answer-r3");
  p.answer(fd, 2, "answer-r4");
  p.answer(fd, 1, "answer-r1");
  ASSERT_TRUE(until([&] { return r1.done && r3.done && r4.done; }));
  EXPECT_EQ(r1.answer, "answer-r1");
  EXPECT_EQ(r3.answer, "answer-r3");
  EXPECT_EQ(r4.answer, "answer-r4");
  EXPECT_EQ(p.connections(), 1);
  EXPECT_EQ(gauge("upstream_rq_active"), 0);
}

// A cancelled request's late answer is dropped, counted, and harms nobody.
TEST_P(RpcConnPoolTest, CancelledRequestsLateAnswerIsDropped) {
  Provider p;
  start({1, 0}, p.port());
  Request& a = send("a");
  ASSERT_TRUE(p.waitSeen(1));
  run([&] { pool_->cancel(a); });
  Request& b = send("b");
  ASSERT_TRUE(p.waitSeen(2));
  auto seen = p.seen();
  p.answer(seen[0].fd, seen[0].id, "late");
  p.answer(seen[1].fd, seen[1].id, "for-b");
  ASSERT_TRUE(until([&] { return b.done; }));
  EXPECT_EQ(b.answer, "for-b");
  EXPECT_FALSE(a.done);
  size_t unknown = 0;
  run([&] { unknown = pool_->unknownResponses(); });
  EXPECT_EQ(unknown, 1u);
}

// Ping-pong: one request per connection, so concurrent requests open connections.
TEST_P(RpcConnPoolTest, PingPongOpensAConnectionPerConcurrentRequest) {
  Provider p;
  start({0, 1}, p.port());
  Request& a = send("a");
  Request& b = send("b");
  ASSERT_TRUE(p.waitSeen(2));
  auto seen = p.seen();
  // Each connection is read on its own thread: "a" may be seen second.
  if (seen[0].content != "a") std::swap(seen[0], seen[1]);
  ASSERT_EQ(seen[0].content, "a");
  EXPECT_NE(seen[0].fd, seen[1].fd);
  p.answer(seen[0].fd, seen[0].id, "A");
  ASSERT_TRUE(until([&] { return a.done; }));
  Request& c = send("c"); // reuses the free connection
  ASSERT_TRUE(p.waitSeen(3));
  EXPECT_EQ(p.seen()[2].fd, seen[0].fd);
  p.answer(seen[1].fd, seen[1].id, "B");
  p.answer(seen[0].fd, p.seen()[2].id, "C");
  ASSERT_TRUE(until([&] { return b.done && c.done; }));
  EXPECT_EQ(a.answer + b.answer + c.answer, "ABC");
  EXPECT_EQ(p.connections(), 2);
}

// Requests in flight when the upstream closes fail as Reset; with nobody listening, as
// ConnectionFailure (queued ones included).
TEST_P(RpcConnPoolTest, UpstreamCloseAndConnectFailureFailRequests) {
  {
    auto p = std::make_unique<Provider>();
    start({1, 0}, p->port());
    Request& a = send("a");
    Request& b = send("b");
    ASSERT_TRUE(p->waitSeen(2));
    p.reset();
    ASSERT_TRUE(until([&] { return a.done && b.done; }));
    EXPECT_TRUE(a.failed && b.failed);
    EXPECT_EQ(a.failure, RpcPoolFailure::Reset);
    EXPECT_EQ(b.failure, RpcPoolFailure::Reset);
    run([&] { pool_.reset(); });
  }
  start({1, 0}, test::freePort());
  Request& c = send("c");
  ASSERT_TRUE(until([&] { return c.done; }));
  EXPECT_TRUE(c.failed);
  EXPECT_EQ(c.failure, RpcPoolFailure::ConnectionFailure);
}

} // namespace
} // namespace stream
} // namespace tern
