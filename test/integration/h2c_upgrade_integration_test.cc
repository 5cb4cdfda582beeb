// HTTP/1.1 -> HTTP/2 cleartext upgrade (RFC 7540 3.2, "Upgrade: h2c") through the real
// server, in-process on loopback, with real clients: curl --http2 (which asks for h2c on
// http:// URLs), nghttp -u, and raw sockets for what those never send (broken
// HTTP2-Settings, pipelining). Upstream: a small threaded HTTP/1.1 server that shows what it
// received. Run for both IO models.
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "source/common/config/bootstrap_loader.h"
#include "source/server/server.h"
#include "test/integration/tern_server.h"
#include "test/integration/http_test_helpers.h"
#include "test/test_common/test_upstream.h"

namespace tern {
namespace {

using test::CurlResult;
using test::HttpResponse;
using test::HttpUpstream;
using test::RawClient;
using test::Reply;
using test::Request;

constexpr size_t kBigSize = 1024 * 1024;

std::string patternBytes(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed;
  for (size_t i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    s[i] = static_cast<char>(x >> 24);
  }
  return s;
}

// Runs `cmd` with /bin/sh; stdout, and the exit status in `exit_code`.
std::string shell(const std::string& cmd, int* exit_code) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) {
    *exit_code = -1;
    return out;
  }
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int status = pclose(p);
  *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

// The request line and fields of an h2c upgrade, without the final blank line.
std::string h2cHead(const std::string& method, const std::string& path,
                    const std::string& http2_settings) {
  return absl::StrCat(method, " ", path,
                      " HTTP/1.1\r\nHost: h2c.test\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                      "Upgrade: h2c\r\nHTTP2-Settings: ",
                      http2_settings, "\r\n");
}

const char* kDirectBody = "direct answer";

class H2cUpgradeIntegrationTest : public testing::TestWithParam<const char*> {
public:
  static void SetUpTestSuite() {
    signal(SIGPIPE, SIG_IGN); // as tern's main() does
    big_ = new std::string(patternBytes(kBigSize, 5));
  }
  static void TearDownTestSuite() {
    delete big_;
    big_ = nullptr;
  }

protected:
  H2cUpgradeIntegrationTest()
      : upstream_([](const Request& req, int) {
          if (req.target == "/big") return Reply{test::httpResponse(200, *big_)};
          // What arrived, for the test to check.
          std::string echo = absl::StrCat(req.method, " ", req.target, " body=", req.body);
          return Reply{test::httpResponse(200, echo)};
        }) {}

  void TearDown() override {
    if (server_) server_->stop();
    server_.reset();
  }

  // One listener "h2c": /direct answers itself, everything else goes to the upstream (or to
  // `upstream_port`).
  void start(const std::string& codec_type = "AUTO", uint16_t upstream_port = 0) {
    std::string yaml = absl::StrCat(R"(static_resources:
  listeners:
  - name: h2c
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: h2c
          codec_type: )",
                                    codec_type, R"(
          route_config:
            name: routes
            virtual_hosts:
            - name: any
              domains: ["*"]
              routes:
              - match: {path: /direct}
                direct_response: {status: 200, body: {inline_string: ")",
                                    kDirectBody, R"("}}
              - match: {prefix: /}
                route: {cluster: up}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: up
    connect_timeout: 2s
    load_assignment:
      cluster_name: up
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: )",
                                    upstream_port ? upstream_port : upstream_.port(), "}}}\n",
                                    test::ioModelSettings(GetParam()));
    auto s = test::startTern(yaml);
    ASSERT_TRUE(s.ok()) << s.status().message();
    server_ = std::move(*s);
  }

  uint16_t port() {
    auto a = server_->listenerAddress("h2c");
    EXPECT_TRUE(a.ok());
    return a.ok() ? a->port() : 0;
  }
  std::string url(const std::string& path) {
    return absl::StrCat("http://127.0.0.1:", port(), path);
  }
  uint64_t counter(const std::string& name) { return server_->stats().counterValue(name); }

  // The upstream's requests carried none of the upgrade's fields.
  void expectNoUpgradeFieldsUpstream() {
    for (const Request& r : upstream_.received()) {
      EXPECT_FALSE(r.has("upgrade")) << r.target;
      EXPECT_FALSE(r.has("http2-settings")) << r.target;
      EXPECT_FALSE(absl::StrContains(absl::AsciiStrToLower(r.header("connection")), "upgrade"))
          << r.target;
    }
  }

  static std::string* big_;
  HttpUpstream upstream_;
  std::unique_ptr<server::Server> server_;
};

std::string* H2cUpgradeIntegrationTest::big_ = nullptr;

