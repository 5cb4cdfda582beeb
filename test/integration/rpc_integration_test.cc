// The RPC proxy over real sockets: Bolt and Dubbo frames from raw-socket clients through
// Tern to threaded test upstreams, byte by byte. Frames are built and read here by hand
// (independent of Tern's codecs), starting from the golden frames captured from real
// peers (shared/design/protocols.md). Real SOFARPC and Dubbo clients and servers are in
// rpc_peers_integration_test.

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "source/common/config/bootstrap_loader.h"
#include "source/common/config/registry.h"
#include "source/server/filter_config.h"
#include "source/server/server.h"
#include "test/integration/tern_server.h"
#include "test/test_common/test_upstream.h"

namespace tern {
namespace {

// ---------------------------------------------------------------------------------------
// Frames

std::string hex(absl::string_view h) { return absl::HexStringToBytes(h); }

void putBe16(std::string& s, uint16_t v) {
  s.push_back(char(v >> 8));
  s.push_back(char(v));
}
void putBe32(std::string& s, uint32_t v) {
  putBe16(s, uint16_t(v >> 16));
  putBe16(s, uint16_t(v));
}
void putBe64(std::string& s, uint64_t v) {
  putBe32(s, uint32_t(v >> 32));
  putBe32(s, uint32_t(v));
}
uint32_t be32(const std::string& s, size_t at) {
  return (uint32_t(uint8_t(s[at])) << 24) | (uint32_t(uint8_t(s[at + 1])) << 16) |
         (uint32_t(uint8_t(s[at + 2])) << 8) | uint8_t(s[at + 3]);
}
uint16_t be16(const std::string& s, size_t at) { return uint16_t((uint8_t(s[at]) << 8) | uint8_t(s[at + 1])); }
uint64_t be64(const std::string& s, size_t at) { return (uint64_t(be32(s, at)) << 32) | be32(s, at + 4); }

using Headers = std::vector<std::pair<std::string, std::string>>;

// A Bolt v1 request (type 1 two-way, 2 one-way; cmdcode 1) with a SofaRequest class name.
std::string boltRequest(uint32_t id, const Headers& headers, const std::string& content = "payload",
                        uint8_t type = 1) {
  std::string cls = "com.alipay.sofa.rpc.core.request.SofaRequest";
  std::string hm;
  for (const auto& [k, v] : headers) {
    putBe32(hm, uint32_t(k.size()));
    hm += k;
    putBe32(hm, uint32_t(v.size()));
    hm += v;
  }
  std::string f;
  f.push_back(1);
  f.push_back(char(type));
  putBe16(f, 1);
  f.push_back(1);
  putBe32(f, id);
  f.push_back(1);
  putBe32(f, 3000);
  putBe16(f, uint16_t(cls.size()));
  putBe16(f, uint16_t(hm.size()));
  putBe32(f, uint32_t(content.size()));
  return f + cls + hm + content;
}

std::string boltResponse(uint32_t id, uint16_t status, const std::string& content) {
  std::string cls = "com.alipay.sofa.rpc.core.response.SofaResponse";
  std::string f;
  f.push_back(1);
  f.push_back(0);
  putBe16(f, 2);
  f.push_back(1);
  putBe32(f, id);
  f.push_back(1);
  putBe16(f, status);
  putBe16(f, uint16_t(cls.size()));
  putBe16(f, 0);
  putBe32(f, uint32_t(content.size()));
  return f + cls + content;
}

// hessian2 string (short form: fewer than 32 bytes; enough for these tests).
std::string h2s(const std::string& s) { return std::string(1, char(s.size())) + s; }

// A Dubbo hessian2 request: echo(String) with the given attachments.
std::string dubboRequest(uint64_t id, const std::string& service, const std::string& version,
                         const std::string& method, const Headers& attachments,
                         const std::string& arg = "hello", uint8_t flag = 0xc2) {
  std::string body = h2s("2.0.2") + h2s(service) + h2s(version) + h2s(method) +
                     h2s("Ljava/lang/String;") + h2s(arg) + "H";
  for (const auto& [k, v] : attachments) body += h2s(k) + h2s(v);
  body += "Z";
  std::string f = "\xda\xbb";
  f.push_back(char(flag));
  f.push_back(0);
  putBe64(f, id);
  putBe32(f, uint32_t(body.size()));
  return f + body;
}

std::string dubboResponse(uint64_t id, uint8_t status, const std::string& value) {
  std::string body = "\x91" + h2s(value); // RESPONSE_VALUE, then the value
  std::string f = "\xda\xbb\x02";
  f.push_back(char(status));
  putBe64(f, id);
  putBe32(f, uint32_t(body.size()));
  return f + body;
}

struct Frame {
  std::string bytes;
  bool bolt{true};
  uint64_t id{0};
  // Bolt: type and cmdcode; Dubbo: flag.
  uint8_t type{0};
  uint16_t cmd{0};
  uint8_t flag{0};
  uint16_t status{0};
  std::string content; // Bolt content / Dubbo body
  bool isBoltHeartbeat() const { return bolt && cmd == 0; }
};

// Length of the whole frame at the front of `buf`, or 0 when more bytes are needed.
size_t frameLength(const std::string& buf) {
  if (buf.empty()) return 0;
  if (uint8_t(buf[0]) == 0xda) {
    if (buf.size() < 16) return 0;
    size_t n = 16 + be32(buf, 12);
    return buf.size() >= n ? n : 0;
  }
  // Bolt v1: requests have a 22-byte header, responses 20.
  if (buf.size() < 22) return buf.size() >= 20 && buf[1] == 0 ? 20 + 0 * be16(buf, 12) : 0;
  const bool response = buf[1] == 0;
  size_t fixed = response ? 20 : 22;
  size_t lens = response ? 12 : 14;
  size_t n = fixed + be16(buf, lens) + be16(buf, lens + 2) + be32(buf, lens + 4);
  return buf.size() >= n ? n : 0;
}

Frame parseFrame(const std::string& bytes) {
  Frame f;
  f.bytes = bytes;
  if (uint8_t(bytes[0]) == 0xda) {
    f.bolt = false;
    f.flag = uint8_t(bytes[2]);
    f.status = uint8_t(bytes[3]);
    f.id = be64(bytes, 4);
    f.content = bytes.substr(16);
    return f;
  }
  f.type = uint8_t(bytes[1]);
  f.cmd = be16(bytes, 2);
  f.id = be32(bytes, 5);
  if (f.type == 0) {
    f.status = be16(bytes, 10);
    f.content = bytes.substr(20 + be16(bytes, 12) + be16(bytes, 14));
  } else {
    f.content = bytes.substr(22 + be16(bytes, 14) + be16(bytes, 16));
  }
  return f;
}

// Reads one frame from `fd` (buffering extra bytes in `buf`); false on EOF or timeout.
bool readFrame(int fd, std::string& buf, Frame& out, int timeout_ms = 10000) {
  for (;;) {
    size_t n = frameLength(buf);
    if (n > 0) {
      out = parseFrame(buf.substr(0, n));
      buf.erase(0, n);
      return true;
    }
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return false;
    char tmp[65536];
    ssize_t r = ::read(fd, tmp, sizeof(tmp));
    if (r <= 0) return false;
    buf.append(tmp, size_t(r));
  }
}

// ---------------------------------------------------------------------------------------
// An RPC upstream: one thread per connection, answers each request as `answer` says.

class RpcUpstream {
public:
  struct Seen {
    Frame frame;
    int connection;
  };
  // Returns the bytes to write back (empty: no answer). `close` ends the connection after.
  struct Answer {
    std::string bytes;
    bool close{false};
  };
  using AnswerFn = std::function<Answer(const Frame&, int connection)>;

