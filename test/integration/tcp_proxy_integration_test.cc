// The real server, in-process, on loopback, against real upstream sockets; run for both
// IO models, with and without the splice path.
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "source/common/buffer/block_pool.h"
#include "source/common/config/bootstrap_loader.h"
#include "source/server/server.h"
#include "test/integration/tern_server.h"
#include "test/test_common/test_upstream.h"

namespace tern {
namespace {

using test::TestUpstream;

struct Param {
  const char* io_model;
  bool splice;
};

std::string paramName(const testing::TestParamInfo<Param>& info) {
  return absl::StrCat(info.param.io_model, info.param.splice ? "_splice" : "_buffers");
}

class TcpProxyIntegrationTest : public testing::TestWithParam<Param> {
protected:
  // `listeners` and `clusters` are YAML list items; `extra` more settings fields.
  void startServer(const std::string& listeners, const std::string& clusters,
                   const std::string& extra = "") {
    std::string yaml = absl::StrCat("static_resources:\n  listeners:\n", listeners,
                                    "  clusters:\n", clusters,
                                    test::ioModelSettings(GetParam().io_model),
                                    "    tcp_splice: ", GetParam().splice ? "true" : "false",
                                    "\n", extra);
    auto s = test::startTern(yaml, extra.find("concurrency") == std::string::npos ? 2 : -1);
    ASSERT_TRUE(s.ok()) << s.status().message();
    server_ = std::move(*s);
  }

  static std::string tcpListener(const std::string& name, const std::string& tcp_proxy_fields) {
    return absl::StrCat(R"(  - name: )", name, R"(
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: )",
                        name, "\n", tcp_proxy_fields);
  }

  static std::string cluster(const std::string& name, const std::vector<uint16_t>& ports,
                             const std::string& fields = "",
                             const std::vector<uint32_t>& weights = {}) {
    std::string eps;
    for (size_t i = 0; i < ports.size(); i++) {
      absl::StrAppend(&eps, "        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: ",
                      ports[i], "}}}\n");
      if (!weights.empty()) absl::StrAppend(&eps, "          load_balancing_weight: ", weights[i], "\n");
    }
    return absl::StrCat("  - name: ", name, "\n    connect_timeout: 2s\n", fields,
                        "    load_assignment:\n      cluster_name: ", name,
                        "\n      endpoints:\n      - lb_endpoints:\n", eps);
  }

  uint16_t port(const std::string& listener) {
    auto a = server_->listenerAddress(listener);
    EXPECT_TRUE(a.ok());
    return a.ok() ? a->port() : 0;
  }
  uint64_t counter(const std::string& name) { return server_->stats().counterValue(name); }
  int64_t gauge(const std::string& name) { return server_->stats().gaugeValue(name); }

  void TearDown() override {
    if (server_) server_->stop();
    server_.reset();
  }

