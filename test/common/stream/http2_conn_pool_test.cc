// stream::Http2ConnPool against a real HTTP/2 server: our own http2::ServerConnection on a
// loopback listener, on the same running dispatcher (either IO model) as the pool. Every
// call into the pool, the server or a request runs on the dispatcher (run); the test
// thread only waits, with bounded polls, never on timing.
#include "source/common/stream/http2_conn_pool.h"

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "source/common/network/listener_impl.h"
#include "source/common/network/socket.h"
#include "source/common/network/transport_socket.h"
#include "test/test_common/dispatcher_harness.h"
#include "test/test_common/test_upstream.h"

namespace tern {
namespace stream {
namespace {

using testing::ElementsAre;

http::HeaderMap requestHeaders(const std::string& path) {
  http::HeaderMap h;
  h.add(":method", "GET");
  h.add(":scheme", "http");
  h.add(":authority", "upstream");
  h.add(":path", path);
  return h;
}

// --- The server ------------------------------------------------------------------------

class TestServer;
class ServerConn;

// A request as the server sees it: held until the test answers, or answered at once.
struct ServerStream : public http::StreamDecoder, public http::StreamCallbacks {
  ServerConn* conn{nullptr};
  http::StreamEncoder* encoder{nullptr};
  std::string path;
  std::string body;
  std::string trailer; // x-t
  bool complete{false};
  std::vector<http::StreamResetReason> resets;

  void decodeHeaders(http::HeaderMapPtr h, bool end_stream) override {
    path = std::string(h->getView(":path"));
    if (path == "/early") {
      respond("early"); // before the request is complete
      return;
    }
    if (end_stream) done();
  }
  void decodeData(buffer::Buffer& d, bool end_stream) override {
    body += d.toString();
    d.drain(d.length());
    if (end_stream) done();
  }
  void decodeTrailers(http::HeaderMapPtr t) override {
    trailer = std::string(t->getView("x-t"));
    done();
  }
  void onResetStream(http::StreamResetReason r) override {
    resets.push_back(r);
    encoder = nullptr;
  }
  void done();
  void respond(const std::string& body) {
    if (encoder == nullptr) return;
    http::HeaderMap h;
    h.add(":status", "200");
    encoder->encodeHeaders(h, false);
    buffer::Buffer b;
    b.add(body);
    encoder->encodeData(b, true);
    encoder->removeCallbacks(*this);
    encoder = nullptr;
  }
};

// One accepted connection with our server codec: reads to dispatch(), events forwarded.
class ServerConn : public network::ReadFilter,
                   public network::ConnectionCallbacks,
                   public http::ServerConnectionCallbacks,
                   public http2::ConnectionCallbacks {
public:
  ServerConn(TestServer& server, event::Dispatcher& dispatcher, int fd, const http2::Settings& settings)
      : server_(server) {
    conn = std::make_unique<network::ConnectionImpl>(dispatcher, fd, network::Address(),
                                                     network::Address(),
                                                     std::make_unique<network::RawBufferSocket>(), true);
    conn->addConnectionCallbacks(*this);
    conn->addReadFilter(network::ReadFilterSharedPtr(this, [](network::ReadFilter*) {}));
    codec = std::make_unique<http2::ServerConnection>(*conn, *this, settings);
    codec->setConnectionCallbacks(*this);
  }

  network::FilterStatus onData(buffer::Buffer& d, bool end_stream) override {
    absl::Status st = codec->dispatch(d);
    if (!st.ok()) {
      errors++;
      conn->close(network::ConnectionCloseType::FlushWrite);
      return network::FilterStatus::StopIteration;
    }
    if (end_stream) codec->onPeerClosed();
    return network::FilterStatus::StopIteration;
  }
  void initializeReadFilterCallbacks(network::ReadFilterCallbacks&) override {}
  void onEvent(network::ConnectionEvent e) override {
    if (e == network::ConnectionEvent::Connected) return;
    closed = true;
    codec->onConnectionClosed();
  }
  void onBelowWriteBufferLowWatermark() override { codec->onBelowWriteBufferLowWatermark(); }
  http::StreamDecoder& newStream(http::StreamEncoder& encoder) override {
    streams.push_back(std::make_unique<ServerStream>());
    ServerStream& s = *streams.back();
    s.conn = this;
    s.encoder = &encoder;
    encoder.addCallbacks(s);
    max_active = std::max(max_active, codec->activeStreams());
    return s;
  }
  void onGoAway(uint32_t) override {}

  TestServer& server_;
  std::unique_ptr<network::ConnectionImpl> conn;
  std::unique_ptr<http2::ServerConnection> codec; // destroyed before conn
  std::vector<std::unique_ptr<ServerStream>> streams;
  size_t max_active{0}; // most streams open at once
  int errors{0};
  bool closed{false};
};

class TestServer {
public:
  TestServer(event::Dispatcher& dispatcher, const http2::Settings& settings) : settings_(settings) {
    auto addr = network::Address::fromIpPort("127.0.0.1", 0);
    auto fd = network::createListenSocket(*addr, 128, false);
    EXPECT_TRUE(fd.ok()) << fd.status();
    port_ = network::localAddressOf(*fd)->port();
    listener_ = std::make_unique<network::ListenerImpl>(
        dispatcher, *fd, [this, &dispatcher](int fd, const network::Address&) {
          conns.push_back(std::make_unique<ServerConn>(*this, dispatcher, fd, settings_));
        });
  }

