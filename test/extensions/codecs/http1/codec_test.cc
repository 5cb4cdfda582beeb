// http1::ServerConnection over a real AF_UNIX socket pair: our end is a ConnectionImpl on a
// running dispatcher (both IO models) with a small read filter that feeds the codec the
// way the connection manager does; the peer is a blocking socket the test thread writes
// requests to and reads raw response bytes from. Every call into the codec and the
// connection happens on the dispatcher (runSync).
#include "extensions/codecs/http1/codec_impl.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "source/common/network/connection_impl.h"
#include "test/test_common/dispatcher_harness.h"
#include "test/test_common/test_upstream.h"

namespace tern {
namespace http1 {
namespace {

using testing::HasSubstr;
using testing::StartsWith;

struct Request {
  http::HeaderMap headers;
  std::string body;
  bool has_trailers{false};
  bool complete{false};
  int resets{0};
};

class CodecTest;

// Answers a request through `encoder` (called once the request is complete, or at the
// head when respond_at_headers_ is set).
using Responder = std::function<void(http::StreamEncoder& encoder, const Request& request)>;

class TestStream : public http::StreamDecoder, public http::StreamCallbacks {
public:
  TestStream(http::StreamEncoder& encoder, Request& request, const Responder& responder,
             bool respond_at_headers)
      : encoder_(encoder), request_(request), responder_(responder),
        respond_at_headers_(respond_at_headers) {
    encoder_.addCallbacks(*this);
  }

  void decodeHeaders(http::HeaderMapPtr headers, bool end_stream) override {
    request_.headers = *headers;
    if (end_stream) request_.complete = true;
    if (end_stream || respond_at_headers_) respond();
  }
  void decodeData(buffer::Buffer& data, bool end_stream) override {
    request_.body += data.toString();
    data.drain(data.length());
    if (end_stream) {
      request_.complete = true;
      respond();
    }
  }
  void decodeTrailers(http::HeaderMapPtr) override {
    request_.has_trailers = true;
    request_.complete = true;
    respond();
  }
  void onResetStream(http::StreamResetReason) override {
    request_.resets++;
    responded_ = true; // the encoder is going away
  }

private:
  void respond() {
    if (responded_ || !responder_) return;
    responded_ = true;
    encoder_.removeCallbacks(*this);
    responder_(encoder_, request_);
  }

  http::StreamEncoder& encoder_;
  Request& request_;
  const Responder& responder_;
  const bool respond_at_headers_;
  bool responded_{false};
};

// Stands in for the connection manager: bytes to the codec, protocol errors answered and
// the connection closed after the answer is flushed.
class CodecFilter : public network::ReadFilter, public http::ServerConnectionCallbacks {
public:
  CodecFilter(const Responder& responder, bool respond_at_headers)
      : responder_(responder), respond_at_headers_(respond_at_headers) {}

  network::FilterStatus onNewConnection() override {
    codec_ = std::make_unique<ServerConnection>(*connection_, *this);
    if (h2c_) codec_->enableH2cUpgrade();
    return network::FilterStatus::Continue;
  }
  network::FilterStatus onData(buffer::Buffer& data, bool end_stream) override {
    if (upgraded_) { // the codec is done: what follows is HTTP/2
      h2c_rest_ += data.toString();
      data.drain(data.length());
      return network::FilterStatus::StopIteration;
    }
    absl::Status st = codec_->dispatch(data);
    if (st.ok() && codec_->h2cUpgradePending()) {
      buffer::Buffer rest;
      upgraded_ = codec_->acceptH2cUpgrade(rest);
      h2c_rest_ = rest.toString();
      return network::FilterStatus::StopIteration;
    }
    if (!st.ok()) {
      errors_.push_back(st);
      codec_->sendProtocolError(st);
      connection_->close(network::ConnectionCloseType::FlushWrite);
      return network::FilterStatus::StopIteration;
    }
    if (end_stream) codec_->onPeerClosed();
    return network::FilterStatus::StopIteration;
  }
  void initializeReadFilterCallbacks(network::ReadFilterCallbacks& cb) override {
    connection_ = &cb.connection();
  }

  http::StreamDecoder& newStream(http::StreamEncoder& response) override {
    requests_.push_back(std::make_unique<Request>());
    streams_.push_back(
        std::make_unique<TestStream>(response, *requests_.back(), responder_, respond_at_headers_));
    return *streams_.back();
  }

