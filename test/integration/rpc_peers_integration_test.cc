// Real SOFARPC and Dubbo peers through the RPC proxy: sofa-rpc-node servers with
// sofa-bolt-node clients, apache-dubbo-service providers with dubbo2.js consumers (node
// scripts in test/integration/rpc/, packages from .deps/npm, which tools/setup --test
// fills). Many connections and calls in flight sharing upstream connections, routing by
// service / version / group, one-way calls, heartbeats, an upstream restart mid-traffic,
// auto-detection, both IO models.

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "source/common/config/bootstrap_loader.h"
#include "source/server/server.h"
#include "test/integration/tern_server.h"
#include "test/integration/http_test_helpers.h"
#include "test/test_common/test_upstream.h"

namespace tern {
namespace {

using test::ChildProcess;
using test::shellQuote;

std::string sourceFile(const std::string& rel) {
  const char* srcdir = getenv("TEST_SRCDIR");
  const char* ws = getenv("TEST_WORKSPACE");
  std::string p = absl::StrCat(srcdir ? srcdir : ".", "/", ws ? ws : "tern", "/", rel);
  char buf[PATH_MAX];
  return realpath(p.c_str(), buf) ? std::string(buf) : "";
}

// A client run's JSON summary.
struct Result {
  int exit_code{-1};
  std::string out;
  google::protobuf::Struct json;
  bool parsed{false};
  double num(const std::string& k) const {
    auto it = json.fields().find(k);
    return it == json.fields().end() ? -1 : it->second.number_value();
  }
  double answers(const std::string& name) const {
    auto it = json.fields().find("answers");
    if (it == json.fields().end()) return 0;
    auto a = it->second.struct_value().fields().find(name);
    return a == it->second.struct_value().fields().end() ? 0 : a->second.number_value();
  }
  std::string errors() const {
    auto it = json.fields().find("error_samples");
    if (it == json.fields().end()) return "";
    std::string s;
    for (const auto& v : it->second.list_value().values()) absl::StrAppend(&s, v.string_value(), " | ");
    return s;
  }
};

class RpcPeersTest : public testing::TestWithParam<const char*> {
public:
  static void SetUpTestSuite() {
    signal(SIGPIPE, SIG_IGN);
    bolt_peer_ = new std::string(sourceFile("test/integration/rpc/bolt_peer.js"));
    dubbo_peer_ = new std::string(sourceFile("test/integration/rpc/dubbo_peer.js"));
    const char* npm = getenv("TERN_NPM_NODE_MODULES");
    std::string root(absl::StripSuffix(*bolt_peer_, "/test/integration/rpc/bolt_peer.js"));
    node_path_ = new std::string(npm ? npm : root + "/.deps/npm/node_modules");
  }

  // Node peers and clusters exist for the whole test; Tern is started per test.
  void SetUp() override {
    std::vector<std::string> missing;
    if (!test::haveCommand("node")) missing.push_back("node");
    if (bolt_peer_->empty() || dubbo_peer_->empty()) missing.push_back("the peer scripts in the runfiles");
    for (const char* pkg : {"sofa-rpc-node", "sofa-bolt-node", "dubbo2.js", "apache-dubbo-service"}) {
      if (access(absl::StrCat(*node_path_, "/", pkg, "/package.json").c_str(), R_OK) != 0) {
        missing.push_back(absl::StrCat("npm package ", pkg, " (run tools/setup --test)"));
      }
    }
    // Missing peers are a broken setup, not a reason to skip.
    ASSERT_TRUE(missing.empty()) << "missing: " << absl::StrJoin(missing, ", ");

    bolt_v1_.args = {"--name", "v1"};
    bolt_v2_.args = {"--name", "v2", "--version", "2.0"};
    bolt_other_.args = {"--name", "other", "--services", "com.tern.test.OtherService,com.tern.test.EchoService"};
    dubbo_v1_.args = {"--name", "d1"};
    dubbo_v2_.args = {"--name", "d2", "--version", "2.0.0"};
    dubbo_canary_.args = {"--name", "canary", "--group", "canary"};
    for (auto* s : {&bolt_v1_, &bolt_v2_, &bolt_other_}) ASSERT_TRUE(startPeer(*bolt_peer_, *s));
    for (auto* s : {&dubbo_v1_, &dubbo_v2_, &dubbo_canary_}) ASSERT_TRUE(startPeer(*dubbo_peer_, *s));
    startTern();
  }
  void TearDown() override {
    if (server_) server_->stop();
  }