  uint16_t port() const { return port_; }
  size_t openConns() const {
    size_t n = 0;
    for (const auto& c : conns) n += !c->closed;
    return n;
  }

  // Complete requests are answered with their path, or held for the test.
  bool auto_respond{false};
  std::vector<ServerStream*> held;
  std::vector<std::unique_ptr<ServerConn>> conns;

private:
  const http2::Settings settings_;
  uint16_t port_{0};
  std::unique_ptr<network::ListenerImpl> listener_;
};

void ServerStream::done() {
  complete = true;
  if (conn->server_.auto_respond) {
    respond(path);
  } else {
    conn->server_.held.push_back(this);
  }
}

// --- The pool's user -------------------------------------------------------------------

// One request, as the router uses the pool: callbacks on the encoder once ready, removed
// when the response is complete; a reset ends it.
struct Request : public http::StreamDecoder, public http::StreamCallbacks, public PoolCallbacks {
  std::string path;
  std::string send_body; // non-empty: a body, then trailers
  bool leave_open{false}; // headers only, never ends the request
  std::string trailer;    // the response's x-t
  Cancellable* handle{nullptr};
  http::StreamEncoder* encoder{nullptr};
  bool ready{false};
  bool reused{false};
  std::optional<PoolFailureReason> failure;
  std::string status;
  std::string body;
  bool complete{false};
  std::vector<http::StreamResetReason> resets;
  std::function<void(Request&)> on_reset;

  void onPoolReady(http::StreamEncoder& e, const upstream::HostSharedPtr&, bool was_reused) override {
    handle = nullptr;
    ready = true;
    reused = was_reused;
    encoder = &e;
    e.addCallbacks(*this);
    e.encodeHeaders(requestHeaders(path), send_body.empty() && !leave_open);
    if (send_body.empty() || encoder == nullptr) return;
    buffer::Buffer b;
    b.add(send_body);
    e.encodeData(b, false);
    if (encoder == nullptr) return;
    http::HeaderMap t;
    t.add("x-t", "request-trailer");
    e.encodeTrailers(t);
  }
  void onPoolFailure(PoolFailureReason reason, const char*, const upstream::HostSharedPtr&) override {
    handle = nullptr;
    failure = reason;
  }
  void decodeHeaders(http::HeaderMapPtr h, bool end_stream) override {
    status = std::string(h->getView(":status"));
    if (end_stream) done();
  }
  void decodeData(buffer::Buffer& d, bool end_stream) override {
    body += d.toString();
    d.drain(d.length());
    if (end_stream) done();
  }
  void decodeTrailers(http::HeaderMapPtr t) override {
    trailer = std::string(t->getView("x-t"));
    done();
  }
  void onResetStream(http::StreamResetReason r) override {
    resets.push_back(r);
    encoder = nullptr;
    if (on_reset) on_reset(*this);
  }
  void done() {
    complete = true;
    if (encoder != nullptr) encoder->removeCallbacks(*this);
    encoder = nullptr;
  }
};

// --- Fixture ---------------------------------------------------------------------------

struct Options {
  uint32_t server_max_streams{100};
  uint32_t max_connections{1024};
  uint32_t max_pending{1024};
  int64_t idle_timeout_ms{0}; // 0: the cluster's default (an hour)
  bool listen{true};          // false: nothing listens on the host's port
};

class Http2ConnPoolTest : public testing::TestWithParam<std::string> {
protected:
  void SetUp() override { harness_ = test::DispatcherHarness::create(GetParam()); }
  void TearDown() override {
    EXPECT_TRUE(run([this] {
      pool_.reset();
      server_.reset();
    }));
    EXPECT_TRUE(run([] {})); // the deferred deletes of the turn above
    harness_->stop();
  }