  // Default: answers with `name:<content>` as success, Bolt or Dubbo as asked.
  explicit RpcUpstream(std::string name, AnswerFn fn = nullptr)
      : name_(std::move(name)), fn_(std::move(fn)),
        upstream_([this](int fd) { serve(fd); }) {}

  uint16_t port() const { return upstream_.port(); }
  int connections() const { return upstream_.accepted(); }
  std::vector<Seen> seen() {
    absl::MutexLock l(&mu_);
    return seen_;
  }
  size_t seenCount() {
    absl::MutexLock l(&mu_);
    return seen_.size();
  }
  void stop() { upstream_.stop(); }

  Answer echo(const Frame& f) const {
    if (f.bolt) return {boltResponse(uint32_t(f.id), 0, name_ + ":" + f.content)};
    return {dubboResponse(f.id, 20, name_)};
  }

private:
  void serve(int fd) {
    int conn = next_conn_++;
    std::string buf;
    Frame f;
    while (readFrame(fd, buf, f, 60000)) {
      {
        absl::MutexLock l(&mu_);
        seen_.push_back({f, conn});
      }
      const bool oneway = f.bolt ? f.type == 2 : (f.flag & 0x40) == 0;
      if (oneway) continue;
      Answer a = fn_ ? fn_(f, conn) : echo(f);
      if (!a.bytes.empty() && !test::writeAll(fd, a.bytes.data(), a.bytes.size())) return;
      if (a.close) return;
    }
  }