  struct Peer {
    uint16_t port{0}; // 0 until started: the peer binds port 0 and reports the one it got
    std::vector<std::string> args;
    std::unique_ptr<ChildProcess> proc;
  };
  bool startPeer(const std::string& script, Peer& p) {
    std::vector<std::string> argv = {"node", script, "server", "--port", absl::StrCat(p.port)};
    argv.insert(argv.end(), p.args.begin(), p.args.end());
    p.proc = std::make_unique<ChildProcess>(argv, std::vector<std::string>{"NODE_PATH=" + *node_path_});
    std::string line;
    int port = 0;
    if (!p.proc->error().empty() || !p.proc->readLine(line, 20000) || !absl::StartsWith(line, "ready ") ||
        !absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(6)), &port) || port <= 0 || port > 65535) {
      ADD_FAILURE() << "peer " << script << " did not start: " << line << "\n" << p.proc->stderrText();
      return false;
    }
    // Chosen by the kernel at bind: a port picked beforehand and freed could be taken by
    // another socket before the peer binds it (seen once under ASan: "can not find
    // available port"). A restart asks for the same port again.
    p.port = static_cast<uint16_t>(port);
    return true;
  }

  static std::string cluster(const std::string& name, uint16_t port) {
    return absl::StrCat("  - name: ", name, "\n    connect_timeout: 1s\n    load_assignment:\n      cluster_name: ", name,
                        "\n      endpoints:\n      - lb_endpoints:\n        - endpoint: {address: {socket_address: "
                        "{address: 127.0.0.1, port_value: ",
                        port, "}}}\n");
  }
  static std::string listener(const std::string& name, const std::string& body) {
    return absl::StrCat("\n  - name: ", name, R"(
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: tern.filters.network.rpc_proxy
        typed_config:
          "@type": type.googleapis.com/tern.filters.network.rpc_proxy.v1.RpcProxy
)", body);
  }

  void startTern() {
    std::string yaml = absl::StrCat("static_resources:\n  listeners:",
                                    listener("bolt", R"(          stat_prefix: bolt
          downstream_protocol: BOLT
          route_config:
            routes:
            - match: {service: {exact: com.tern.test.EchoService}, version: {exact: "2.0"}}
              route: {cluster: bolt_v2}
            - match: {service: {exact: com.tern.test.EchoService}, method: {exact: sleep}}
              route: {cluster: bolt_other}
            - match: {service: {exact: com.tern.test.EchoService}}
              route: {cluster: bolt_v1, retry_policy: {retry_on: "connect-failure", num_retries: 3}}
            - match: {service: {prefix: com.tern.test.Other}}
              route: {cluster: bolt_other}
)"),
                                    listener("dubbo", R"(          stat_prefix: dubbo
          downstream_protocol: DUBBO
          route_config:
            routes:
            - match: {group: {exact: canary}}
              route: {cluster: dubbo_canary}
            - match: {service: {exact: com.tern.test.EchoService}, version: {exact: "2.0.0"}}
              route: {cluster: dubbo_v2}
            - match: {service: {exact: com.tern.test.EchoService}}
              route: {cluster: dubbo_v1}
)"),
                                    listener("auto", R"(          stat_prefix: auto
          route_config:
            routes:
            - match: {headers: [{name: dubbo, present_match: true}]}
              route: {cluster: dubbo_v1}
            - match: {}
              route: {cluster: bolt_v1}
)"),
                                    "  clusters:\n", cluster("bolt_v1", bolt_v1_.port), cluster("bolt_v2", bolt_v2_.port),
                                    cluster("bolt_other", bolt_other_.port), cluster("dubbo_v1", dubbo_v1_.port),
                                    cluster("dubbo_v2", dubbo_v2_.port), cluster("dubbo_canary", dubbo_canary_.port), test::ioModelSettings(GetParam()));
    auto s = test::startTern(yaml);
    ASSERT_TRUE(s.ok()) << s.status().message();
    server_ = std::move(*s);
  }

  uint16_t port(const std::string& name) { return server_->listenerAddress(name)->port(); }
  uint64_t counter(const std::string& name) { return server_->stats().counterValue(name); }
  size_t shards() { return server_->dispatchers().size(); }