INSTANTIATE_TEST_SUITE_P(IoModels, H2cUpgradeIntegrationTest,
                         testing::Values("WORKER_LOOPS", "RAW_EPOLL"),
                         [](const testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param);
                         });

TEST_P(H2cUpgradeIntegrationTest, CurlUpgradesAndGetsADirectResponseOverHttp2) {
  start();
  CurlResult r = test::curl(url("/direct"), {"--http2", "-v"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_TRUE(absl::StrContains(r.stderr_text, "> Upgrade: h2c")) << r.stderr_text;
  EXPECT_TRUE(absl::StartsWith(r.raw_headers, "HTTP/1.1 101 Switching Protocols\r\n"))
      << r.raw_headers;
  EXPECT_TRUE(absl::StrContains(absl::AsciiStrToLower(r.raw_headers), "upgrade: h2c"));
  EXPECT_TRUE(absl::StrContains(r.stderr_text, "< HTTP/2 200")) << r.stderr_text;
  EXPECT_EQ(r.version, "HTTP/2");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, kDirectBody);
  EXPECT_TRUE(test::waitFor([&] { return counter("http.h2c.downstream_rq_2xx") == 1; }));
}

TEST_P(H2cUpgradeIntegrationTest, CurlUpgradesAndGetsAnUpstreamResponseOverHttp2) {
  start();
  // 1 MiB: well past the stream's initial window, so flow control runs on stream 1.
  CurlResult r = test::curl(url("/big"), {"--http2", "-v"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_TRUE(absl::StrContains(r.stderr_text, "< HTTP/2 200")) << r.stderr_text;
  EXPECT_EQ(r.version, "HTTP/2");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body.size(), kBigSize);
  EXPECT_TRUE(r.body == *big_);
  ASSERT_EQ(upstream_.received().size(), 1u);
  EXPECT_EQ(upstream_.received()[0].method, "GET");
  EXPECT_EQ(upstream_.received()[0].target, "/big");
  expectNoUpgradeFieldsUpstream();
}

TEST_P(H2cUpgradeIntegrationTest, CurlPostWithABodyStaysHttp11) {
  start();
  CurlResult r = test::curl(url("/echo"), {"--http2", "-v", "--data-binary", "hello body"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  // curl asked, and the request had a body: no switch.
  EXPECT_TRUE(absl::StrContains(r.stderr_text, "> Upgrade: h2c")) << r.stderr_text;
  EXPECT_FALSE(absl::StrContains(r.raw_headers, " 101 ")) << r.raw_headers;
  EXPECT_EQ(r.version, "HTTP/1.1");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "POST /echo body=hello body");
  expectNoUpgradeFieldsUpstream();
}

TEST_P(H2cUpgradeIntegrationTest, BrokenHttp2SettingsIsServedAsHttp11) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.connected());
  // Not base64url; then 3 bytes, not whole 6-byte settings. Same connection: kept alive.
  for (const char* bad : {"!!!not-base64", "AAAA"}) {
    SCOPED_TRACE(bad);
    ASSERT_TRUE(c.send(h2cHead("GET", "/direct", bad) + "\r\n"));
    HttpResponse r = c.response(false, /*skip_1xx=*/false);
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.version, "HTTP/1.1");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, kDirectBody);
  }
  ASSERT_TRUE(c.send(h2cHead("GET", "/echo", "AAAA") + "\r\n"));
  HttpResponse r = c.response(false, false);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "GET /echo body=");
  expectNoUpgradeFieldsUpstream();
}

TEST_P(H2cUpgradeIntegrationTest, NghttpUpgradeThenMoreStreams) {
  start();
  // The first URI goes as the upgrade request (stream 1), the others as streams of their own.
  int rc = -1;
  std::string out = shell(absl::StrCat("timeout 60 nghttp -u -v ", url("/direct"), " ",
                                       url("/echo"), " ", url("/big"), " 2>&1"),
                          &rc);
  EXPECT_EQ(rc, 0) << out.substr(0, 20000);
  EXPECT_TRUE(absl::StrContains(out, "HTTP Upgrade request")) << out.substr(0, 20000);
  EXPECT_TRUE(absl::StrContains(out, "HTTP/1.1 101 Switching Protocols")) << out.substr(0, 20000);
  EXPECT_TRUE(absl::StrContains(out, "HTTP Upgrade success")) << out.substr(0, 20000);
  EXPECT_TRUE(absl::StrContains(out, "recv (stream_id=1) :status: 200")) << out.substr(0, 20000);
  size_t ok = 0;
  for (size_t at = 0; (at = out.find(") :status: 200", at)) != std::string::npos; at++) ok++;
  EXPECT_EQ(ok, 3u) << out.substr(0, 20000);
  EXPECT_TRUE(absl::StrContains(out, kDirectBody)) << out.substr(0, 20000);
  EXPECT_TRUE(absl::StrContains(out, "GET /echo body=")) << out.substr(0, 20000);
  EXPECT_FALSE(absl::StrContains(out, "recv GOAWAY")) << out.substr(0, 20000);
  EXPECT_FALSE(absl::StrContains(out, "recv RST_STREAM")) << out.substr(0, 20000);
  // The upgrade request's response, 1 MiB on stream 1, intact (nghttp prints bodies).
  int rc2 = -1;
  std::string big = shell(absl::StrCat("timeout 60 nghttp -u ", url("/big"), " 2>/dev/null"), &rc2);
  EXPECT_EQ(rc2, 0);
  EXPECT_TRUE(big == *big_) << big.size();
  EXPECT_EQ(upstream_.received().size(), 3u);
  expectNoUpgradeFieldsUpstream();
}