  std::string name_;
  AnswerFn fn_;
  std::atomic<int> next_conn_{0};
  absl::Mutex mu_;
  std::vector<Seen> seen_ ABSL_GUARDED_BY(mu_);
  test::TestUpstream upstream_;
};

// ---------------------------------------------------------------------------------------
// A stream filter for the RPC chain, linked into this test only: refuses requests that
// carry the header "x-deny", and tags the response headers it sees (counted).

std::atomic<int> g_filter_responses{0};

class DenyFilter : public http::StreamDecoderFilter, public http::StreamEncoderFilter {
public:
  http::FilterHeadersStatus decodeHeaders(http::HeaderMap& headers, bool) override {
    if (headers.get("x-deny") != nullptr) {
      decoder_->sendLocalReply(403, "denied by test filter", nullptr, "test_deny");
      return http::FilterHeadersStatus::StopIteration;
    }
    return http::FilterHeadersStatus::Continue;
  }
  http::FilterDataStatus decodeData(buffer::Buffer&, bool) override { return http::FilterDataStatus::Continue; }
  http::FilterTrailersStatus decodeTrailers(http::HeaderMap&) override {
    return http::FilterTrailersStatus::Continue;
  }
  void setDecoderFilterCallbacks(http::StreamDecoderFilterCallbacks& cb) override { decoder_ = &cb; }
  http::FilterHeadersStatus encodeHeaders(http::HeaderMap&, bool) override {
    g_filter_responses++;
    return http::FilterHeadersStatus::Continue;
  }
  http::FilterDataStatus encodeData(buffer::Buffer&, bool) override { return http::FilterDataStatus::Continue; }
  http::FilterTrailersStatus encodeTrailers(http::HeaderMap&) override {
    return http::FilterTrailersStatus::Continue;
  }
  void setEncoderFilterCallbacks(http::StreamEncoderFilterCallbacks&) override {}

private:
  http::StreamDecoderFilterCallbacks* decoder_{nullptr};
};

class DenyFilterFactory : public server::HttpFilterFactory {
public:
  std::string name() const override { return "tern.test.deny"; }
  std::string configType() const override { return "tern.test.Deny"; }
  absl::StatusOr<http::FilterFactoryCb> createFilterFactory(const google::protobuf::Any&, const std::string&,
                                                            server::FactoryContext&) override {
    return http::FilterFactoryCb([](http::FilterChainFactoryCallbacks& cb) {
      auto f = std::make_shared<DenyFilter>();
      cb.addStreamDecoderFilter(f);
      cb.addStreamEncoderFilter(f);
    });
  }
};
config::RegisterFactory<DenyFilterFactory, server::HttpFilterFactory> deny_registered;

// ---------------------------------------------------------------------------------------

class Client {
public:
  explicit Client(uint16_t port) : fd_(test::connectTo(port)) {}
  ~Client() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool send(const std::string& bytes) { return test::writeAll(fd_, bytes.data(), bytes.size()); }
  bool read(Frame& f, int timeout_ms = 10000) { return readFrame(fd_, buf_, f, timeout_ms); }
  // Sends a request and reads one frame back.
  Frame call(const std::string& request) {
    Frame f;
    EXPECT_TRUE(send(request));
    EXPECT_TRUE(read(f)) << "no answer";
    return f;
  }
  bool closedByPeer(int timeout_ms = 5000) { return test::waitClosed(fd_, timeout_ms); }
  int fd() const { return fd_; }

private:
  int fd_;
  std::string buf_;
};

const Headers kEcho = {{"service", "com.example.EchoService:1.0"}, {"sofa_head_method_name", "echo"}};

class RpcIntegrationTest : public testing::TestWithParam<const char*> {
public:
  static void SetUpTestSuite() { signal(SIGPIPE, SIG_IGN); }

  void SetUp() override { startServer(); }

  std::string rpcListener(const std::string& name, const std::string& body) {
    return absl::StrCat(R"(
  - name: )", name, R"(
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: tern.filters.network.rpc_proxy
        typed_config:
          "@type": type.googleapis.com/tern.filters.network.rpc_proxy.v1.RpcProxy
)", body);
  }
  static std::string cluster(const std::string& name, uint16_t port) {
    return absl::StrCat("  - name: ", name, "\n    connect_timeout: 1s\n    load_assignment:\n      cluster_name: ", name,
                        "\n      endpoints:\n      - lb_endpoints:\n        - endpoint: {address: {socket_address: "
                        "{address: 127.0.0.1, port_value: ",
                        port, "}}}\n");
  }