  std::unique_ptr<server::Server> server_;
};

INSTANTIATE_TEST_SUITE_P(IoModels, TcpProxyIntegrationTest,
                         testing::Values(Param{"WORKER_LOOPS", true}, Param{"WORKER_LOOPS", false},
                                         Param{"RAW_EPOLL", true}, Param{"RAW_EPOLL", false}),
                         paramName);

TEST_P(TcpProxyIntegrationTest, EchoThroughProxy) {
  TestUpstream up(TestUpstream::echo());
  startServer(tcpListener("l", "          cluster: c\n"), cluster("c", {up.port()}));
  int fd = test::connectTo(port("l"));
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(test::writeAll(fd, "hello", 5));
  shutdown(fd, SHUT_WR);
  EXPECT_EQ(test::readToEof(fd), "hello");
  close(fd);
  EXPECT_TRUE(test::waitFor([&] { return gauge("listener.l.downstream_cx_active") == 0; }));
  EXPECT_EQ(counter("tcp.l.downstream_cx_total"), 1);
  EXPECT_EQ(counter("tcp.l.downstream_cx_rx_bytes_total"), 5);
  EXPECT_EQ(counter("tcp.l.downstream_cx_tx_bytes_total"), 5);
  EXPECT_EQ(counter("cluster.c.upstream_cx_total"), 1);
  EXPECT_TRUE(test::waitFor([&] { return gauge("cluster.c.upstream_cx_active") == 0; }));
}

TEST_P(TcpProxyIntegrationTest, ManyConcurrentConnections) {
  TestUpstream up(TestUpstream::echo());
  startServer(tcpListener("l", "          cluster: c\n"), cluster("c", {up.port()}));
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 32; i++) {
    clients.emplace_back([&, i] {
      int fd = test::connectTo(port("l"));
      if (fd < 0) return;
      std::string msg(1000 + i * 997, static_cast<char>('a' + i % 26));
      test::writeAll(fd, msg.data(), msg.size());
      shutdown(fd, SHUT_WR);
      if (test::readToEof(fd) == msg) ok++;
      close(fd);
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 32);
}

// 100 MB upstream -> client while the client reads slowly: the proxy must stop reading
// the upstream instead of buffering, so its buffers stay near the 1 MiB watermark.
TEST_P(TcpProxyIntegrationTest, LargeTransferToSlowReaderKeepsMemoryBounded) {
  constexpr size_t kTotal = 100 * 1024 * 1024;
  TestUpstream up([](int fd) {
    std::string chunk(1 << 20, 'x');
    for (size_t sent = 0; sent < kTotal; sent += chunk.size()) {
      if (!test::writeAll(fd, chunk.data(), chunk.size())) return;
    }
    shutdown(fd, SHUT_WR);
  });
  startServer(tcpListener("l", "          cluster: c\n"), cluster("c", {up.port()}),
              "    concurrency: 1\n");
  int fd = test::connectTo(port("l"));
  ASSERT_GE(fd, 0);
  int small = 64 * 1024;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  std::atomic<bool> done{false};
  std::atomic<int64_t> max_blocks{0};
  std::thread sampler([&] {
    auto ds = server_->dispatchers();
    while (!done) {
      int64_t total = 0;
      for (auto* d : ds) total += d->blockPool().inUse();
      if (total > max_blocks) max_blocks = total;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  size_t got = 0;
  char buf[16384];
  int reads = 0;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    got += n;
    // Slow at the start, while the upstream has most of its data still to send.
    if (++reads < 200) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  done = true;
  sampler.join();
  close(fd);
  EXPECT_EQ(got, kTotal);
  // Two 1 MiB watermarks (read and write side) in 16 KiB blocks, plus slack.
  EXPECT_LE(max_blocks.load() * 16384, 4 * 1024 * 1024) << "blocks in use: " << max_blocks;
  EXPECT_GT(counter("cluster.c.upstream_flow_control_paused_reading_total"), 0u)
      << "the slow reader never applied backpressure";
  EXPECT_EQ(counter("cluster.c.upstream_flow_control_paused_reading_total"),
            counter("cluster.c.upstream_flow_control_resumed_reading_total"));
}

// 100 MB client -> upstream, the upstream reading slowly: backpressure the other way.
TEST_P(TcpProxyIntegrationTest, LargeUploadToSlowUpstream) {
  constexpr size_t kTotal = 100 * 1024 * 1024;
  std::atomic<size_t> received{0};
  TestUpstream up([&](int fd) {
    int small = 64 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    char buf[16384];
    int reads = 0;
    for (;;) {
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n <= 0) break;
      received += n;
      if (++reads < 200) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    test::writeAll(fd, "done", 4);
    shutdown(fd, SHUT_WR);
  });
  startServer(tcpListener("l", "          cluster: c\n"), cluster("c", {up.port()}),
              "    concurrency: 1\n");
  int fd = test::connectTo(port("l"));
  ASSERT_GE(fd, 0);
  std::string chunk(1 << 20, 'y');
  for (size_t sent = 0; sent < kTotal; sent += chunk.size()) {
    ASSERT_TRUE(test::writeAll(fd, chunk.data(), chunk.size()));
  }
  shutdown(fd, SHUT_WR);
  EXPECT_EQ(test::readToEof(fd, 30000), "done");
  close(fd);
  EXPECT_EQ(received.load(), kTotal);
}

// Each direction closes on its own: the client's FIN reaches the upstream while the
// upstream keeps answering, and the upstream's answer and FIN reach the client.
TEST_P(TcpProxyIntegrationTest, HalfCloseBothWays) {
  TestUpstream up([](int fd) {
    std::string all;
    char buf[4096];
    for (;;) {
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n <= 0) break;
      all.append(buf, n);
    }
    // Client has half-closed; answer after it.
    std::string reply = "got:" + all;
    test::writeAll(fd, reply.data(), reply.size());
    shutdown(fd, SHUT_WR);
  });
  startServer(tcpListener("l", "          cluster: c\n"), cluster("c", {up.port()}));
  int fd = test::connectTo(port("l"));
  ASSERT_TRUE(test::writeAll(fd, "request", 7));
  shutdown(fd, SHUT_WR);
  EXPECT_EQ(test::readToEof(fd), "got:request");
  close(fd);
}

TEST_P(TcpProxyIntegrationTest, UpstreamFinFirstClientKeepsSending) {
  std::atomic<size_t> received{0};
  TestUpstream up([&](int fd) {
    test::writeAll(fd, "bye", 3);
    shutdown(fd, SHUT_WR); // server done talking, still listening
    char buf[4096];
    for (;;) {
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n <= 0) break;
      received += n;
    }
  });
  startServer(tcpListener("l", "          cluster: c\n"), cluster("c", {up.port()}));
  int fd = test::connectTo(port("l"));
  char buf[3];
  ASSERT_EQ(read(fd, buf, 3), 3);
  ASSERT_TRUE(test::writeAll(fd, "more data", 9));
  shutdown(fd, SHUT_WR);
  EXPECT_TRUE(test::waitClosed(fd));
  close(fd);
  EXPECT_TRUE(test::waitFor([&] { return received.load() == 9; }));
}

TEST_P(TcpProxyIntegrationTest, UpstreamDownClosesClientAndKeepsServing) {
  TestUpstream alive(TestUpstream::echo());
  uint16_t dead = test::freePort();
  startServer(tcpListener("down", "          cluster: dead\n") +
                  tcpListener("up", "          cluster: alive\n"),
              cluster("dead", {dead}) + cluster("alive", {alive.port()}));
  int fd = test::connectTo(port("down"));
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(test::waitClosed(fd));
  close(fd);
  EXPECT_TRUE(test::waitFor([&] { return counter("cluster.dead.upstream_cx_connect_fail") == 1; }));
  EXPECT_EQ(counter("tcp.down.upstream_connect_attempts_exceeded"), 1);
  // The process keeps serving other connections.
  fd = test::connectTo(port("up"));
  ASSERT_TRUE(test::writeAll(fd, "ok", 2));
  shutdown(fd, SHUT_WR);
  EXPECT_EQ(test::readToEof(fd), "ok");
  close(fd);
}

TEST_P(TcpProxyIntegrationTest, ConnectFailureMovesToNextHost) {
  TestUpstream alive(TestUpstream::echo());
  uint16_t dead = test::freePort();
  startServer(tcpListener("l", "          cluster: c\n          max_connect_attempts: 2\n"),
              cluster("c", {dead, alive.port()}), "    concurrency: 1\n    raw_epoll_shards: 1\n");
  for (int i = 0; i < 4; i++) {
    int fd = test::connectTo(port("l"));
    ASSERT_TRUE(test::writeAll(fd, "x", 1));
    shutdown(fd, SHUT_WR);
    EXPECT_EQ(test::readToEof(fd), "x") << "connection " << i;
    close(fd);
  }
  // Round robin visits the dead host for at least three of the four connections; each
  // of those moved on to the live one.
  EXPECT_GE(counter("cluster.c.upstream_cx_connect_fail"), 3);
  EXPECT_EQ(alive.accepted(), 4);
  EXPECT_EQ(counter("tcp.l.upstream_connect_attempts_exceeded"), 0);
}

// An upstream whose accept queue is full never completes the handshake.
TEST_P(TcpProxyIntegrationTest, ConnectTimeout) {
  TestUpstream stuck(nullptr, -1);
  // Fill the backlog so further SYNs are dropped.
  std::vector<int> fillers;
  for (int i = 0; i < 4; i++) {
    int f = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(stuck.port());
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connect(f, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    fillers.push_back(f);
  }
  startServer(tcpListener("l", "          cluster: c\n"),
              absl::StrReplaceAll(cluster("c", {stuck.port()}),
                                  {{"connect_timeout: 2s", "connect_timeout: 0.3s"}}));
  int fd = test::connectTo(port("l"));
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(test::waitClosed(fd, 10000));
  close(fd);
  EXPECT_TRUE(test::waitFor([&] { return counter("cluster.c.upstream_cx_connect_timeout") == 1; }));
  for (int f : fillers) close(f);
}

TEST_P(TcpProxyIntegrationTest, UpstreamResetClosesOnlyThatClient) {
  TestUpstream resetter(TestUpstream::reset());
  TestUpstream alive(TestUpstream::echo());
  startServer(tcpListener("r", "          cluster: r\n") + tcpListener("a", "          cluster: a\n"),
              cluster("r", {resetter.port()}) + cluster("a", {alive.port()}));
  int keep = test::connectTo(port("a"));
  ASSERT_TRUE(test::writeAll(keep, "1", 1));
  int fd = test::connectTo(port("r"));
  EXPECT_TRUE(test::waitClosed(fd));
  close(fd);
  // The other connection is untouched.
  ASSERT_TRUE(test::writeAll(keep, "2", 1));
  shutdown(keep, SHUT_WR);
  EXPECT_EQ(test::readToEof(keep), "12");
  close(keep);
}

TEST_P(TcpProxyIntegrationTest, WeightedRoundRobinAcrossThreeUpstreams) {
  TestUpstream a(TestUpstream::hold()), b(TestUpstream::hold()), c(TestUpstream::hold());
  startServer(tcpListener("l", "          cluster: c\n"),
              cluster("c", {a.port(), b.port(), c.port()}, "", {1, 2, 3}),
              "    concurrency: 1\n    raw_epoll_shards: 1\n");
  for (int i = 0; i < 60; i++) {
    int total_before = a.accepted() + b.accepted() + c.accepted();
    int fd = test::connectTo(port("l"));
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(test::waitFor([&] { return a.accepted() + b.accepted() + c.accepted() > total_before; }));
    close(fd);
  }
  // Smooth weighted round robin is exact over a whole number of rounds.
  EXPECT_EQ(a.accepted(), 10);
  EXPECT_EQ(b.accepted(), 20);
  EXPECT_EQ(c.accepted(), 30);
}

TEST_P(TcpProxyIntegrationTest, WeightedClusters) {
  TestUpstream a(TestUpstream::hold()), b(TestUpstream::hold());
  startServer(tcpListener("l", R"(          weighted_clusters:
            clusters:
            - {name: a, weight: 1}
            - {name: b, weight: 3}
)"),
              cluster("a", {a.port()}) + cluster("b", {b.port()}));
  for (int i = 0; i < 200; i++) {
    int before = a.accepted() + b.accepted();
    int fd = test::connectTo(port("l"));
    ASSERT_TRUE(test::waitFor([&] { return a.accepted() + b.accepted() > before; }));
    close(fd);
  }
  // Random with weights 1:3: expect about 50 / 150; the bounds are > 6 sigma wide.
  EXPECT_GT(a.accepted(), 20);
  EXPECT_LT(a.accepted(), 85);
  EXPECT_EQ(a.accepted() + b.accepted(), 200);
}

TEST_P(TcpProxyIntegrationTest, IdleTimeoutClosesQuietConnection) {
  TestUpstream up(TestUpstream::hold());
  startServer(tcpListener("l", "          cluster: c\n          idle_timeout: 0.2s\n"),
              cluster("c", {up.port()}));
  int fd = test::connectTo(port("l"));
  ASSERT_TRUE(test::writeAll(fd, "x", 1));
  EXPECT_TRUE(test::waitClosed(fd, 10000));
  close(fd);
  EXPECT_TRUE(test::waitFor([&] { return counter("tcp.l.idle_timeout") == 1; }));
}

TEST_P(TcpProxyIntegrationTest, LeastRequestAndRandomPolicies) {
  TestUpstream a(TestUpstream::echo()), b(TestUpstream::echo());
  startServer(tcpListener("lr", "          cluster: lr\n") + tcpListener("rnd", "          cluster: rnd\n"),
              cluster("lr", {a.port(), b.port()}, "    lb_policy: LEAST_REQUEST\n") +
                  cluster("rnd", {a.port(), b.port()}, "    lb_policy: RANDOM\n"));
  // Least request: with one connection held open on a host, new ones go to the other.
  std::vector<int> held;
  for (int i = 0; i < 20; i++) {
    int fd = test::connectTo(port("lr"));
    ASSERT_TRUE(test::writeAll(fd, "x", 1));
    char c;
    ASSERT_EQ(read(fd, &c, 1), 1);
    held.push_back(fd);
  }
  EXPECT_GE(a.accepted(), 5);
  EXPECT_GE(b.accepted(), 5);
  for (int fd : held) close(fd);
  int before = a.accepted() + b.accepted();
  for (int i = 0; i < 40; i++) {
    int fd = test::connectTo(port("rnd"));
    ASSERT_TRUE(test::writeAll(fd, "y", 1));
    char c;
    ASSERT_EQ(read(fd, &c, 1), 1);
    close(fd);
  }
  EXPECT_EQ(a.accepted() + b.accepted(), before + 40);
}

TEST_P(TcpProxyIntegrationTest, PortInUseFailsStartupWithClearError) {
  TestUpstream taken(TestUpstream::hold());
  std::string yaml = absl::StrCat(R"(
static_resources:
  listeners:
  - name: busy
    address: {socket_address: {address: 127.0.0.1, port_value: )",
                                  taken.port(), R"(}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.echo
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.echo.v3.Echo}
)");
  envoy::config::bootstrap::v3::Bootstrap bootstrap;
  ASSERT_TRUE(config::parseYamlInto(yaml, bootstrap).ok());
  auto s = server::Server::create(bootstrap, server::Options{});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("static_resources.listeners[0] (busy)"), std::string::npos)
      << s.status().message();
  EXPECT_NE(s.status().message().find("Address already in use"), std::string::npos)
      << s.status().message();
}

} // namespace
} // namespace tern