  const Responder& responder_;
  const bool respond_at_headers_;
  network::Connection* connection_{nullptr};
  std::unique_ptr<ServerConnection> codec_;
  std::vector<std::unique_ptr<Request>> requests_;
  std::vector<std::unique_ptr<TestStream>> streams_;
  std::vector<absl::Status> errors_;
  bool h2c_{false};
  http::HeaderMapPtr upgraded_; // the request held by an h2c upgrade
  std::string h2c_rest_;        // the bytes after it
};

http::HeaderMap headers(std::vector<std::pair<std::string, std::string>> entries) {
  http::HeaderMap h;
  for (auto& [k, v] : entries) h.add(k, v);
  return h;
}

void sendData(http::StreamEncoder& enc, const std::string& s, bool end_stream) {
  buffer::Buffer b;
  b.add(s);
  enc.encodeData(b, end_stream);
}

class CodecTest : public testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    harness_ = test::DispatcherHarness::create(GetParam());
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    ASSERT_EQ(fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK), 0);
    ours_ = fds[0];
    peer_ = fds[1];
    timeval tv{10, 0};
    setsockopt(peer_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(peer_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  }

  void TearDown() override {
    EXPECT_TRUE(run([this] {
      conn_.reset();
      filter_.reset();
    }));
    harness_->stop();
    if (peer_ >= 0) close(peer_);
  }

  bool run(std::function<void()> fn) { return harness_->runSync(std::move(fn)); }

  void start(Responder responder, bool respond_at_headers = false) {
    responder_ = std::move(responder);
    ASSERT_TRUE(run([&] {
      filter_ = std::make_shared<CodecFilter>(responder_, respond_at_headers);
      filter_->h2c_ = h2c_;
      conn_ = std::make_unique<network::ConnectionImpl>(
          harness_->dispatcher(), ours_, network::Address(), network::Address(),
          std::make_unique<network::RawBufferSocket>(), true);
      conn_->addReadFilter(filter_);
      EXPECT_TRUE(conn_->initializeReadFilters());
    }));
  }

  void peerWrite(const std::string& s) { ASSERT_TRUE(test::writeAll(peer_, s.data(), s.size())); }

  // Reads until `pred` holds for what has arrived (or EOF / the 10 s socket timeout).
  std::string peerReadUntil(const std::function<bool(const std::string&)>& pred) {
    while (!pred(received_)) {
      char buf[4096];
      ssize_t r = read(peer_, buf, sizeof(buf));
      if (r <= 0) break;
      received_.append(buf, r);
    }
    std::string out = received_;
    received_.clear();
    return out;
  }
  std::string peerRead(size_t n) {
    std::string all = peerReadUntil([n](const std::string& s) { return s.size() >= n; });
    received_ = all.substr(std::min(n, all.size()));
    return all.substr(0, n);
  }
  std::string peerReadToEof() {
    std::string out = received_ + test::readToEof(peer_);
    received_.clear();
    return out;
  }
  // Nothing more arrives and the connection is not closed (a short wait, then a check).
  bool peerQuiet() {
    char c;
    timeval tv{0, 100 * 1000};
    setsockopt(peer_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ssize_t r = recv(peer_, &c, 1, 0);
    bool quiet = r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    if (r == 1) received_.push_back(c);
    tv = {10, 0};
    setsockopt(peer_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return quiet;
  }

  size_t streamCount() {
    size_t n = 0;
    EXPECT_TRUE(run([&] { n = filter_->requests_.size(); }));
    return n;
  }
  Request request(size_t i) {
    Request r;
    EXPECT_TRUE(run([&] {
      if (i < filter_->requests_.size()) {
        const Request& src = *filter_->requests_[i];
        r.headers = src.headers;
        r.body = src.body;
        r.has_trailers = src.has_trailers;
        r.complete = src.complete;
        r.resets = src.resets;
      }
    }));
    return r;
  }

  std::unique_ptr<test::DispatcherHarness> harness_;
  int ours_{-1};
  int peer_{-1};
  std::string received_;
  Responder responder_;
  std::shared_ptr<CodecFilter> filter_;
  std::unique_ptr<network::ConnectionImpl> conn_;
  bool h2c_{false}; // enableH2cUpgrade() on the codec
};

INSTANTIATE_TEST_SUITE_P(IoModels, CodecTest, testing::Values("worker_loops", "raw_epoll"),
                         [](const testing::TestParamInfo<std::string>& p) { return p.param; });

const std::string kGet = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";

TEST_P(CodecTest, ContentLengthResponseKeepsTheConnection) {
  start([](http::StreamEncoder& enc, const Request&) {
    enc.encodeHeaders(headers({{":status", "200"}, {"content-length", "5"}, {"x-a", "b"}}), false);
    sendData(enc, "hello", true);
  });
  const std::string expected = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: b\r\n\r\nhello";
  peerWrite(kGet);
  EXPECT_EQ(peerRead(expected.size()), expected);
  EXPECT_TRUE(peerQuiet());
  // The same connection serves the next request.
  peerWrite(kGet);
  EXPECT_EQ(peerRead(expected.size()), expected);
  EXPECT_EQ(streamCount(), 2u);
  Request r = request(0);
  EXPECT_EQ(r.headers.method(), "GET");
  EXPECT_EQ(r.headers.host(), "h");
  EXPECT_TRUE(r.complete);
}

TEST_P(CodecTest, HeadersOnlyResponseGetsContentLengthZero) {
  start([](http::StreamEncoder& enc, const Request&) {
    enc.encodeHeaders(headers({{":status", "404"}}), true);
  });
  peerWrite(kGet);
  const std::string expected = "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
  EXPECT_EQ(peerRead(expected.size()), expected);
  EXPECT_TRUE(peerQuiet());
}

TEST_P(CodecTest, ChunkedWhenNoLength) {
  start([](http::StreamEncoder& enc, const Request&) {
    // An upstream's own transfer-encoding is hop-by-hop: replaced, never doubled.
    enc.encodeHeaders(headers({{":status", "200"}, {"transfer-encoding", "chunked"}}), false);
    sendData(enc, "abc", false);
    sendData(enc, "", false); // nothing to send: no zero-size chunk (that would end the body)
    sendData(enc, "0123456789abcdefg", true);
  });
  peerWrite(kGet);
  const std::string expected =
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n11\r\n0123456789abcdefg\r\n0\r\n\r\n";
  EXPECT_EQ(peerRead(expected.size()), expected);
  EXPECT_TRUE(peerQuiet());
}

TEST_P(CodecTest, ChunkedWithTrailers) {
  start([](http::StreamEncoder& enc, const Request&) {
    enc.encodeHeaders(headers({{":status", "200"}}), false);
    sendData(enc, "abc", false);
    enc.encodeTrailers(headers({{"grpc-status", "0"}}));
  });
  peerWrite(kGet);
  const std::string expected =
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\ngrpc-status: 0\r\n\r\n";
  EXPECT_EQ(peerRead(expected.size()), expected);
  EXPECT_TRUE(peerQuiet());
}

TEST_P(CodecTest, Http10ResponseIsCloseDelimited) {
  start([](http::StreamEncoder& enc, const Request&) {
    enc.encodeHeaders(headers({{":status", "200"}}), false);
    sendData(enc, "abc", false);
    sendData(enc, "def", true);
  });
  peerWrite("GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(peerReadToEof(), "HTTP/1.0 200 OK\r\nconnection: close\r\n\r\nabcdef");
}

TEST_P(CodecTest, Http10KeepAliveWithLength) {
  start([](http::StreamEncoder& enc, const Request&) {
    enc.encodeHeaders(headers({{":status", "200"}, {"content-length", "2"}}), false);
    sendData(enc, "ok", true);
  });
  peerWrite("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  const std::string expected =
      "HTTP/1.0 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok";
  EXPECT_EQ(peerRead(expected.size()), expected);
  EXPECT_TRUE(peerQuiet());
}

TEST_P(CodecTest, HeadResponseHasNoBody) {
  start([](http::StreamEncoder& enc, const Request& req) {
    enc.encodeHeaders(headers({{":status", "200"}, {"content-length", "10"}}), false);
    sendData(enc, req.headers.method() == "HEAD" ? "0123456789" : "ABCDEFGHIJ", true);
  });
  // HEAD then GET pipelined: the HEAD's body must not leak into the stream.
  peerWrite("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n" + kGet);
  const std::string head = "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n";
  EXPECT_EQ(peerRead(head.size() * 2 + 10), head + head + "ABCDEFGHIJ");
  EXPECT_TRUE(peerQuiet());
}

TEST_P(CodecTest, HeadHeadersOnlyResponseGetsNoLength) {
  start([](http::StreamEncoder& enc, const Request&) {
    enc.encodeHeaders(headers({{":status", "200"}}), true);
  });
  peerWrite("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n");
  // "content-length: 0" would claim the GET's body is empty.
  const std::string expected = "HTTP/1.1 200 OK\r\n\r\n";
  EXPECT_EQ(peerRead(expected.size()), expected);
  EXPECT_TRUE(peerQuiet());
}

TEST_P(CodecTest, NoContentHasNoFraming) {
  start([](http::StreamEncoder& enc, const Request& req) {
    if (req.headers.path() == "/204") {
      enc.encodeHeaders(headers({{":status", "204"}}), false);
      sendData(enc, "", true);
    } else {
      enc.encodeHeaders(headers({{":status", "304"}, {"etag", "\"x\""}}), true);
    }
  });
  peerWrite("GET /204 HTTP/1.1\r\nHost: h\r\n\r\nGET /304 HTTP/1.1\r\nHost: h\r\n\r\n");
  const std::string expected =
      "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\netag: \"x\"\r\n\r\n";
  EXPECT_EQ(peerRead(expected.size()), expected);
  EXPECT_TRUE(peerQuiet());
}

TEST_P(CodecTest, ExpectContinueIsAnsweredBeforeTheBody) {
  start([](http::StreamEncoder& enc, const Request& req) {
    enc.encodeHeaders(headers({{":status", "200"}, {"content-length", std::to_string(req.body.size())}}),
                      false);
    sendData(enc, req.body, true);
  });
  peerWrite("PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
  const std::string cont = "HTTP/1.1 100 Continue\r\n\r\n";
  EXPECT_EQ(peerRead(cont.size()), cont);
  peerWrite("hello");
  const std::string expected = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
  EXPECT_EQ(peerRead(expected.size()), expected);
  Request r = request(0);
  EXPECT_FALSE(r.headers.has("expect")); // answered here, not forwarded
  EXPECT_EQ(r.body, "hello");
}

TEST_P(CodecTest, NoContinueWithoutABodyOrForHttp10) {
  start([](http::StreamEncoder& enc, const Request&) {
    enc.encodeHeaders(headers({{":status", "200"}, {"content-length", "0"}}), true);
  });
  // No body to wait for.
  peerWrite("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n");
  std::string expected = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
  EXPECT_EQ(peerRead(expected.size()), expected);
  // An HTTP/1.0 client does not know 100 (RFC 9110 10.1.1: ignore the expectation).
  peerWrite(
      "POST / HTTP/1.0\r\nConnection: keep-alive\r\nExpect: 100-continue\r\nContent-Length: 2\r\n"
      "\r\nhi");
  expected = "HTTP/1.0 200 OK\r\ncontent-length: 0\r\nconnection: keep-alive\r\n\r\n";
  EXPECT_EQ(peerRead(expected.size()), expected);
  EXPECT_TRUE(peerQuiet());
}

TEST_P(CodecTest, RequestConnectionCloseClosesAfterResponse) {
  start([](http::StreamEncoder& enc, const Request&) {
    enc.encodeHeaders(headers({{":status", "200"}, {"content-length", "2"}}), false);
    sendData(enc, "ok", true);
  });
  peerWrite("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(peerReadToEof(), "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
}

TEST_P(CodecTest, PipelinedRequestsAreAnsweredInOrder) {
  start([](http::StreamEncoder& enc, const Request& req) {
    std::string body(req.headers.path());
    enc.encodeHeaders(headers({{":status", "200"}, {"content-length", std::to_string(body.size())}}),
                      false);
    sendData(enc, body, true);
  });
  std::string in;
  for (int i = 0; i < 5; i++) absl::StrAppend(&in, "GET /", i, " HTTP/1.1\r\nHost: h\r\n\r\n");
  absl::StrAppend(&in, "POST /body HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "3\r\nabc\r\n0\r\n\r\n");
  peerWrite(in);
  std::string expected;
  for (int i = 0; i < 5; i++) absl::StrAppend(&expected, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n/", i);
  absl::StrAppend(&expected, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n/body");
  EXPECT_EQ(peerRead(expected.size()), expected);
  EXPECT_EQ(streamCount(), 6u);
  EXPECT_EQ(request(5).body, "abc");
}

TEST_P(CodecTest, PipelinedRequestWaitsForTheResponseBeforeIt) {
  // Respond later (from the test), not from inside the decoder. `pending` is only
  // touched on the dispatcher.
  std::vector<http::StreamEncoder*> pending;
  start([&](http::StreamEncoder& enc, const Request&) { pending.push_back(&enc); });
  peerWrite("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(test::waitFor([&] { return streamCount() == 1; }));
  EXPECT_TRUE(peerQuiet());
  EXPECT_EQ(streamCount(), 1u) << "the second request must wait for the first response";
  ASSERT_TRUE(run([&] {
    ASSERT_EQ(pending.size(), 1u);
    pending[0]->encodeHeaders(headers({{":status", "200"}, {"content-length", "0"}}), true);
  }));
  const std::string one = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
  EXPECT_EQ(peerRead(one.size()), one);
  ASSERT_TRUE(test::waitFor([&] { return streamCount() == 2; }));
  EXPECT_EQ(request(1).headers.path(), "/2");
  ASSERT_TRUE(run([&] {
    ASSERT_EQ(pending.size(), 2u);
    pending[1]->encodeHeaders(headers({{":status", "200"}, {"content-length", "0"}}), true);
  }));
  EXPECT_EQ(peerRead(one.size()), one);
}

TEST_P(CodecTest, EarlyResponseDiscardsTheRestOfTheBodyAndKeepsTheConnection) {
  // A reply before the body arrived: the rest of the body (its length is known) is read
  // and dropped, and the next request on the connection is served normally.
  start(
      [](http::StreamEncoder& enc, const Request&) {
        enc.encodeHeaders(headers({{":status", "413"}, {"content-length", "0"}}), true);
      },
      /*respond_at_headers=*/true);
  const std::string resp = "HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n";
  peerWrite("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nabc");
  EXPECT_EQ(peerRead(resp.size()), resp);
  peerWrite(std::string(97, 'x') + "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(peerRead(resp.size()), resp);
  ASSERT_TRUE(test::waitFor([&] { return streamCount() == 2; }));
  EXPECT_EQ(request(1).headers.path(), "/2");
}

TEST_P(CodecTest, BadRequest400) {
  start([](http::StreamEncoder&, const Request&) { FAIL() << "no stream expected"; });
  peerWrite("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
  std::string got = peerReadToEof();
  EXPECT_THAT(got, StartsWith("HTTP/1.1 400 Bad Request\r\n"));
  EXPECT_THAT(got, HasSubstr("\r\nconnection: close\r\n"));
  EXPECT_THAT(got, HasSubstr("duplicate host"));
  EXPECT_EQ(streamCount(), 0u);
}

TEST_P(CodecTest, SmugglingAttemptIs400AndNothingIsForwarded) {
  start([](http::StreamEncoder&, const Request&) { FAIL() << "no stream expected"; });
  peerWrite(
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
      "0\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\n\r\n");
  std::string got = peerReadToEof();
  EXPECT_THAT(got, StartsWith("HTTP/1.1 400 Bad Request\r\n"));
  EXPECT_THAT(got, HasSubstr("\r\nconnection: close\r\n"));
  EXPECT_EQ(streamCount(), 0u);
}

TEST_P(CodecTest, TooManyHeaders431) {
  start([](http::StreamEncoder&, const Request&) { FAIL() << "no stream expected"; });
  std::string many = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 101; i++) absl::StrAppend(&many, "X-", i, ": v\r\n");
  peerWrite(many + "\r\n");
  std::string got = peerReadToEof();
  EXPECT_THAT(got, StartsWith("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
  EXPECT_THAT(got, HasSubstr("\r\nconnection: close\r\n"));
  EXPECT_EQ(streamCount(), 0u);
}

TEST_P(CodecTest, UnknownTransferCoding501) {
  start([](http::StreamEncoder&, const Request&) { FAIL() << "no stream expected"; });
  peerWrite("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n");
  std::string got = peerReadToEof();
  EXPECT_THAT(got, StartsWith("HTTP/1.1 501 Not Implemented\r\n"));
  EXPECT_THAT(got, HasSubstr("\r\nconnection: close\r\n"));
}

TEST_P(CodecTest, ErrorInAPipelinedRequestAfterAGoodOne) {
  start([](http::StreamEncoder& enc, const Request&) {
    enc.encodeHeaders(headers({{":status", "200"}, {"content-length", "0"}}), true);
  });
  peerWrite(kGet + "GET / HTTP/1.1\r\nHost: h\r\nBad Header: x\r\n\r\n");
  std::string got = peerReadToEof();
  EXPECT_THAT(got, StartsWith("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\nHTTP/1.1 400 Bad Request\r\n"));
  EXPECT_THAT(got, HasSubstr("\r\nconnection: close\r\n"));
  EXPECT_EQ(streamCount(), 1u);
}

TEST_P(CodecTest, BodyIsDeliveredAndTrailersEndIt) {
  start([](http::StreamEncoder& enc, const Request&) {
    enc.encodeHeaders(headers({{":status", "200"}, {"content-length", "0"}}), true);
  });
  peerWrite(
      "POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
  ASSERT_TRUE(test::waitFor([&] { return request(0).body == "hello"; }));
  EXPECT_FALSE(request(0).complete);
  peerWrite("6\r\n world\r\n0\r\nx-sum: 1\r\n\r\n");
  const std::string expected = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
  EXPECT_EQ(peerRead(expected.size()), expected);
  Request r = request(0);
  EXPECT_EQ(r.body, "hello world");
  EXPECT_TRUE(r.has_trailers);
  EXPECT_TRUE(r.complete);
}

// --- HTTP/1.1 -> HTTP/2 upgrade (h2c) ----------------------------------------------------

const std::string kH2cFields =
    "Connection: keep-alive, Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
    "HTTP2-Settings: AAMAAABkAARAAAAA\r\n";
const std::string kClientPreface("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);

Responder okResponder() {
  return [](http::StreamEncoder& enc, const Request&) {
    enc.encodeHeaders(headers({{":status", "200"}, {"content-length", "2"}}), false);
    sendData(enc, "ok", true);
  };
}

TEST_P(CodecTest, H2cUpgradeIsHeldForTheOwnerWithTheBytesAfterIt) {
  h2c_ = true;
  start(okResponder());
  // The client's preface may follow the head in the same read.
  peerWrite("GET /up HTTP/1.1\r\nHost: h\r\n" + kH2cFields + "\r\n" + kClientPreface);
  const std::string expected =
      "HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n";
  EXPECT_EQ(peerRead(expected.size()), expected);
  peerWrite("more");
  ASSERT_TRUE(test::waitFor([&] {
    std::string rest;
    run([&] { rest = filter_->h2c_rest_; });
    return rest == kClientPreface + "more";
  }));
  EXPECT_EQ(streamCount(), 0u); // no HTTP/1 stream: the request is the owner's now
  ASSERT_TRUE(run([&] {
    ASSERT_NE(filter_->upgraded_, nullptr);
    const http::HeaderMap& h = *filter_->upgraded_;
    EXPECT_EQ(h.method(), "GET");
    EXPECT_EQ(h.path(), "/up");
    EXPECT_EQ(h.getView(":authority"), "h");
    EXPECT_EQ(h.getView("http2-settings"), "AAMAAABkAARAAAAA");
  }));
  EXPECT_TRUE(peerQuiet());
}

TEST_P(CodecTest, H2cUpgradeNotEnabledIsServedAsHttp11WithoutItsFields) {
  start(okResponder());
  peerWrite("GET /up HTTP/1.1\r\nHost: h\r\n" + kH2cFields + "X-A: b\r\n\r\n");
  const std::string expected = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
  EXPECT_EQ(peerRead(expected.size()), expected);
  Request r = request(0);
  EXPECT_FALSE(r.headers.has("upgrade"));
  EXPECT_FALSE(r.headers.has("http2-settings"));
  EXPECT_EQ(r.headers.getView("connection"), "keep-alive"); // its other options stay
  EXPECT_EQ(r.headers.getView("x-a"), "b");
  EXPECT_TRUE(r.complete);
  EXPECT_TRUE(peerQuiet()); // kept alive
}

TEST_P(CodecTest, H2cUpgradeWithABodyIsServedAsHttp11) {
  h2c_ = true;
  start(okResponder());
  peerWrite("POST /up HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAA\r\nContent-Length: 5\r\n\r\nhello" +
            kGet);
  const std::string one = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
  EXPECT_EQ(peerRead(2 * one.size()), one + one); // and the next request after it
  Request r = request(0);
  EXPECT_EQ(r.body, "hello");
  EXPECT_FALSE(r.headers.has("upgrade"));
  EXPECT_FALSE(r.headers.has("http2-settings"));
  EXPECT_FALSE(r.headers.has("connection"));
  ASSERT_TRUE(run([&] { EXPECT_EQ(filter_->upgraded_, nullptr); }));
}

} // namespace
} // namespace http1
} // namespace tern