  void startServer() {
    std::string yaml = absl::StrCat(
        "static_resources:\n  listeners:",
        rpcListener("bolt", R"(          stat_prefix: bolt
          downstream_protocol: BOLT
          rpc_filters:
          - name: tern.test.deny
          route_config:
            routes:
            - match: {service: {exact: com.example.EchoService}, version: {exact: "2.0"}}
              route: {cluster: v2}
            - match: {method: {prefix: slow}}
              route: {cluster: deaf, timeout: 0.3s}
            - match: {headers: [{name: target, exact_match: flaky}]}
              route: {cluster: flaky, retry_policy: {retry_on: "reset", num_retries: 1}}
            - match: {headers: [{name: target, exact_match: restart}]}
              route: {cluster: restart}
            - match: {headers: [{name: target, exact_match: empty}]}
              route: {cluster: empty}
            - match: {headers: [{name: target, exact_match: split}]}
              route: {weighted_clusters: {clusters: [{name: v1, weight: 1}, {name: v2, weight: 1}]}}
            - match: {service: {exact: com.example.Down}}
              route: {cluster: dead, retry_policy: {retry_on: connect-failure, num_retries: 2}}
            - match: {service: {exact: com.example.EchoService}}
              route: {cluster: v1}
)"),
        rpcListener("bolt_small", R"(          stat_prefix: bolt_small
          downstream_protocol: BOLT
          max_frame_bytes: 1024
          route_config:
            routes:
            - match: {}
              route: {cluster: v1}
)"),
        rpcListener("bolt_pingpong", R"(          stat_prefix: bolt_pingpong
          downstream_protocol: BOLT
          pool_mode: PING_PONG
          route_config:
            routes:
            - match: {}
              route: {cluster: slow1}
)"),
        rpcListener("bolt_tight", R"(          stat_prefix: bolt_tight
          downstream_protocol: BOLT
          pool_mode: PING_PONG
          route_config:
            routes:
            - match: {}
              route: {cluster: tight}
)"),
        rpcListener("bolt_bound", R"(          stat_prefix: bolt_bound
          downstream_protocol: BOLT
          pool_mode: BOUND
          route_config:
            routes:
            - match: {}
              route: {cluster: bound}
)"),
        rpcListener("dubbo", R"(          stat_prefix: dubbo
          downstream_protocol: DUBBO
          route_config:
            routes:
            - match: {group: {exact: canary}}
              route: {cluster: canary}
            - match: {service: {prefix: com.example.}, method: {exact: echo}}
              route: {cluster: v1}
)"),
        rpcListener("auto", R"(          stat_prefix: auto
          route_config:
            routes:
            - match: {}
              route: {cluster: v1}
          http:
            stat_prefix: auto_http
            route_config:
              virtual_hosts:
              - name: all
                domains: ["*"]
                routes:
                - match: {prefix: /}
                  direct_response: {status: 200, body: {inline_string: "http here\n"}}
            http_filters:
            - name: envoy.filters.http.router
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
)"),
        "  clusters:\n", cluster("v1", v1_.port()), cluster("v2", v2_.port()), cluster("canary", canary_.port()),
        cluster("deaf", deaf_.port()), cluster("flaky", flaky_.port()), cluster("dead", test::freePort()),
        cluster("slow1", slow_.port()), cluster("bound", bound_.port()),
        cluster("restart", restart_.port()),
        // One connection and one waiting request at most.
        "  - name: tight\n    connect_timeout: 1s\n    circuit_breakers: {thresholds: [{max_connections: 1, "
        "max_pending_requests: 1}]}\n    load_assignment:\n      cluster_name: tight\n      endpoints:\n"
        "      - lb_endpoints:\n        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: ",
        tight_.port(), "}}}\n",
        // No endpoints at all.
        "  - name: empty\n    connect_timeout: 1s\n    load_assignment: {cluster_name: empty}\n", test::ioModelSettings(GetParam()));
    auto s = test::startTern(yaml);
    ASSERT_TRUE(s.ok()) << s.status().message();
    server_ = std::move(*s);
  }

  uint16_t port(const std::string& listener) {
    auto a = server_->listenerAddress(listener);
    EXPECT_TRUE(a.ok());
    return a.ok() ? a->port() : 0;
  }
  uint64_t counter(const std::string& name) { return server_->stats().counterValue(name); }