  void start(const Options& o = {}) {
    uint16_t port = 0;
    if (o.listen) {
      http2::Settings server_settings;
      server_settings.max_concurrent_streams = o.server_max_streams;
      ASSERT_TRUE(run([&] {
        server_ = std::make_unique<TestServer>(harness_->dispatcher(), server_settings);
        port = server_->port();
      }));
    } else {
      port = test::freePort();
    }
    envoy::config::cluster::v3::Cluster c;
    c.set_name("h2");
    c.mutable_connect_timeout()->set_seconds(5);
    auto* t = c.mutable_circuit_breakers()->add_thresholds();
    t->mutable_max_connections()->set_value(o.max_connections);
    t->mutable_max_pending_requests()->set_value(o.max_pending);
    if (o.idle_timeout_ms > 0) {
      envoy::extensions::upstreams::http::v3::HttpProtocolOptions opts;
      auto* idle = opts.mutable_common_http_protocol_options()->mutable_idle_timeout();
      idle->set_seconds(o.idle_timeout_ms / 1000);
      idle->set_nanos(static_cast<int32_t>(o.idle_timeout_ms % 1000) * 1000000);
      opts.mutable_explicit_http_config()->mutable_http2_protocol_options();
      (*c.mutable_typed_extension_protocol_options())
          ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
              .PackFrom(opts);
    }
    cluster_ = std::make_unique<upstream::Cluster>(c, store_);
    shard_ = std::make_unique<upstream::ShardClusterManager>(cm_, harness_->dispatcher(), 1);
    auto addr = network::Address::fromIpPort("127.0.0.1", port);
    ASSERT_TRUE(addr.ok());
    host_ = std::make_shared<upstream::Host>(*addr, "127.0.0.1", 1, 0);
    ASSERT_TRUE(run([&] {
      pool_ = std::make_unique<Http2ConnPool>(*shard_, *cluster_, host_, http2::Settings{});
    }));
  }

  bool run(std::function<void()> fn) { return harness_->runSync(std::move(fn)); }
  // Waits (up to 10 s) until `pred`, evaluated on the dispatcher, holds.
  bool until(const std::function<bool()>& pred) {
    return test::waitFor([&] {
      bool v = false;
      run([&] { v = pred(); });
      return v;
    });
  }

  // On the dispatcher.
  Request& newRequest(const std::string& path) {
    requests_.push_back(std::make_unique<Request>());
    Request& r = *requests_.back();
    r.path = path;
    r.handle = pool_->newStream(r, r);
    return r;
  }
  bool allComplete(const std::vector<Request*>& rs) {
    return std::all_of(rs.begin(), rs.end(), [](Request* r) { return r->complete; });
  }

  uint64_t counter(const std::string& name) { return store_.counterValue("cluster.h2." + name); }
  int64_t gauge(const std::string& name) { return store_.gaugeValue("cluster.h2." + name); }