TEST_P(H2cUpgradeIntegrationTest, PrefaceInTheSameWriteAsTheRequest) {
  start();
  // Allowed by RFC 7540 3.5 only after the 101, but bytes may arrive together: whatever
  // follows the head goes to the HTTP/2 codec.
  std::string settings_frame("\0\0\0\x04\0\0\0\0\0", 9);
  RawClient c(port());
  ASSERT_TRUE(c.send(h2cHead("GET", "/direct", "AAMAAABk") + "\r\n" +
                     std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24) + settings_frame));
  HttpResponse r = c.response(false, /*skip_1xx=*/false);
  EXPECT_EQ(r.status, 101);
  EXPECT_EQ(absl::AsciiStrToLower(r.header("upgrade")), "h2c");
  // Then HTTP/2: our SETTINGS first, and stream 1's response among the next frames.
  std::string frames = c.read(9);
  ASSERT_EQ(frames.size(), 9u);
  EXPECT_EQ(frames[3], '\x04') << "SETTINGS first";
  std::string rest;
  EXPECT_TRUE(test::waitFor([&] {
    rest += c.read(4096, 100);
    return absl::StrContains(rest, kDirectBody);
  }));
}

TEST_P(H2cUpgradeIntegrationTest, Http1OnlyListenerIgnoresTheUpgrade) {
  start("HTTP1");
  CurlResult r = test::curl(url("/echo"), {"--http2", "-v"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_TRUE(absl::StrContains(r.stderr_text, "> Upgrade: h2c")) << r.stderr_text;
  EXPECT_EQ(r.version, "HTTP/1.1");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "GET /echo body=");
  expectNoUpgradeFieldsUpstream();
}

TEST_P(H2cUpgradeIntegrationTest, PipelinedDirectResponsesOnOneRead) {
  start();
  // Answered while the codec is still parsing the same read: the second request must
  // still find its codec.
  RawClient c(port());
  std::string get = "GET /direct HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_TRUE(c.send(get + get + get));
  for (int i = 0; i < 3; i++) {
    HttpResponse r = c.response();
    ASSERT_TRUE(r.ok) << i;
    EXPECT_EQ(r.body, kDirectBody);
  }
  // An upgrade request pipelined behind one: served after it, then the switch.
  ASSERT_TRUE(c.send(get + h2cHead("GET", "/direct", "") + "\r\n"));
  HttpResponse first = c.response();
  EXPECT_EQ(first.status, 200);
  HttpResponse second = c.response(false, /*skip_1xx=*/false);
  EXPECT_EQ(second.status, 101);
}

TEST_P(H2cUpgradeIntegrationTest, WebSocketUpgradeStillTunnels) {
  HttpUpstream ws([](const Request& req, int) {
    if (req.header("upgrade") != "websocket") return Reply{test::httpResponse(400, "no\n")};
    // Echoes the tunnel's bytes.
    auto echo = [](int fd, std::string& leftover) {
      if (!leftover.empty() && !test::writeAll(fd, leftover.data(), leftover.size())) return;
      char buf[65536];
      for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0 || !test::writeAll(fd, buf, n)) break;
      }
      shutdown(fd, SHUT_WR);
    };
    return Reply{
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        Reply::Then::Custom, echo};
  });
  start("AUTO", ws.port());
  RawClient c(port());
  ASSERT_TRUE(c.send("GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                     "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"));
  HttpResponse r = c.response(false, /*skip_1xx=*/false);
  ASSERT_EQ(r.status, 101);
  EXPECT_EQ(r.header("upgrade"), "websocket");
  ASSERT_TRUE(c.send("ping-frame"));
  EXPECT_EQ(c.read(10), "ping-frame");
  shutdown(c.fd(), SHUT_WR);
  EXPECT_TRUE(c.waitClosed());
}

} // namespace
} // namespace tern