  Result client(const std::string& script, const std::string& listener, const std::vector<std::string>& args,
                int timeout_s = 90) {
    std::string cmd = absl::StrCat("NODE_PATH=", shellQuote(*node_path_), " timeout ", timeout_s, " node ",
                                   shellQuote(script), " client --port ", port(listener));
    for (const auto& a : args) absl::StrAppend(&cmd, " ", shellQuote(a));
    absl::StrAppend(&cmd, " 2>/dev/null");
    test::CommandResult run = test::runCommand(cmd);
    Result r;
    r.exit_code = run.exit_code;
    r.out = run.out;
    std::vector<absl::string_view> lines = absl::StrSplit(run.out, '\n', absl::SkipEmpty());
    if (!lines.empty()) {
      r.parsed = google::protobuf::util::JsonStringToMessage(std::string(lines.back()), &r.json).ok();
    }
    return r;
  }
  Result bolt(const std::vector<std::string>& args, const std::string& listener = "bolt") {
    return client(*bolt_peer_, listener, args);
  }
  Result dubbo(const std::vector<std::string>& args, const std::string& listener = "dubbo") {
    return client(*dubbo_peer_, listener, args);
  }

  Peer bolt_v1_, bolt_v2_, bolt_other_, dubbo_v1_, dubbo_v2_, dubbo_canary_;
  std::unique_ptr<server::Server> server_;
  static std::string* bolt_peer_;
  static std::string* dubbo_peer_;
  static std::string* node_path_;
};

std::string* RpcPeersTest::bolt_peer_ = nullptr;
std::string* RpcPeersTest::dubbo_peer_ = nullptr;
std::string* RpcPeersTest::node_path_ = nullptr;

INSTANTIATE_TEST_SUITE_P(IoModels, RpcPeersTest, testing::Values("WORKER_LOOPS", "RAW_EPOLL"));

#define EXPECT_ALL_OK(r, n)                                                                   \
  do {                                                                                        \
    ASSERT_TRUE((r).parsed) << (r).out;                                                       \
    EXPECT_EQ((r).num("ok"), (n)) << (r).out;                                                 \
    EXPECT_EQ((r).num("errors"), 0) << (r).errors();                                          \
  } while (0)

// 32 connections, each starting its ids at 1, 16 calls in flight on each: every answer
// matches its call, and the upstream sees at most one connection per shard.
TEST_P(RpcPeersTest, BoltManyConnectionsShareUpstreamConnections) {
  Result r = bolt({"--connections", "32", "--concurrency", "16", "--requests", "6000", "--ids", "per-connection"});
  EXPECT_ALL_OK(r, 6000);
  EXPECT_EQ(r.answers("v1"), 6000);
  EXPECT_LE(counter("cluster.bolt_v1.upstream_cx_total"), shards());
  EXPECT_EQ(counter("rpc.bolt.rq_response_success"), 6000u);
}

TEST_P(RpcPeersTest, BoltV2WithCrcAndRoutingByServiceAndVersion) {
  Result r = bolt({"--bolt-version", "2", "--crc", "--connections", "4", "--concurrency", "8", "--requests", "400"});
  EXPECT_ALL_OK(r, 400);
  r = bolt({"--version", "2.0", "--requests", "50"});
  EXPECT_ALL_OK(r, 50);
  EXPECT_EQ(r.answers("v2"), 50);
  r = bolt({"--service", "com.tern.test.OtherService", "--requests", "50"});
  EXPECT_ALL_OK(r, 50);
  EXPECT_EQ(r.answers("other"), 50);
  // By method: sofa-rpc-node sends it only inside its SofaRequest.
  r = bolt({"--method", "sleep", "--arg", "1", "--requests", "20"});
  EXPECT_ALL_OK(r, 20);
  EXPECT_EQ(r.answers("other"), 20);
  // No route: Tern answers NO_PROCESSOR (6) itself.
  r = bolt({"--service", "com.tern.test.Nobody", "--requests", "5"});
  ASSERT_TRUE(r.parsed) << r.out;
  EXPECT_EQ(r.num("errors"), 5);
  EXPECT_NE(r.errors().find("status=6"), std::string::npos) << r.errors();
  EXPECT_EQ(counter("rpc.bolt.rq_no_route"), 5u);
}