  RpcUpstream v1_{"v1"};
  RpcUpstream v2_{"v2"};
  RpcUpstream canary_{"canary"};
  // Never answers.
  RpcUpstream deaf_{"deaf", [](const Frame&, int) { return RpcUpstream::Answer{}; }};
  // Its first connection closes on the first request; later ones answer.
  RpcUpstream flaky_{"flaky", [this](const Frame& f, int conn) {
                       if (conn == 0) return RpcUpstream::Answer{"", true};
                       return flaky_.echo(f);
                     }};
  // Answers after 50 ms (so pipelined calls are all in flight at once).
  RpcUpstream slow_{"slow", [this](const Frame& f, int) {
                      std::this_thread::sleep_for(std::chrono::milliseconds(50));
                      return slow_.echo(f);
                    }};
  RpcUpstream bound_{"bound"};
  RpcUpstream tight_{"tight", [this](const Frame& f, int) {
                       std::this_thread::sleep_for(std::chrono::milliseconds(100));
                       return tight_.echo(f);
                     }};
  // "die" closes the connection (every request in flight on it is lost); others echo.
  RpcUpstream restart_{"restart", [this](const Frame& f, int) {
                         if (f.content == "die") return RpcUpstream::Answer{"", true};
                         return restart_.echo(f);
                       }};
  std::unique_ptr<server::Server> server_;
};

INSTANTIATE_TEST_SUITE_P(IoModels, RpcIntegrationTest, testing::Values("WORKER_LOOPS", "RAW_EPOLL"));

// The golden SOFARPC frames pass through; the id is rewritten upstream and restored on
// the way back; a heartbeat is answered by Tern and never reaches the upstream.
TEST_P(RpcIntegrationTest, BoltGoldenFramesPassWithIdsRestored) {
  const std::string req = hex(
      "0101000101000000010100000bb8002c002a000000f4636f6d2e616c697061792e736f66612e7270632e636f72652e72657175"
      "6573742e536f66615265717565737400000007736572766963650000001b636f6d2e6578616d706c652e4563686f536572766963"
      "653a312e304fbc636f6d2e616c697061792e736f66612e7270632e636f72652e726571756573742e536f66615265717565737495"
      "0a6d6574686f644e616d650d6d6574686f64417267536967731774617267657453657276696365556e697175654e616d650d7461"
      "726765744170704e616d650c7265717565737450726f70736f90046563686f567400115b6a6176612e6c616e672e537472696e67"
      "6e01106a6176612e6c616e672e537472696e677a1b636f6d2e6578616d706c652e4563686f536572766963653a312e304e4d0773"
      "6572766963651b636f6d2e6578616d706c652e4563686f536572766963653a312e307a0568656c6c6f");
  const std::string heartbeat = hex("0101000001000000020100000bb80000000000000000");
  Client c(port("bolt"));
  for (uint32_t id : {7u, 0xffffffffu}) {
    std::string r = req;
    r[5] = char(id >> 24), r[6] = char(id >> 16), r[7] = char(id >> 8), r[8] = char(id);
    Frame f = c.call(r);
    EXPECT_EQ(f.id, id);
    EXPECT_EQ(f.status, 0);
    EXPECT_EQ(f.type, 0);
    EXPECT_EQ(f.cmd, 2);
  }
  Frame hb = c.call(heartbeat);
  EXPECT_EQ(hb.cmd, 0);
  EXPECT_EQ(hb.id, 2u);
  EXPECT_EQ(hb.status, 0);
  auto seen = v1_.seen();
  ASSERT_EQ(seen.size(), 2u); // the heartbeat stayed in Tern
  // The upstream got the request bytes as sent but for the id.
  std::string sent = seen[0].frame.bytes;
  std::string expect = req;
  for (int i = 5; i < 9; i++) expect[i] = sent[i];
  EXPECT_EQ(sent, expect);
  EXPECT_EQ(counter("rpc.bolt.downstream_rq_heartbeat"), 1u);
}

// Many downstream connections using the same request ids share one upstream connection
// per worker; every caller gets its own answer.
TEST_P(RpcIntegrationTest, ManyConnectionsShareUpstreamConnections) {
  constexpr int kConns = 16, kCalls = 50;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0}, bad{0};
  for (int c = 0; c < kConns; c++) {
    threads.emplace_back([&, c] {
      Client cl(port("bolt"));
      // Pipelined: every call in flight at once, ids 1..kCalls on every connection.
      std::string all;
      for (int i = 1; i <= kCalls; i++) all += boltRequest(i, kEcho, absl::StrCat("c", c, "-", i));
      cl.send(all);
      std::map<uint64_t, std::string> got;
      Frame f;
      while (got.size() < kCalls && cl.read(f)) got[f.id] = f.content;
      for (int i = 1; i <= kCalls; i++) {
        if (got[i] == absl::StrCat("v1:c", c, "-", i)) ok++;
        else bad++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kConns * kCalls);
  EXPECT_EQ(bad.load(), 0);
  // One upstream connection per shard at most (raw_epoll runs more shards than threads).
  EXPECT_LE(v1_.connections(), static_cast<int>(server_->dispatchers().size()));
  EXPECT_EQ(v1_.seenCount(), size_t(kConns * kCalls));
}

TEST_P(RpcIntegrationTest, BoltRoutesByServiceVersionMethodAndHeader) {
  Client c(port("bolt"));
  EXPECT_EQ(c.call(boltRequest(1, kEcho, "a")).content, "v1:a");
  EXPECT_EQ(c.call(boltRequest(2, {{"service", "com.example.EchoService:2.0"}}, "b")).content, "v2:b");
  // No route: NO_PROCESSOR (6).
  Frame f = c.call(boltRequest(3, {{"service", "com.example.Other:1.0"}}));
  EXPECT_EQ(f.id, 3u);
  EXPECT_EQ(f.status, 0x06);
  EXPECT_EQ(counter("rpc.bolt.rq_no_route"), 1u);
}

TEST_P(RpcIntegrationTest, WeightedClustersSplitCalls) {
  Client c(port("bolt"));
  std::map<std::string, int> by;
  for (int i = 1; i <= 60; i++) {
    Frame f = c.call(boltRequest(i, {{"service", "x:1.0"}, {"target", "split"}}, "w"));
    by[f.content]++;
  }
  EXPECT_EQ(by["v1:w"] + by["v2:w"], 60);
  EXPECT_GT(by["v1:w"], 10);
  EXPECT_GT(by["v2:w"], 10);
}

TEST_P(RpcIntegrationTest, BoltTimeoutAnswersTimeoutAndLateResponsesAreDropped) {
  Client c(port("bolt"));
  Frame f = c.call(boltRequest(9, {{"service", "x:1.0"}, {"sofa_head_method_name", "slowEcho"}}));
  EXPECT_EQ(f.id, 9u);
  EXPECT_EQ(f.status, 0x07); // TIMEOUT
  EXPECT_EQ(counter("rpc.bolt.rq_timeout"), 1u);
  // The connection still works.
  EXPECT_EQ(c.call(boltRequest(10, kEcho, "after")).content, "v1:after");
}

TEST_P(RpcIntegrationTest, UpstreamResetIsRetriedOrReported) {
  Client c(port("bolt"));
  // flaky's first connection closes on the request: retried on a new connection.
  Frame f = c.call(boltRequest(1, {{"service", "x:1.0"}, {"target", "flaky"}}, "r"));
  EXPECT_EQ(f.status, 0);
  EXPECT_EQ(f.content, "flaky:r");
  EXPECT_EQ(counter("rpc.bolt.rq_retry"), 1u);
  // A cluster nobody listens on: connect failures, retried twice, then CONNECTION_CLOSED.
  f = c.call(boltRequest(2, {{"service", "com.example.Down:1.0"}}));
  EXPECT_EQ(f.id, 2u);
  EXPECT_EQ(f.status, 0x10);
  EXPECT_EQ(counter("rpc.bolt.rq_retry"), 3u);
  EXPECT_EQ(counter("rpc.bolt.rq_upstream_reset"), 1u);
}

// The upstream drops its connections (as a restarting provider does) with requests in
// flight from several callers: every call gets an answer (success, or CONNECTION_CLOSED
// for those in flight), and calls after it succeed on a new upstream connection.
TEST_P(RpcIntegrationTest, UpstreamRestartMidTraffic) {
  constexpr int kThreads = 4, kCalls = 200;
  std::atomic<int> ok{0}, closed{0}, other{0}, lost{0};
  std::atomic<bool> killed{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      Client c(port("bolt"));
      for (int i = 1; i <= kCalls; i++) {
        if (t == 0 && i == kCalls / 2) {
          c.send(boltRequest(100000, {{"service", "x:1.0"}, {"target", "restart"}}, "die"));
          Frame f;
          if (c.read(f) && f.status == 0x10) killed = true;
        }
        Frame f;
        if (!c.send(boltRequest(i, {{"service", "x:1.0"}, {"target", "restart"}}, "r")) || !c.read(f)) {
          lost++;
          continue;
        }
        if (f.id != uint64_t(i)) other++;
        else if (f.status == 0) ok++;
        else if (f.status == 0x10) closed++;
        else other++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(killed.load());
  EXPECT_EQ(lost.load(), 0);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(ok.load() + closed.load(), kThreads * kCalls);
  EXPECT_GE(ok.load(), kThreads * kCalls - kThreads); // at most one in flight per caller
  EXPECT_GE(restart_.connections(), 2);
  Client c(port("bolt"));
  EXPECT_EQ(c.call(boltRequest(1, {{"service", "x:1.0"}, {"target", "restart"}}, "after")).content, "restart:after");
}

// Circuit breakers: with one connection (ping-pong) and one waiting request allowed, a
// third request at once is answered SERVER_THREADPOOL_BUSY (0x04); a cluster without hosts
// NO_PROCESSOR (0x06).
TEST_P(RpcIntegrationTest, OverflowAndNoHealthyUpstreamAnswers) {
  Client c(port("bolt_tight"));
  ASSERT_TRUE(c.send(boltRequest(1, kEcho, "a") + boltRequest(2, kEcho, "b") + boltRequest(3, kEcho, "c")));
  std::map<uint64_t, Frame> got;
  Frame f;
  while (got.size() < 3 && c.read(f)) got[f.id] = f;
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[1].content, "tight:a");
  EXPECT_EQ(got[2].content, "tight:b");
  EXPECT_EQ(got[3].status, 0x04);
  EXPECT_EQ(counter("rpc.bolt_tight.rq_overflow"), 1u);
  EXPECT_EQ(counter("cluster.tight.upstream_rq_pending_overflow"), 1u);
  Client e(port("bolt"));
  f = e.call(boltRequest(4, {{"service", "x:1.0"}, {"target", "empty"}}));
  EXPECT_EQ(f.id, 4u);
  EXPECT_EQ(f.status, 0x06);
  EXPECT_EQ(counter("rpc.bolt.rq_no_healthy_upstream"), 1u);
}

TEST_P(RpcIntegrationTest, DuplicateIdInFlightIsACodecError) {
  Client c(port("bolt"));
  ASSERT_TRUE(c.send(boltRequest(5, {{"service", "x:1.0"}, {"sofa_head_method_name", "slowOne"}})));
  Frame f = c.call(boltRequest(5, kEcho));
  EXPECT_EQ(f.id, 5u);
  EXPECT_EQ(f.status, 0x09); // CODEC_EXCEPTION
  EXPECT_EQ(counter("rpc.bolt.downstream_rq_duplicate_id"), 1u);
  ASSERT_TRUE(c.read(f)); // the first one times out as usual
  EXPECT_EQ(f.status, 0x07);
}

TEST_P(RpcIntegrationTest, BadBytesCloseOnlyThatConnection) {
  Client good(port("bolt"));
  EXPECT_EQ(good.call(boltRequest(1, kEcho, "before")).content, "v1:before");
  {
    Client bad(port("bolt"));
    ASSERT_TRUE(bad.send("GET / HTTP/1.1\r\n\r\n"));
    EXPECT_TRUE(bad.closedByPeer());
  }
  {
    // Over max_frame_bytes: refused when its header arrives.
    Client big(port("bolt_small"));
    ASSERT_TRUE(big.send(boltRequest(1, kEcho, std::string(4096, 'x')).substr(0, 22)));
    EXPECT_TRUE(big.closedByPeer());
  }
  {
    // A truncated frame then FIN: closed, nothing forwarded.
    Client trunc(port("bolt"));
    std::string r = boltRequest(1, kEcho, "t");
    ASSERT_TRUE(trunc.send(r.substr(0, r.size() - 3)));
    ::shutdown(trunc.fd(), SHUT_WR);
    EXPECT_TRUE(trunc.closedByPeer());
  }
  EXPECT_GE(counter("rpc.bolt.downstream_cx_protocol_error"), 1u);
  EXPECT_GE(counter("rpc.bolt_small.downstream_cx_protocol_error"), 1u);
  EXPECT_EQ(good.call(boltRequest(2, kEcho, "after")).content, "v1:after");
  EXPECT_EQ(v1_.seenCount(), 2u);
}

TEST_P(RpcIntegrationTest, BoltOnewayIsForwardedAndNotAnswered) {
  Client c(port("bolt"));
  ASSERT_TRUE(c.send(boltRequest(1, kEcho, "one-way", /*type=*/2)));
  EXPECT_EQ(c.call(boltRequest(2, kEcho, "two-way")).content, "v1:two-way");
  ASSERT_TRUE(test::waitFor([&] { return v1_.seenCount() == 2; }));
  EXPECT_EQ(v1_.seen()[0].frame.content, "one-way");
  EXPECT_EQ(counter("rpc.bolt.downstream_rq_oneway"), 1u);
}

TEST_P(RpcIntegrationTest, StreamFilterRefusesRequestsOnRpcStreams) {
  int before = g_filter_responses.load();
  Client c(port("bolt"));
  Frame f = c.call(boltRequest(1, {{"service", "com.example.EchoService:1.0"}, {"x-deny", "1"}}));
  EXPECT_EQ(f.status, 0x02); // SERVER_EXCEPTION, as MOSN answers denied requests
  EXPECT_EQ(counter("rpc.bolt.downstream_rq_rejected"), 1u);
  EXPECT_EQ(c.call(boltRequest(2, kEcho, "ok")).content, "v1:ok");
  EXPECT_EQ(g_filter_responses.load(), before + 1); // the encoder side saw the response
  EXPECT_EQ(v1_.seenCount(), 1u);
}

TEST_P(RpcIntegrationTest, DubboRoutesByGroupAndAnswersHeartbeats) {
  Client c(port("dubbo"));
  Frame f = c.call(dubboRequest(11, "com.example.EchoService", "1.0.0", "echo", {{"path", "com.example.EchoService"}}));
  EXPECT_EQ(f.id, 11u);
  EXPECT_EQ(f.status, 20);
  EXPECT_NE(f.content.find("v1"), std::string::npos);
  f = c.call(dubboRequest(12, "com.example.EchoService", "1.0.0", "echo", {{"group", "canary"}}));
  EXPECT_EQ(f.status, 20);
  EXPECT_NE(f.content.find("canary"), std::string::npos);
  // No route (other method, no group): SERVICE_NOT_FOUND with a message.
  f = c.call(dubboRequest(13, "com.example.EchoService", "1.0.0", "other", {}));
  EXPECT_EQ(f.id, 13u);
  EXPECT_EQ(f.status, 60);
  // Heartbeat: answered by Tern with the id (Java providers' way), status OK.
  f = c.call(hex("dabbe2000000000000000009000000014e"));
  EXPECT_EQ(f.id, 9u);
  EXPECT_EQ(f.flag & 0x20, 0x20);
  EXPECT_EQ(f.status, 20);
  // Another serialization (fastjson, 6): a BAD_REQUEST answer, the connection lives on.
  std::string other = dubboRequest(14, "com.example.EchoService", "1.0.0", "echo", {}, "x", 0xc6);
  f = c.call(other);
  EXPECT_EQ(f.id, 14u);
  EXPECT_EQ(f.status, 40);
  EXPECT_EQ(c.call(dubboRequest(15, "com.example.EchoService", "1.0.0", "echo", {})).status, 20);
  EXPECT_EQ(v1_.seenCount() + canary_.seenCount(), 3u);
}

TEST_P(RpcIntegrationTest, PingPongPoolSendsOneRequestPerConnectionAtATime) {
  constexpr int kCalls = 6;
  Client c(port("bolt_pingpong"));
  std::string all;
  for (int i = 1; i <= kCalls; i++) all += boltRequest(i, kEcho, absl::StrCat("p", i));
  ASSERT_TRUE(c.send(all));
  std::map<uint64_t, std::string> got;
  Frame f;
  while (got.size() < kCalls && c.read(f)) got[f.id] = f.content;
  for (int i = 1; i <= kCalls; i++) EXPECT_EQ(got[i], absl::StrCat("slow:p", i));
  // All six were in flight at once, one per connection: six connections.
  EXPECT_EQ(slow_.connections(), kCalls);
  // Connections are reused for later calls.
  EXPECT_EQ(c.call(boltRequest(7, kEcho, "again")).content, "slow:again");
  EXPECT_EQ(slow_.connections(), kCalls);
}

TEST_P(RpcIntegrationTest, BoundPoolGivesEachDownstreamItsOwnUpstream) {
  {
    Client a(port("bolt_bound"));
    Client b(port("bolt_bound"));
    EXPECT_EQ(a.call(boltRequest(1, kEcho, "a")).content, "bound:a");
    EXPECT_EQ(b.call(boltRequest(1, kEcho, "b")).content, "bound:b");
    EXPECT_EQ(a.call(boltRequest(2, kEcho, "a2")).content, "bound:a2");
    EXPECT_EQ(bound_.connections(), 2);
    auto seen = bound_.seen();
    ASSERT_EQ(seen.size(), 3u);
    EXPECT_EQ(seen[0].connection, seen[2].connection);
    EXPECT_NE(seen[0].connection, seen[1].connection);
  }
  // Closed with their downstream connections.
  EXPECT_TRUE(test::waitFor([&] { return server_->stats().gaugeValue("cluster.bound.upstream_cx_active") == 0; }));
}

// Graceful drain: a Dubbo consumer gets the read-only event (Dubbo's GOAWAY), a request
// in flight still gets its answer, and connections close once idle.
TEST_P(RpcIntegrationTest, DrainSendsDubboReadOnlyAndFinishesRequestsInFlight) {
  Client d(port("dubbo"));
  EXPECT_EQ(d.call(dubboRequest(1, "com.example.EchoService", "1.0.0", "echo", {})).status, 20);
  Client b(port("bolt_pingpong"));
  ASSERT_TRUE(b.send(boltRequest(1, kEcho, "in-flight"))); // answered after 50 ms
  ASSERT_TRUE(test::waitFor([&] { return slow_.seenCount() == 1; }));
  std::thread drainer([&] { server_->drain(std::chrono::milliseconds(5000)); });
  Frame f;
  ASSERT_TRUE(d.read(f));
  EXPECT_EQ(f.flag, 0xa2); // request | event | hessian2, one-way
  EXPECT_EQ(f.content, std::string("\x01R", 2));
  EXPECT_TRUE(d.closedByPeer());
  ASSERT_TRUE(b.read(f));
  EXPECT_EQ(f.content, "slow:in-flight");
  EXPECT_TRUE(b.closedByPeer());
  drainer.join();
  EXPECT_EQ(counter("rpc.dubbo.downstream_rq_drain_goaway"), 1u);
}

// Stopping the server with requests in flight on every pool shape tears everything down
// without touching freed state (the sanitizer build checks) and closes the clients.
TEST_P(RpcIntegrationTest, StopWithRequestsInFlight) {
  Client a(port("bolt"));
  Client b(port("bolt_pingpong"));
  Client c(port("bolt_bound"));
  ASSERT_TRUE(a.send(boltRequest(1, {{"service", "x:1.0"}, {"sofa_head_method_name", "slowStop"}})));
  ASSERT_TRUE(b.send(boltRequest(1, kEcho, "b")));
  ASSERT_TRUE(c.send(boltRequest(1, kEcho, "c")));
  ASSERT_TRUE(test::waitFor([&] { return deaf_.seenCount() == 1 && slow_.seenCount() == 1; }));
  server_->stop();
  EXPECT_TRUE(a.closedByPeer());
  EXPECT_TRUE(b.closedByPeer());
}

// One listener tells Bolt, Dubbo, HTTP/1.1 and HTTP/2 apart by their first bytes.
TEST_P(RpcIntegrationTest, AutoDetectsBoltDubboHttp1AndHttp2) {
  Client b(port("auto"));
  EXPECT_EQ(b.call(boltRequest(1, kEcho, "auto")).content, "v1:auto");
  Client d(port("auto"));
  EXPECT_EQ(d.call(dubboRequest(2, "com.example.EchoService", "1.0.0", "echo", {})).status, 20);
  for (const char* flag : {"--http1.1", "--http2-prior-knowledge"}) {
    std::string cmd = absl::StrCat("curl -sS --noproxy '*' --max-time 10 ", flag, " -w ' %{http_version}' http://127.0.0.1:",
                                    port("auto"), "/ 2>&1");
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    char out[256] = {0};
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    pclose(p);
    std::string s(out, n);
    EXPECT_EQ(s, std::string("http here\n ") + (flag[2] == 'h' && flag[6] == '2' ? "2" : "1.1")) << flag;
  }
  EXPECT_EQ(counter("rpc.auto.downstream_cx_http"), 2u);
  EXPECT_EQ(counter("http.auto_http.downstream_rq_2xx"), 2u);
}

} // namespace
} // namespace tern