  stats::Store store_;
  upstream::ClusterManager cm_{store_};
  std::unique_ptr<upstream::Cluster> cluster_;
  std::unique_ptr<upstream::ShardClusterManager> shard_;
  upstream::HostSharedPtr host_;
  std::vector<std::unique_ptr<Request>> requests_; // outlive the pool
  std::unique_ptr<test::DispatcherHarness> harness_;
  std::unique_ptr<TestServer> server_;
  std::unique_ptr<Http2ConnPool> pool_;
};

const auto kModels = testing::Values("worker_loops", "raw_epoll");
INSTANTIATE_TEST_SUITE_P(IoModels, Http2ConnPoolTest, kModels,
                         [](const testing::TestParamInfo<std::string>& p) { return p.param; });

// --- Tests -----------------------------------------------------------------------------

TEST_P(Http2ConnPoolTest, TenConcurrentStreamsShareOneConnection) {
  start();
  std::vector<Request*> rs;
  run([&] {
    EXPECT_EQ(pool_->protocol(), http::Protocol::Http2);
    for (int i = 0; i < 10; i++) rs.push_back(&newRequest(absl::StrCat("/", i)));
    EXPECT_EQ(pool_->pendingCount(), 10u); // nothing is up yet
    EXPECT_EQ(pool_->connectionCount(), 1u);
  });
  ASSERT_TRUE(until([&] { return server_->held.size() == 10; }));
  run([&] {
    ASSERT_EQ(server_->conns.size(), 1u);
    EXPECT_EQ(server_->conns[0]->max_active, 10u); // all open at once, on one connection
    EXPECT_EQ(pool_->connectionCount(), 1u);
    EXPECT_EQ(pool_->activeStreamCount(), 10u);
    EXPECT_EQ(pool_->pendingCount(), 0u);
    for (ServerStream* s : server_->held) s->respond("re:" + s->path);
  });
  ASSERT_TRUE(until([&] { return allComplete(rs); }));
  run([&] {
    int reused = 0;
    for (int i = 0; i < 10; i++) {
      EXPECT_EQ(rs[i]->status, "200");
      EXPECT_EQ(rs[i]->body, absl::StrCat("re:/", i));
      EXPECT_TRUE(rs[i]->resets.empty());
      reused += rs[i]->reused;
    }
    EXPECT_EQ(reused, 9); // all but the connection's first stream
  });
  ASSERT_TRUE(until([&] { return pool_->activeStreamCount() == 0; }));
  // The idle connection serves the next request at once.
  run([&] {
    server_->auto_respond = true;
    Request& r = newRequest("/again");
    EXPECT_TRUE(r.ready);
    EXPECT_TRUE(r.reused);
    EXPECT_EQ(r.handle, nullptr);
    rs.push_back(&r);
  });
  ASSERT_TRUE(until([&] { return allComplete(rs); }));
  run([&] {
    EXPECT_EQ(server_->conns.size(), 1u);
    EXPECT_EQ(counter("upstream_cx_total"), 1u);
    EXPECT_EQ(counter("upstream_rq_total"), 11u);
    EXPECT_EQ(counter("upstream_rq_pending_total"), 10u);
    EXPECT_EQ(gauge("upstream_rq_pending_active"), 0);
    EXPECT_EQ(gauge("upstream_cx_active"), 1);
    EXPECT_EQ(host_->cx_active.load(), 1);
  });
}

TEST_P(Http2ConnPoolTest, BodiesAndTrailersPassThroughTheStreamWrapper) {
  start();
  Request* r = nullptr;
  run([&] {
    r = &newRequest("/post");
    r->send_body = "request-body"; // sent once the stream is ready
  });
  ASSERT_TRUE(until([&] { return server_->held.size() == 1; }));
  run([&] {
    ServerStream& s = *server_->held[0];
    EXPECT_EQ(s.body, "request-body");
    EXPECT_EQ(s.trailer, "request-trailer");
    http::HeaderMap h;
    h.add(":status", "200");
    s.encoder->encodeHeaders(h, false);
    buffer::Buffer b;
    b.add("response-body");
    s.encoder->encodeData(b, false);
    http::HeaderMap t;
    t.add("x-t", "response-trailer");
    s.encoder->encodeTrailers(t);
    s.encoder->removeCallbacks(s);
    s.encoder = nullptr;
  });
  ASSERT_TRUE(until([&] { return r->complete; }));
  run([&] {
    EXPECT_EQ(r->body, "response-body");
    EXPECT_EQ(r->trailer, "response-trailer");
    EXPECT_TRUE(r->resets.empty());
  });
  ASSERT_TRUE(until([&] { return pool_->activeStreamCount() == 0; }));
}

TEST_P(Http2ConnPoolTest, EarlyResponseToAnUnfinishedRequestFreesTheStream) {
  Options o;
  o.max_connections = 1;
  o.server_max_streams = 1;
  start(o);
  Request* early = nullptr;
  Request* next = nullptr;
  run([&] {
    server_->auto_respond = true;
    early = &newRequest("/early");
    early->leave_open = true; // as the router leaves one whose response came first
    next = &newRequest("/next");
  });
  // The owner's callbacks went once the response was complete; the pool ends the stream
  // and the single slot of the single connection serves the next request.
  ASSERT_TRUE(until([&] { return early->complete && next->complete; }));
  run([&] {
    EXPECT_EQ(early->body, "early");
    EXPECT_TRUE(early->resets.empty());
    EXPECT_EQ(next->body, "/next");
    EXPECT_EQ(server_->conns.size(), 1u);
  });
  ASSERT_TRUE(until([&] { return pool_->activeStreamCount() == 0; }));
}

TEST_P(Http2ConnPoolTest, LowPeerStreamLimitOpensMoreConnections) {
  Options o;
  o.server_max_streams = 2;
  start(o);
  std::vector<Request*> rs;
  run([&] {
    for (int i = 0; i < 5; i++) rs.push_back(&newRequest(absl::StrCat("/", i)));
  });
  ASSERT_TRUE(until([&] { return server_->held.size() == 5; }));
  run([&] {
    EXPECT_EQ(server_->conns.size(), 3u); // 2 + 2 + 1
    for (const auto& c : server_->conns) EXPECT_LE(c->max_active, 2u);
    EXPECT_EQ(pool_->connectionCount(), 3u);
    EXPECT_EQ(pool_->pendingCount(), 0u);
    for (ServerStream* s : server_->held) s->respond(s->path);
  });
  ASSERT_TRUE(until([&] { return allComplete(rs); }));
  run([&] {
    for (int i = 0; i < 5; i++) {
      EXPECT_EQ(rs[i]->body, absl::StrCat("/", i));
      EXPECT_TRUE(rs[i]->resets.empty()); // no stream over the server's limit
    }
    EXPECT_EQ(counter("upstream_cx_total"), 3u);
    EXPECT_EQ(gauge("upstream_cx_active"), 3);
    EXPECT_EQ(host_->cx_active.load(), 3);
  });
}

TEST_P(Http2ConnPoolTest, RequestsQueueAtMaxConnectionsAndGoOutAsStreamsEnd) {
  Options o;
  o.server_max_streams = 2;
  o.max_connections = 1;
  start(o);
  std::vector<Request*> rs;
  run([&] {
    for (int i = 0; i < 5; i++) rs.push_back(&newRequest(absl::StrCat("/", i)));
  });
  ASSERT_TRUE(until([&] { return server_->held.size() == 2; }));
  run([&] {
    EXPECT_EQ(pool_->connectionCount(), 1u);
    EXPECT_EQ(pool_->pendingCount(), 3u);
    EXPECT_EQ(gauge("upstream_rq_pending_active"), 3);
    EXPECT_GE(counter("upstream_cx_overflow"), 1u);
    server_->auto_respond = true;
    for (ServerStream* s : server_->held) s->respond(s->path);
  });
  ASSERT_TRUE(until([&] { return allComplete(rs); }));
  run([&] {
    int reused = 0;
    for (int i = 0; i < 5; i++) {
      EXPECT_EQ(rs[i]->body, absl::StrCat("/", i));
      reused += rs[i]->reused;
    }
    EXPECT_EQ(reused, 4);
    EXPECT_EQ(server_->conns.size(), 1u);
    for (const auto& c : server_->conns) EXPECT_LE(c->max_active, 2u);
    EXPECT_EQ(counter("upstream_cx_total"), 1u);
    EXPECT_EQ(gauge("upstream_rq_pending_active"), 0);
  });
}

TEST_P(Http2ConnPoolTest, GoAwaySendsNewStreamsToANewConnection) {
  start();
  // A first exchange: the server's SETTINGS are known, the connection takes any stream.
  Request* warm = nullptr;
  run([&] {
    server_->auto_respond = true;
    warm = &newRequest("/warm");
  });
  ASSERT_TRUE(until([&] { return warm->complete; }));
  Request* first = nullptr;
  run([&] {
    server_->auto_respond = false;
    first = &newRequest("/first");
    EXPECT_TRUE(first->ready);
  });
  ASSERT_TRUE(until([&] { return server_->held.size() == 1; }));
  Request* refused = nullptr;
  Request* retry = nullptr;
  run([&] {
    // GOAWAY naming /first as the last stream; the pool has not read it when /refused
    // goes out on the same connection, so the server ignores that one.
    server_->conns[0]->codec->goAway();
    refused = &newRequest("/refused");
    EXPECT_TRUE(refused->ready);
    EXPECT_TRUE(refused->reused);
    // Like the router: a stream refused by GOAWAY is retried (from inside the reset).
    refused->on_reset = [&](Request&) { retry = &newRequest("/retry"); };
  });
  ASSERT_TRUE(until([&] { return retry != nullptr && server_->held.size() == 2; }));
  run([&] {
    EXPECT_THAT(refused->resets, ElementsAre(http::StreamResetReason::RefusedStream));
    EXPECT_FALSE(refused->complete);
    ASSERT_EQ(server_->conns.size(), 2u);
    EXPECT_EQ(server_->held[1]->path, "/retry");
    EXPECT_EQ(server_->held[1]->conn, server_->conns[1].get());
    EXPECT_EQ(pool_->drainingCount(), 1u);
    EXPECT_EQ(pool_->connectionCount(), 2u);
    EXPECT_FALSE(retry->reused);
    // The old connection still finishes its in-flight stream.
    server_->held[0]->respond("first-done");
    server_->held[1]->respond("retry-done");
  });
  ASSERT_TRUE(until([&] { return first->complete && retry->complete; }));
  run([&] {
    EXPECT_EQ(first->body, "first-done");
    EXPECT_TRUE(first->resets.empty());
    EXPECT_EQ(retry->body, "retry-done");
  });
  // Drained: the old connection closes once its last stream ended.
  ASSERT_TRUE(until([&] { return server_->conns[0]->closed && pool_->connectionCount() == 1; }));
  run([&] {
    EXPECT_FALSE(server_->conns[1]->closed);
    EXPECT_EQ(pool_->drainingCount(), 0u);
    EXPECT_EQ(counter("upstream_cx_destroy"), 1u);
    EXPECT_EQ(counter("upstream_cx_destroy_local"), 1u);
    EXPECT_EQ(gauge("upstream_cx_active"), 1);
    EXPECT_EQ(host_->cx_active.load(), 1);
  });
}

TEST_P(Http2ConnPoolTest, AtMaxConnectionsRequestsWaitForADrainingConnectionToClose) {
  Options o;
  o.max_connections = 1;
  start(o);
  Request* first = nullptr;
  run([&] { first = &newRequest("/first"); });
  ASSERT_TRUE(until([&] { return server_->held.size() == 1; }));
  run([&] { server_->conns[0]->codec->goAway(); });
  ASSERT_TRUE(until([&] { return pool_->drainingCount() == 1; }));
  Request* second = nullptr;
  run([&] {
    second = &newRequest("/second");
    EXPECT_NE(second->handle, nullptr); // the draining connection still counts
    EXPECT_FALSE(second->failure.has_value());
    EXPECT_GE(counter("upstream_cx_overflow"), 1u);
    server_->auto_respond = true;
    server_->held[0]->respond("first");
  });
  ASSERT_TRUE(until([&] { return first->complete && second->complete; }));
  run([&] {
    EXPECT_EQ(second->body, "/second");
    EXPECT_FALSE(second->reused);
    ASSERT_EQ(server_->conns.size(), 2u);
    EXPECT_TRUE(server_->conns[0]->closed);
    EXPECT_EQ(counter("upstream_cx_total"), 2u);
    EXPECT_EQ(gauge("upstream_cx_active"), 1);
  });
}

TEST_P(Http2ConnPoolTest, ConnectFailureFailsPendingRequests) {
  Options o;
  o.listen = false;
  start(o);
  std::vector<Request*> rs;
  run([&] {
    for (int i = 0; i < 3; i++) {
      rs.push_back(&newRequest("/"));
      EXPECT_NE(rs.back()->handle, nullptr);
    }
    EXPECT_EQ(pool_->connectionCount(), 1u);
  });
  ASSERT_TRUE(until([&] {
    return std::all_of(rs.begin(), rs.end(), [](Request* r) { return r->failure.has_value(); });
  }));
  run([&] {
    for (Request* r : rs) {
      EXPECT_EQ(*r->failure, PoolFailureReason::ConnectionFailure);
      EXPECT_FALSE(r->ready);
    }
    EXPECT_EQ(pool_->connectionCount(), 0u);
    EXPECT_EQ(pool_->pendingCount(), 0u);
    EXPECT_EQ(counter("upstream_cx_connect_fail"), 1u);
    EXPECT_EQ(counter("upstream_cx_destroy"), 1u);
    EXPECT_EQ(gauge("upstream_cx_active"), 0);
    EXPECT_EQ(gauge("upstream_rq_pending_active"), 0);
    EXPECT_EQ(host_->cx_active.load(), 0);
  });
}

TEST_P(Http2ConnPoolTest, IdleConnectionClosesAfterIdleTimeout) {
  Options o;
  o.idle_timeout_ms = 100;
  start(o);
  Request* r = nullptr;
  run([&] {
    server_->auto_respond = true;
    r = &newRequest("/");
  });
  ASSERT_TRUE(until([&] { return r->complete; }));
  ASSERT_TRUE(until([&] { return counter("upstream_cx_idle_timeout") == 1; }));
  ASSERT_TRUE(until([&] { return pool_->connectionCount() == 0 && server_->openConns() == 0; }));
  run([&] {
    EXPECT_EQ(r->body, "/");
    EXPECT_EQ(counter("upstream_cx_destroy_local"), 1u);
    EXPECT_EQ(gauge("upstream_cx_active"), 0);
    EXPECT_EQ(host_->cx_active.load(), 0);
  });
  // The next request opens a new connection.
  Request* next = nullptr;
  run([&] { next = &newRequest("/next"); });
  ASSERT_TRUE(until([&] { return next->complete; }));
  run([&] {
    EXPECT_FALSE(next->reused);
    EXPECT_EQ(counter("upstream_cx_total"), 2u);
  });
}

TEST_P(Http2ConnPoolTest, CancelledPendingRequestIsNeverServed) {
  start();
  Request* a = nullptr;
  Request* b = nullptr;
  run([&] {
    server_->auto_respond = true;
    a = &newRequest("/a");
    b = &newRequest("/b");
    ASSERT_NE(a->handle, nullptr);
    ASSERT_NE(b->handle, nullptr);
    EXPECT_EQ(pool_->pendingCount(), 2u);
    b->handle->cancel();
    b->handle = nullptr;
    EXPECT_EQ(pool_->pendingCount(), 1u);
    EXPECT_EQ(gauge("upstream_rq_pending_active"), 1);
  });
  ASSERT_TRUE(until([&] { return a->complete; }));
  // Whatever else the connection does meanwhile, /b never starts.
  Request* c = nullptr;
  run([&] { c = &newRequest("/c"); });
  ASSERT_TRUE(until([&] { return c->complete; }));
  run([&] {
    EXPECT_FALSE(b->ready);
    EXPECT_FALSE(b->failure.has_value());
    ASSERT_EQ(server_->conns.size(), 1u);
    ASSERT_EQ(server_->conns[0]->streams.size(), 2u);
    EXPECT_EQ(server_->conns[0]->streams[0]->path, "/a");
    EXPECT_EQ(server_->conns[0]->streams[1]->path, "/c");
    EXPECT_EQ(counter("upstream_rq_total"), 2u);
    EXPECT_EQ(gauge("upstream_rq_pending_active"), 0);
  });
}

TEST_P(Http2ConnPoolTest, PendingOverflowFailsAtOnce) {
  Options o;
  o.max_pending = 1;
  start(o);
  Request* a = nullptr;
  run([&] {
    server_->auto_respond = true;
    a = &newRequest("/a");
    EXPECT_NE(a->handle, nullptr);
    Request& b = newRequest("/b");
    EXPECT_EQ(b.handle, nullptr);
    ASSERT_TRUE(b.failure.has_value());
    EXPECT_EQ(*b.failure, PoolFailureReason::Overflow);
    EXPECT_EQ(counter("upstream_rq_pending_overflow"), 1u);
  });
  ASSERT_TRUE(until([&] { return a->complete; }));
}

TEST_P(Http2ConnPoolTest, OwnerResetFreesTheSlotForAWaitingRequest) {
  Options o;
  o.server_max_streams = 1;
  o.max_connections = 1;
  start(o);
  Request* a = nullptr;
  Request* b = nullptr;
  run([&] {
    a = &newRequest("/a");
    b = &newRequest("/b");
  });
  ASSERT_TRUE(until([&] { return server_->held.size() == 1; }));
  run([&] {
    EXPECT_EQ(pool_->pendingCount(), 1u);
    // As the router resets an attempt: callbacks off, then reset.
    http::StreamEncoder* e = a->encoder;
    ASSERT_NE(e, nullptr);
    e->removeCallbacks(*a);
    a->encoder = nullptr;
    e->resetStream(http::StreamResetReason::LocalReset);
  });
  ASSERT_TRUE(until([&] { return server_->held.size() == 2; }));
  run([&] {
    EXPECT_THAT(server_->held[0]->resets, ElementsAre(http::StreamResetReason::RemoteReset));
    EXPECT_EQ(server_->held[1]->path, "/b");
    EXPECT_EQ(server_->conns.size(), 1u);
    EXPECT_TRUE(b->reused);
    server_->held[1]->respond("b");
  });
  ASSERT_TRUE(until([&] { return b->complete; }));
  ASSERT_TRUE(until([&] { return pool_->activeStreamCount() == 0; }));
}

TEST_P(Http2ConnPoolTest, ServerCloseResetsStreamsInFlight) {
  start();
  Request* a = nullptr;
  run([&] { a = &newRequest("/a"); });
  ASSERT_TRUE(until([&] { return server_->held.size() == 1; }));
  run([&] { server_->conns[0]->conn->close(network::ConnectionCloseType::NoFlush); });
  ASSERT_TRUE(until([&] { return !a->resets.empty() && pool_->connectionCount() == 0; }));
  run([&] {
    EXPECT_THAT(a->resets, ElementsAre(http::StreamResetReason::ConnectionTermination));
    EXPECT_EQ(counter("upstream_cx_destroy_remote"), 1u);
    EXPECT_EQ(gauge("upstream_cx_active"), 0);
    EXPECT_EQ(host_->cx_active.load(), 0);
  });
  Request* b = nullptr;
  run([&] {
    server_->auto_respond = true;
    b = &newRequest("/b");
  });
  ASSERT_TRUE(until([&] { return b->complete; }));
  run([&] {
    EXPECT_FALSE(b->reused);
    EXPECT_EQ(server_->conns.size(), 2u);
  });
}

TEST_P(Http2ConnPoolTest, DrainConnectionsClosesIdleAndDrainsBusy) {
  start();
  Request* warm = nullptr;
  run([&] {
    server_->auto_respond = true;
    warm = &newRequest("/warm");
  });
  ASSERT_TRUE(until([&] { return warm->complete; }));
  Request* busy = nullptr;
  run([&] {
    server_->auto_respond = false;
    busy = &newRequest("/busy");
  });
  ASSERT_TRUE(until([&] { return server_->held.size() == 1; }));
  Request* after = nullptr;
  run([&] {
    pool_->drainConnections();
    EXPECT_EQ(pool_->drainingCount(), 1u);
    after = &newRequest("/after"); // not on the draining connection
    EXPECT_FALSE(after->ready);
  });
  ASSERT_TRUE(until([&] { return server_->held.size() == 2; }));
  run([&] {
    ASSERT_EQ(server_->conns.size(), 2u);
    EXPECT_EQ(server_->held[1]->conn, server_->conns[1].get());
    for (ServerStream* s : server_->held) s->respond(s->path);
  });
  ASSERT_TRUE(until([&] { return busy->complete && after->complete; }));
  ASSERT_TRUE(until([&] { return server_->conns[0]->closed && pool_->connectionCount() == 1; }));
  // The remaining connection is idle: draining closes it at once.
  run([&] { pool_->drainConnections(); });
  ASSERT_TRUE(until([&] { return pool_->connectionCount() == 0 && server_->openConns() == 0; }));
  run([&] {
    EXPECT_EQ(counter("upstream_cx_destroy_local"), 2u);
    EXPECT_EQ(gauge("upstream_cx_active"), 0);
    EXPECT_EQ(host_->cx_active.load(), 0);
  });
}

} // namespace
} // namespace stream
} // namespace tern