TEST_P(RpcPeersTest, BoltOnewayAndHeartbeats) {
  Result r = bolt({"--oneway", "--requests", "300", "--connections", "3"});
  ASSERT_TRUE(r.parsed) << r.out;
  EXPECT_EQ(r.num("ok"), 300);
  EXPECT_TRUE(test::waitFor([&] { return counter("cluster.bolt_v1.upstream_rq_total") == 300; }));
  EXPECT_EQ(counter("rpc.bolt.downstream_rq_oneway"), 300u);
  r = bolt({"--requests", "10", "--heartbeat-ms", "100", "--linger-ms", "700"});
  EXPECT_ALL_OK(r, 10);
  EXPECT_GE(r.num("heartbeats_sent"), 3);
  EXPECT_EQ(r.num("heartbeat_acks"), r.num("heartbeats_sent"));
  EXPECT_EQ(counter("rpc.bolt.downstream_rq_heartbeat"), uint64_t(r.num("heartbeats_sent")));
}

// The provider restarts on its port while calls are in flight: calls in flight may fail
// (CONNECTION_CLOSED, or connect-failure retries running out), none is lost or mixed
// up, and calls after it succeed.
TEST_P(RpcPeersTest, BoltUpstreamRestartMidTraffic) {
  Result during;
  std::thread load([&] {
    during = bolt({"--connections", "8", "--concurrency", "8", "--requests", "30000", "--timeout", "10000"});
  });
  ASSERT_TRUE(test::waitFor([&] { return counter("rpc.bolt.rq_response_success") >= 2000; }, 60000));
  bolt_v1_.proc.reset(); // SIGTERM
  ASSERT_TRUE(startPeer(*bolt_peer_, bolt_v1_));
  load.join();
  ASSERT_TRUE(during.parsed) << during.out;
  EXPECT_EQ(during.num("ok") + during.num("errors"), 30000);
  EXPECT_GT(during.num("ok"), 2000);
  EXPECT_EQ(during.num("unexpected_responses"), 0);
  const std::string errs = during.errors();
  EXPECT_TRUE(errs.empty() || absl::StrContains(errs, "status=16")) << errs; // 0x10 CONNECTION_CLOSED
  Result after = bolt({"--requests", "200", "--connections", "2"});
  EXPECT_ALL_OK(after, 200);
}

TEST_P(RpcPeersTest, DubboManyConnectionsRoutingAndHeartbeats) {
  Result r = dubbo({"--connections", "16", "--concurrency", "8", "--requests", "4000"});
  EXPECT_ALL_OK(r, 4000);
  EXPECT_EQ(r.answers("d1"), 4000);
  EXPECT_LE(counter("cluster.dubbo_v1.upstream_cx_total"), shards());
  r = dubbo({"--group", "canary", "--requests", "40"});
  EXPECT_ALL_OK(r, 40);
  EXPECT_EQ(r.answers("canary"), 40);
  r = dubbo({"--version", "2.0.0", "--requests", "40"});
  EXPECT_ALL_OK(r, 40);
  EXPECT_EQ(r.answers("d2"), 40);
  r = dubbo({"--service", "com.tern.test.Nobody", "--requests", "3"});
  ASSERT_TRUE(r.parsed) << r.out;
  EXPECT_EQ(r.num("errors"), 3);
  EXPECT_NE(r.errors().find("status=60"), std::string::npos) << r.errors();
  r = dubbo({"--requests", "5", "--heartbeat-ms", "100", "--linger-ms", "700"});
  EXPECT_ALL_OK(r, 5);
  EXPECT_GE(r.num("heartbeats_sent"), 3);
  EXPECT_EQ(r.num("heartbeat_acks"), r.num("heartbeats_sent"));
  EXPECT_GE(counter("rpc.dubbo.downstream_rq_heartbeat"), uint64_t(r.num("heartbeats_sent")));
}

TEST_P(RpcPeersTest, AutoListenerServesBoltAndDubboClients) {
  Result b = bolt({"--connections", "4", "--concurrency", "4", "--requests", "400"}, "auto");
  EXPECT_ALL_OK(b, 400);
  EXPECT_EQ(b.answers("v1"), 400);
  Result d = dubbo({"--connections", "4", "--concurrency", "4", "--requests", "400"}, "auto");
  EXPECT_ALL_OK(d, 400);
  EXPECT_EQ(d.answers("d1"), 400);
}

} // namespace
} // namespace tern
