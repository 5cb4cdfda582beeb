// http2::ServerConnection and http2::ClientConnection over a real AF_UNIX socket pair, on a
// running dispatcher of either IO model. Three set-ups:
//  - ServerTest (and FloodTest): our server codec; the peer is a hand-written HTTP/2 client
//    on the test thread (frames built byte by byte, header blocks through nghttp2's HPACK
//    coder), so it can send what a real client never would and see exactly what we send;
//  - ClientTest: our client codec against a hand-written server, the same way;
//  - PairTest: our client codec talking to our server codec.
// Waiting is always for an event, up to a generous deadline; nothing asserts durations.
// Every call into a codec or a connection happens on the dispatcher (runSync).
#include "extensions/codecs/http2/codec_impl.h"

#include <fcntl.h>
#include <nghttp2/nghttp2.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "source/common/network/connection_impl.h"
#include "test/test_common/dispatcher_harness.h"
#include "test/test_common/test_upstream.h"

namespace tern {
namespace http2 {
namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;
using testing::ElementsAre;
using testing::Pair;

const std::string kPreface("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);

http::HeaderMap headers(const Fields& fields) {
  http::HeaderMap h;
  for (const auto& [k, v] : fields) h.add(k, v);
  return h;
}

Fields fieldsOf(const http::HeaderMap& h) {
  Fields out;
  for (const auto& [k, v] : h.entries()) out.emplace_back(std::string(k), std::string(v));
  return out;
}

std::string get(const Fields& f, const std::string& name) {
  for (const auto& [k, v] : f) {
    if (k == name) return v;
  }
  return "<absent>";
}

bool has(const Fields& f, const std::string& name) { return get(f, name) != "<absent>"; }

Fields request(const std::string& method = "GET", const std::string& path = "/") {
  return {{":method", method}, {":scheme", "http"}, {":authority", "h"}, {":path", path}};
}

void sendData(http::StreamEncoder& enc, const std::string& s, bool end_stream) {
  buffer::Buffer b;
  b.add(s);
  enc.encodeData(b, end_stream);
}

// --- The wire, by hand ----------------------------------------------------------------

std::string u32(uint32_t v) {
  return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
}

std::string frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
  std::string h{static_cast<char>(payload.size() >> 16), static_cast<char>(payload.size() >> 8),
                static_cast<char>(payload.size()), static_cast<char>(type),
                static_cast<char>(flags)};
  return h + u32(stream) + payload;
}

std::string settings(const std::vector<std::pair<uint16_t, uint32_t>>& entries = {}) {
  std::string p;
  for (const auto& [id, v] : entries) {
    p.push_back(static_cast<char>(id >> 8));
    p.push_back(static_cast<char>(id));
    p += u32(v);
  }
  return frame(NGHTTP2_SETTINGS, 0, 0, p);
}
std::string settingsAck() { return frame(NGHTTP2_SETTINGS, NGHTTP2_FLAG_ACK, 0, ""); }
std::string data(uint32_t stream, const std::string& bytes, bool end) {
  return frame(NGHTTP2_DATA, end ? NGHTTP2_FLAG_END_STREAM : 0, stream, bytes);
}
std::string rst(uint32_t stream, uint32_t code) { return frame(NGHTTP2_RST_STREAM, 0, stream, u32(code)); }
std::string ping(uint64_t opaque, bool ack = false) {
  std::string p(8, '\0');
  memcpy(&p[0], &opaque, 8);
  return frame(NGHTTP2_PING, ack ? NGHTTP2_FLAG_ACK : 0, 0, p);
}
std::string goaway(uint32_t last, uint32_t code) { return frame(NGHTTP2_GOAWAY, 0, 0, u32(last) + u32(code)); }

struct Frame {
  uint8_t type{0};
  uint8_t flags{0};
  uint32_t stream{0};
  std::string payload;
  Fields headers; // HEADERS (with its CONTINUATIONs), decoded

  bool endStream() const { return (flags & NGHTTP2_FLAG_END_STREAM) != 0; }
  uint32_t code() const { // RST_STREAM and GOAWAY
    size_t at = type == NGHTTP2_GOAWAY ? 4 : 0;
    if (payload.size() < at + 4) return 0xffffffff;
    auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(payload[at + i])); };
    return b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
  }
  uint32_t lastStream() const { // GOAWAY
    Frame f = *this;
    f.type = NGHTTP2_RST_STREAM;
    return f.code() & 0x7fffffff;
  }
};

bool isGoAway(const Frame& f) { return f.type == NGHTTP2_GOAWAY; }

// For failure messages: the frames a peer saw.
std::string describe(const std::vector<Frame>& frames) {
  std::string out;
  for (const Frame& f : frames) {
    absl::StrAppend(&out, "type=", f.type, " flags=", f.flags, " stream=", f.stream,
                    " len=", f.payload.size());
    if (f.type == NGHTTP2_GOAWAY || f.type == NGHTTP2_RST_STREAM) absl::StrAppend(&out, " code=", f.code());
    for (const auto& [k, v] : f.headers) absl::StrAppend(&out, " ", k, ":", v);
    out += "\n";
  }
  return out;
}

// One side of an HTTP/2 connection on a blocking socket, driven by the test thread.
class RawPeer {
public:
  explicit RawPeer(int fd) : fd_(fd) {
    nghttp2_hd_deflate_new(&deflater_, 4096);
    nghttp2_hd_inflate_new(&inflater_);
  }
  ~RawPeer() {
    nghttp2_hd_deflate_del(deflater_);
    nghttp2_hd_inflate_del(inflater_);
  }

  bool send(const std::string& bytes) {
    size_t at = 0;
    while (at < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      at += n;
    }
    return true;
  }

  // Sends without waiting; false once the socket is full (or closed). For floods, where
  // the other side stops reading once it has had enough.
  bool trySend(const std::string& bytes) {
    size_t at = 0;
    while (at < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      at += n;
    }
    return true;
  }

  // Everything sent before has been processed once the answer to this PING arrives.
  void sync() {
    static uint64_t next = 1000;
    uint64_t id = next++;
    ASSERT_TRUE(send(ping(id)));
    std::string expect = ping(id, true).substr(9);
    ASSERT_TRUE(waitFor([&](const Frame& f) {
      return f.type == NGHTTP2_PING && (f.flags & NGHTTP2_FLAG_ACK) && f.payload == expect;
    }));
  }

  // A header block exactly as given: no checks, so tests can send what nghttp2 would not.
  std::string block(const Fields& fields) {
    std::vector<nghttp2_nv> nva;
    for (const auto& [k, v] : fields) {
      nva.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(k.data())),
                     reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), k.size(), v.size(),
                     NGHTTP2_NV_FLAG_NONE});
    }
    std::string out(nghttp2_hd_deflate_bound(deflater_, nva.data(), nva.size()), '\0');
    ssize_t n = nghttp2_hd_deflate_hd(deflater_, reinterpret_cast<uint8_t*>(&out[0]), out.size(),
                                      nva.data(), nva.size());
    out.resize(n < 0 ? 0 : n);
    return out;
  }
  std::string headers(uint32_t stream, const Fields& fields, bool end_stream) {
    return frame(NGHTTP2_HEADERS,
                 NGHTTP2_FLAG_END_HEADERS | (end_stream ? NGHTTP2_FLAG_END_STREAM : 0), stream,
                 block(fields));
  }

  bool readExact(size_t n, std::string& out) {
    while (buf_.size() < n) {
      char tmp[65536];
      ssize_t r = recv(fd_, tmp, sizeof(tmp), 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        eof_ = r == 0 || errno == ECONNRESET;
        return false;
      }
      buf_.append(tmp, r);
    }
    out = buf_.substr(0, n);
    buf_.erase(0, n);
    return true;
  }

  // The next frame (CONTINUATIONs folded into their HEADERS), or nullopt at EOF or after the
  // socket's 10 s timeout.
  std::optional<Frame> next() {
    std::string hd;
    if (!readExact(9, hd)) return std::nullopt;
    Frame f;
    size_t len = static_cast<uint8_t>(hd[0]) << 16 | static_cast<uint8_t>(hd[1]) << 8 |
                 static_cast<uint8_t>(hd[2]);
    f.type = hd[3];
    f.flags = hd[4];
    f.stream = (static_cast<uint8_t>(hd[5]) << 24 | static_cast<uint8_t>(hd[6]) << 16 |
                static_cast<uint8_t>(hd[7]) << 8 | static_cast<uint8_t>(hd[8])) &
               0x7fffffff;
    if (!readExact(len, f.payload)) return std::nullopt;
    if (f.type == NGHTTP2_HEADERS) {
      std::string fragment = f.payload;
      size_t pad = 0;
      if (f.flags & NGHTTP2_FLAG_PADDED) {
        pad = static_cast<uint8_t>(fragment[0]);
        fragment.erase(0, 1);
      }
      if (f.flags & NGHTTP2_FLAG_PRIORITY) fragment.erase(0, 5);
      fragment.resize(fragment.size() - pad);
      bool end_headers = f.flags & NGHTTP2_FLAG_END_HEADERS;
      while (!end_headers) {
        std::optional<Frame> c = next();
        if (!c || c->type != NGHTTP2_CONTINUATION) return std::nullopt;
        fragment += c->payload;
        end_headers = c->flags & NGHTTP2_FLAG_END_HEADERS;
      }
      if (!inflate(fragment, f.headers)) return std::nullopt;
    }
    seen_.push_back(f);
    return f;
  }

  // Reads frames until one matches.
  std::optional<Frame> waitFor(const std::function<bool(const Frame&)>& pred) {
    for (;;) {
      std::optional<Frame> f = next();
      if (!f || pred(*f)) return f;
    }
  }
  // Reads everything up to EOF; whether EOF came (not a timeout).
  bool drainToEof() {
    while (next()) {
    }
    return eof_;
  }

  // As a client: preface and SETTINGS, then our side's SETTINGS acknowledged.
  void clientHandshake(const std::vector<std::pair<uint16_t, uint32_t>>& entries = {}) {
    ASSERT_TRUE(send(kPreface + settings(entries)));
    ASSERT_TRUE(waitFor([](const Frame& f) {
      return f.type == NGHTTP2_SETTINGS && !(f.flags & NGHTTP2_FLAG_ACK);
    }));
    ASSERT_TRUE(send(settingsAck()));
  }
  // As a server: the client's preface, then SETTINGS both ways.
  void serverHandshake(const std::vector<std::pair<uint16_t, uint32_t>>& entries = {}) {
    std::string magic;
    ASSERT_TRUE(readExact(24, magic));
    ASSERT_EQ(magic, kPreface);
    ASSERT_TRUE(send(settings(entries)));
    ASSERT_TRUE(waitFor([](const Frame& f) {
      return f.type == NGHTTP2_SETTINGS && !(f.flags & NGHTTP2_FLAG_ACK);
    }));
    ASSERT_TRUE(send(settingsAck()));
  }

  std::vector<Frame> seen_;
  bool eof_{false};

private:
  bool inflate(const std::string& block, Fields& out) {
    const uint8_t* in = reinterpret_cast<const uint8_t*>(block.data());
    size_t left = block.size();
    for (;;) {
      nghttp2_nv nv;
      int flags = 0;
      ssize_t n = nghttp2_hd_inflate_hd2(inflater_, &nv, &flags, in, left, 1);
      if (n < 0) return false;
      in += n;
      left -= n;
      if (flags & NGHTTP2_HD_INFLATE_EMIT) {
        out.emplace_back(std::string(reinterpret_cast<char*>(nv.name), nv.namelen),
                         std::string(reinterpret_cast<char*>(nv.value), nv.valuelen));
      }
      if (flags & NGHTTP2_HD_INFLATE_FINAL) {
        nghttp2_hd_inflate_end_headers(inflater_);
        return true;
      }
      if (!(flags & NGHTTP2_HD_INFLATE_EMIT) && left == 0) return true;
    }
  }

  int fd_;
  std::string buf_;
  nghttp2_hd_deflater* deflater_{nullptr};
  nghttp2_hd_inflater* inflater_{nullptr};
};

// --- Our side: stand-ins for the connection manager and the connection pool -----------------

// A request as our server's owner sees it.
struct ServerStream : public http::StreamDecoder, public http::StreamCallbacks {
  http::StreamEncoder* encoder{nullptr};
  Fields headers;
  std::string body;
  Fields trailers;
  bool has_trailers{false};
  bool complete{false};
  std::vector<http::StreamResetReason> resets;
  std::function<void(ServerStream&)> on_headers;
  std::function<void(ServerStream&)> on_complete;

  void decodeHeaders(http::HeaderMapPtr h, bool end_stream) override {
    headers = fieldsOf(*h);
    if (on_headers) on_headers(*this);
    if (end_stream) done();
  }
  void decodeData(buffer::Buffer& d, bool end_stream) override {
    body += d.toString();
    d.drain(d.length());
    if (end_stream) done();
  }
  void decodeTrailers(http::HeaderMapPtr t) override {
    trailers = fieldsOf(*t);
    has_trailers = true;
    done();
  }
  void onResetStream(http::StreamResetReason r) override {
    resets.push_back(r);
    encoder = nullptr;
  }
  void done() {
    complete = true;
    if (on_complete && encoder) on_complete(*this);
  }
  // Answers with a status and a body, then lets the codec free the stream.
  void respond(const std::string& status, const std::string& body_out, Fields extra = {}) {
    Fields h = {{":status", status}};
    h.insert(h.end(), extra.begin(), extra.end());
    encoder->encodeHeaders(http2::headers(h), body_out.empty());
    if (!body_out.empty()) sendData(*encoder, body_out, true);
    encoder->removeCallbacks(*this);
  }
};

// The owner of a ServerConnection: reads to dispatch(), connection events forwarded, a
// dispatch() error closes after the GOAWAY is flushed.
class ServerFilter : public network::ReadFilter,
                     public network::ConnectionCallbacks,
                     public http::ServerConnectionCallbacks,
                     public ConnectionCallbacks {
public:
  explicit ServerFilter(Settings settings) : settings_(settings) {}

  network::FilterStatus onNewConnection() override {
    connection_->addConnectionCallbacks(*this);
    codec_ = std::make_unique<ServerConnection>(*connection_, *this, settings_);
    codec_->setConnectionCallbacks(*this);
    return network::FilterStatus::Continue;
  }
  network::FilterStatus onData(buffer::Buffer& d, bool end_stream) override {
    absl::Status st = codec_->dispatch(d);
    if (!st.ok()) {
      errors_.push_back(st);
      connection_->close(network::ConnectionCloseType::FlushWrite);
      return network::FilterStatus::StopIteration;
    }
    if (end_stream) codec_->onPeerClosed();
    return network::FilterStatus::StopIteration;
  }
  void initializeReadFilterCallbacks(network::ReadFilterCallbacks& cb) override {
    connection_ = &cb.connection();
  }
  void onEvent(network::ConnectionEvent e) override {
    if (e == network::ConnectionEvent::Connected) return;
    closed_ = true;
    codec_->onConnectionClosed();
  }
  void onBelowWriteBufferLowWatermark() override { codec_->onBelowWriteBufferLowWatermark(); }

  http::StreamDecoder& newStream(http::StreamEncoder& encoder) override {
    streams_.push_back(std::make_unique<ServerStream>());
    ServerStream& s = *streams_.back();
    s.encoder = &encoder;
    s.on_headers = on_headers_;
    s.on_complete = on_complete_;
    encoder.addCallbacks(s);
    return s;
  }
  void onGoAway(uint32_t code) override { goaways_.push_back(code); }

  Settings settings_;
  std::function<void(ServerStream&)> on_headers_;
  std::function<void(ServerStream&)> on_complete_;
  network::Connection* connection_{nullptr};
  std::unique_ptr<ServerConnection> codec_;
  std::vector<std::unique_ptr<ServerStream>> streams_;
  std::vector<absl::Status> errors_;
  std::vector<uint32_t> goaways_;
  bool closed_{false};
};

// A response as our client's owner sees it.
struct ClientStream : public http::StreamDecoder, public http::StreamCallbacks {
  http::StreamEncoder* encoder{nullptr};
  std::vector<Fields> informational;
  Fields headers;
  std::string body;
  Fields trailers;
  bool complete{false};
  std::vector<http::StreamResetReason> resets;
  int above{0};
  int below{0};
  std::function<void()> on_below;

  void decode1xxHeaders(http::HeaderMapPtr h) override { informational.push_back(fieldsOf(*h)); }
  void decodeHeaders(http::HeaderMapPtr h, bool end_stream) override {
    headers = fieldsOf(*h);
    if (end_stream) done();
  }
  void decodeData(buffer::Buffer& d, bool end_stream) override {
    body += d.toString();
    d.drain(d.length());
    if (end_stream) done();
  }
  void decodeTrailers(http::HeaderMapPtr t) override {
    trailers = fieldsOf(*t);
    done();
  }
  void onResetStream(http::StreamResetReason r) override {
    resets.push_back(r);
    encoder = nullptr;
  }
  void onAboveWriteBufferHighWatermark() override { above++; }
  void onBelowWriteBufferLowWatermark() override {
    below++;
    if (on_below) on_below();
  }
  void done() { complete = true; }
};

class ClientFilter : public network::ReadFilter,
                     public network::ConnectionCallbacks,
                     public ConnectionCallbacks {
public:
  explicit ClientFilter(Settings settings) : settings_(settings) {}

  network::FilterStatus onNewConnection() override {
    connection_->addConnectionCallbacks(*this);
    codec_ = std::make_unique<ClientConnection>(*connection_, settings_);
    codec_->setConnectionCallbacks(*this);
    return network::FilterStatus::Continue;
  }
  network::FilterStatus onData(buffer::Buffer& d, bool end_stream) override {
    absl::Status st = codec_->dispatch(d);
    if (!st.ok()) {
      errors_.push_back(st);
      connection_->close(network::ConnectionCloseType::FlushWrite);
      return network::FilterStatus::StopIteration;
    }
    if (end_stream) codec_->onPeerClosed();
    return network::FilterStatus::StopIteration;
  }
  void initializeReadFilterCallbacks(network::ReadFilterCallbacks& cb) override {
    connection_ = &cb.connection();
  }
  void onEvent(network::ConnectionEvent e) override {
    if (e == network::ConnectionEvent::Connected) return;
    closed_ = true;
    codec_->onConnectionClosed();
  }
  void onBelowWriteBufferLowWatermark() override { codec_->onBelowWriteBufferLowWatermark(); }
  void onGoAway(uint32_t code) override { goaways_.push_back(code); }

  ClientStream& start(const Fields& h, bool end_stream) {
    streams_.push_back(std::make_unique<ClientStream>());
    ClientStream& s = *streams_.back();
    s.encoder = &codec_->newStream(s);
    s.encoder->addCallbacks(s);
    s.encoder->encodeHeaders(headers(h), end_stream);
    return s;
  }

  Settings settings_;
  network::Connection* connection_{nullptr};
  std::unique_ptr<ClientConnection> codec_;
  std::vector<std::unique_ptr<ClientStream>> streams_;
  std::vector<absl::Status> errors_;
  std::vector<uint32_t> goaways_;
  bool closed_{false};
};

// --- Fixtures ------------------------------------------------------------------------------

class Http2Test : public testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    harness_ = test::DispatcherHarness::create(GetParam());
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    a_ = fds[0];
    b_ = fds[1];
  }
  void TearDown() override {
    EXPECT_TRUE(run([this] {
      conn_a_.reset();
      conn_b_.reset();
      server_.reset();
      client_.reset();
    }));
    harness_->stop();
    if (peer_fd_ >= 0) close(peer_fd_);
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

  static void nonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }
  static void blockingWithTimeout(int fd) {
    timeval tv{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  }
  std::unique_ptr<network::ConnectionImpl> connect(int fd, std::shared_ptr<network::ReadFilter> f) {
    nonBlocking(fd);
    auto c = std::make_unique<network::ConnectionImpl>(harness_->dispatcher(), fd,
                                                       network::Address(), network::Address(),
                                                       std::make_unique<network::RawBufferSocket>(),
                                                       true);
    c->addReadFilter(std::move(f));
    EXPECT_TRUE(c->initializeReadFilters());
    return c;
  }

  // Our server on a_, a raw client peer on b_.
  void startServer(Settings settings = {}) {
    ASSERT_TRUE(run([&] {
      server_ = std::make_shared<ServerFilter>(settings);
      server_->on_headers_ = on_headers_;
      server_->on_complete_ = on_complete_;
      conn_a_ = connect(a_, server_);
    }));
    peer_fd_ = b_;
    blockingWithTimeout(peer_fd_);
    peer_ = std::make_unique<RawPeer>(peer_fd_);
  }
  // Our client on b_, a raw server peer on a_.
  void startClient(Settings settings = {}) {
    ASSERT_TRUE(run([&] {
      client_ = std::make_shared<ClientFilter>(settings);
      conn_b_ = connect(b_, client_);
    }));
    peer_fd_ = a_;
    blockingWithTimeout(peer_fd_);
    peer_ = std::make_unique<RawPeer>(peer_fd_);
  }
  // Both ours: server on a_, client on b_.
  void startPair(Settings server_settings = {}, Settings client_settings = {}) {
    ASSERT_TRUE(run([&] {
      server_ = std::make_shared<ServerFilter>(server_settings);
      server_->on_headers_ = on_headers_;
      server_->on_complete_ = on_complete_;
      conn_a_ = connect(a_, server_);
      client_ = std::make_shared<ClientFilter>(client_settings);
      conn_b_ = connect(b_, client_);
    }));
  }

  size_t serverStreams() {
    size_t n = 0;
    run([&] { n = server_->streams_.size(); });
    return n;
  }
  std::vector<absl::Status> serverErrors() {
    std::vector<absl::Status> e;
    run([&] { e = server_->errors_; });
    return e;
  }

  std::unique_ptr<test::DispatcherHarness> harness_;
  int a_{-1};
  int b_{-1};
  int peer_fd_{-1};
  std::unique_ptr<RawPeer> peer_;
  std::function<void(ServerStream&)> on_headers_;
  std::function<void(ServerStream&)> on_complete_;
  std::shared_ptr<ServerFilter> server_;
  std::shared_ptr<ClientFilter> client_;
  std::unique_ptr<network::ConnectionImpl> conn_a_;
  std::unique_ptr<network::ConnectionImpl> conn_b_;
};

using ServerTest = Http2Test;
using ClientTest = Http2Test;
using PairTest = Http2Test;

const auto kModels = testing::Values("worker_loops", "raw_epoll");
const auto kModelName = [](const testing::TestParamInfo<std::string>& p) { return p.param; };
INSTANTIATE_TEST_SUITE_P(IoModels, ServerTest, kModels, kModelName);
INSTANTIATE_TEST_SUITE_P(IoModels, ClientTest, kModels, kModelName);
INSTANTIATE_TEST_SUITE_P(IoModels, PairTest, kModels, kModelName);

// --- Preface detection ----------------------------------------------------------------

TEST(PrefaceTest, DetectsHttp2OnlyWithTheWholePreface) {
  auto check = [](const std::string& bytes) {
    buffer::Buffer b;
    b.add(bytes);
    return detectPreface(b);
  };
  EXPECT_EQ(check(""), PrefaceStatus::NeedMoreData);
  EXPECT_EQ(check("PRI * HTTP/2.0\r\n"), PrefaceStatus::NeedMoreData);
  EXPECT_EQ(check(kPreface.substr(0, 23)), PrefaceStatus::NeedMoreData);
  EXPECT_EQ(check(kPreface), PrefaceStatus::Http2);
  EXPECT_EQ(check(kPreface + settings()), PrefaceStatus::Http2);
  // HTTP/1 is known at the first byte that differs, long before 24 bytes.
  EXPECT_EQ(check("G"), PrefaceStatus::Http1);
  EXPECT_EQ(check("PRI / HTTP/1.1"), PrefaceStatus::Http1);
  EXPECT_EQ(check("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\r"), PrefaceStatus::Http1);
  // Split across slices of a buffer.
  buffer::Buffer split;
  buffer::Buffer tail;
  split.add(kPreface.substr(0, 10));
  tail.add(kPreface.substr(10));
  split.move(tail);
  EXPECT_TRUE(hasHttp2Preface(split));
}

// --- Server codec against a raw client ------------------------------------------------

TEST_P(ServerTest, SimpleGet) {
  on_complete_ = [](ServerStream& s) { s.respond("200", "hello", {{"x-a", "b"}}); };
  startServer();
  peer_->clientHandshake();
  ASSERT_TRUE(peer_->send(peer_->headers(1, request("GET", "/index"), true)));
  auto h = peer_->waitFor([](const Frame& f) { return f.type == NGHTTP2_HEADERS; });
  ASSERT_TRUE(h);
  EXPECT_EQ(h->stream, 1u);
  EXPECT_THAT(h->headers, ElementsAre(Pair(":status", "200"), Pair("x-a", "b")));
  EXPECT_FALSE(h->endStream());
  auto d = peer_->waitFor([](const Frame& f) { return f.type == NGHTTP2_DATA; });
  ASSERT_TRUE(d);
  EXPECT_EQ(d->payload, "hello");
  EXPECT_TRUE(d->endStream());
  ServerStream got;
  run([&] {
    got.headers = server_->streams_.at(0)->headers;
    got.complete = server_->streams_.at(0)->complete;
  });
  EXPECT_EQ(get(got.headers, ":method"), "GET");
  EXPECT_EQ(get(got.headers, ":path"), "/index");
  EXPECT_EQ(get(got.headers, ":authority"), "h");
  EXPECT_EQ(get(got.headers, ":scheme"), "http");
  EXPECT_TRUE(got.complete);
  bool idle = false;
  ASSERT_TRUE(until([&] { return server_->codec_->activeStreams() == 0; }));
  run([&] { idle = server_->codec_->connectionError() == 0 && !server_->closed_; });
  EXPECT_TRUE(idle);
}

TEST_P(ServerTest, PostWithBodyAndTrailersBothWays) {
  on_complete_ = [](ServerStream& s) {
    s.encoder->encodeHeaders(headers({{":status", "200"}}), false);
    sendData(*s.encoder, "got " + s.body, false);
    s.encoder->encodeTrailers(headers({{"grpc-status", "0"}, {"connection", "x"}}));
    s.encoder->removeCallbacks(s);
  };
  startServer();
  peer_->clientHandshake();
  std::string req = peer_->headers(1, request("POST", "/upload"), false);
  req += data(1, "abc", false) + data(1, "def", false);
  req += frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 1,
               peer_->block({{"x-checksum", "42"}}));
  ASSERT_TRUE(peer_->send(req));
  auto t = peer_->waitFor([](const Frame& f) { return f.type == NGHTTP2_HEADERS && f.endStream(); });
  ASSERT_TRUE(t);
  EXPECT_THAT(t->headers, ElementsAre(Pair("grpc-status", "0")));
  std::string body;
  int header_frames = 0;
  for (const Frame& f : peer_->seen_) {
    if (f.type == NGHTTP2_DATA && f.stream == 1) body += f.payload;
    if (f.type == NGHTTP2_HEADERS && f.stream == 1) header_frames++;
  }
  EXPECT_EQ(body, "got abcdef");
  EXPECT_EQ(header_frames, 2); // response headers, then trailers
  run([&] {
    const ServerStream& s = *server_->streams_.at(0);
    EXPECT_EQ(s.body, "abcdef");
    EXPECT_TRUE(s.has_trailers);
    EXPECT_THAT(s.trailers, ElementsAre(Pair("x-checksum", "42")));
  });
}

TEST_P(ServerTest, HostBecomesAuthorityCookiesJoinAndExpectIsAnswered) {
  on_complete_ = [](ServerStream& s) { s.respond("204", ""); };
  startServer();
  peer_->clientHandshake();
  Fields req = {{":method", "PUT"}, {":scheme", "http"}, {":path", "/f"}, {"host", "example.com"},
                {"cookie", "a=1"}, {"expect", "100-continue"}, {"cookie", "b=2"}};
  ASSERT_TRUE(peer_->send(peer_->headers(1, req, false)));
  // 100 comes before the body is sent, from the codec itself.
  auto cont = peer_->waitFor([](const Frame& f) { return f.type == NGHTTP2_HEADERS; });
  ASSERT_TRUE(cont);
  EXPECT_THAT(cont->headers, ElementsAre(Pair(":status", "100")));
  ASSERT_TRUE(peer_->send(data(1, "body", true)));
  auto resp = peer_->waitFor([](const Frame& f) { return f.type == NGHTTP2_HEADERS; });
  ASSERT_TRUE(resp);
  EXPECT_THAT(resp->headers, ElementsAre(Pair(":status", "204")));
  run([&] {
    const Fields& h = server_->streams_.at(0)->headers;
    EXPECT_EQ(get(h, ":authority"), "example.com");
    EXPECT_FALSE(has(h, "host"));
    EXPECT_EQ(get(h, "cookie"), "a=1; b=2");
    EXPECT_FALSE(has(h, "expect"));
    EXPECT_EQ(server_->streams_.at(0)->body, "body");
  });
}

TEST_P(ServerTest, ResponseHopByHopFieldsAreDropped) {
  on_complete_ = [](ServerStream& s) {
    s.respond("200", "", {{"connection", "keep-alive, x-hop"}, {"keep-alive", "timeout=5"},
                          {"proxy-connection", "keep-alive"}, {"transfer-encoding", "chunked"},
                          {"upgrade", "h2c"}, {"te", "gzip"}, {"x-hop", "1"}, {"x-a", "b"}});
  };
  startServer();
  peer_->clientHandshake();
  ASSERT_TRUE(peer_->send(peer_->headers(1, request(), true)));
  auto h = peer_->waitFor([](const Frame& f) { return f.type == NGHTTP2_HEADERS; });
  ASSERT_TRUE(h);
  EXPECT_THAT(h->headers, ElementsAre(Pair(":status", "200"), Pair("x-a", "b")));
}

TEST_P(ServerTest, ClientResetReachesTheOwner) {
  startServer();
  peer_->clientHandshake();
  ASSERT_TRUE(peer_->send(peer_->headers(1, request("POST"), false)));
  ASSERT_TRUE(until([&] { return server_->streams_.size() == 1; }));
  ASSERT_TRUE(peer_->send(rst(1, NGHTTP2_CANCEL)));
  ASSERT_TRUE(until([&] { return !server_->streams_[0]->resets.empty(); }));
  run([&] {
    EXPECT_THAT(server_->streams_[0]->resets, ElementsAre(http::StreamResetReason::RemoteReset));
    EXPECT_EQ(server_->codec_->activeStreams(), 0u);
  });
}

TEST_P(ServerTest, OwnerResetSendsCancel) {
  on_headers_ = [](ServerStream& s) {
    http::StreamEncoder* e = s.encoder;
    e->removeCallbacks(s);
    e->resetStream(http::StreamResetReason::LocalReset);
  };
  startServer();
  peer_->clientHandshake();
  ASSERT_TRUE(peer_->send(peer_->headers(1, request("POST"), false)));
  auto r = peer_->waitFor([](const Frame& f) { return f.type == NGHTTP2_RST_STREAM; });
  ASSERT_TRUE(r);
  EXPECT_EQ(r->stream, 1u);
  EXPECT_EQ(r->code(), static_cast<uint32_t>(NGHTTP2_CANCEL));
  // Body still in flight for the reset stream is dropped; the connection carries on.
  ASSERT_TRUE(peer_->send(data(1, "late", true)));
  run([&] {
    server_->on_headers_ = nullptr;
    server_->on_complete_ = [](ServerStream& s) { s.respond("200", "ok"); };
  });
  ASSERT_TRUE(peer_->send(peer_->headers(3, request(), true)));
  auto d = peer_->waitFor([](const Frame& f) { return f.type == NGHTTP2_DATA && f.stream == 3; });
  ASSERT_TRUE(d);
  EXPECT_EQ(d->payload, "ok");
}

TEST_P(ServerTest, UppercaseHeaderNameIsAConnectionErrorByDefault) {
  startServer();
  peer_->clientHandshake();
  Fields req = request();
  req.emplace_back("X-Upper", "1");
  ASSERT_TRUE(peer_->send(peer_->headers(1, req, true)));
  auto g = peer_->waitFor(isGoAway);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->code(), static_cast<uint32_t>(NGHTTP2_PROTOCOL_ERROR));
  EXPECT_TRUE(peer_->drainToEof());
  auto errors = serverErrors();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(serverStreams(), 0u);
}

TEST_P(ServerTest, MalformedRequestIsAStreamErrorWhenConfigured) {
  Settings s;
  s.stream_error_on_invalid_http_messaging = true;
  on_complete_ = [](ServerStream& st) { st.respond("200", "fine"); };
  startServer(s);
  peer_->clientHandshake();
  Fields upper = request();
  upper.emplace_back("X-Upper", "1");
  Fields conn_specific = request();
  conn_specific.emplace_back("connection", "close");
  Fields no_path = {{":method", "GET"}, {":scheme", "http"}, {":authority", "h"}};
  Fields two_methods = request();
  two_methods.emplace_back(":method", "POST");
  // One statement per block: the HPACK encoder is stateful, the order matters.
  std::string all = peer_->headers(1, upper, true);
  all += peer_->headers(3, conn_specific, true);
  all += peer_->headers(5, no_path, true);
  all += peer_->headers(7, two_methods, true);
  all += peer_->headers(9, request(), true);
  ASSERT_TRUE(peer_->send(all));
  auto d = peer_->waitFor([](const Frame& f) { return f.type == NGHTTP2_DATA && f.stream == 9; });
  ASSERT_TRUE(d) << describe(peer_->seen_);
  EXPECT_EQ(d->payload, "fine");
  std::vector<uint32_t> reset_streams;
  for (const Frame& f : peer_->seen_) {
    EXPECT_NE(f.type, NGHTTP2_GOAWAY);
    if (f.type == NGHTTP2_RST_STREAM) {
      EXPECT_EQ(f.code(), static_cast<uint32_t>(NGHTTP2_PROTOCOL_ERROR));
      reset_streams.push_back(f.stream);
    }
  }
  EXPECT_THAT(reset_streams, ElementsAre(1u, 3u, 5u, 7u));
  EXPECT_EQ(serverStreams(), 1u); // only the valid one reached the owner
}

TEST_P(ServerTest, BadPrefaceIsProtocolError) {
  startServer();
  ASSERT_TRUE(peer_->send("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
  auto g = peer_->waitFor(isGoAway);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->code(), static_cast<uint32_t>(NGHTTP2_PROTOCOL_ERROR));
  EXPECT_TRUE(peer_->drainToEof());
  ASSERT_EQ(serverErrors().size(), 1u);
}

TEST_P(ServerTest, DataBeyondTheConnectionWindowIsFlowControlError) {
  // Connection window left at the protocol's 65535, streams allowed more: one stream can
  // overrun the connection window.
  Settings s;
  s.initial_connection_window_size = 65535;
  s.initial_stream_window_size = 1 << 20;
  startServer(s);
  peer_->clientHandshake();
  ASSERT_TRUE(peer_->waitFor([](const Frame& f) {
    return f.type == NGHTTP2_SETTINGS && (f.flags & NGHTTP2_FLAG_ACK);
  }));
  // All of it in one read, so no WINDOW_UPDATE can be earned in between.
  ASSERT_TRUE(run([&] { conn_a_->readDisable(true); }));
  std::string burst = peer_->headers(1, request("POST"), false);
  for (int i = 0; i < 5; i++) burst += data(1, std::string(16384, 'x'), false);
  ASSERT_TRUE(peer_->send(burst));
  ASSERT_TRUE(run([&] { conn_a_->readDisable(false); }));
  auto g = peer_->waitFor(isGoAway);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->code(), static_cast<uint32_t>(NGHTTP2_FLOW_CONTROL_ERROR));
  EXPECT_TRUE(peer_->drainToEof());
  ASSERT_EQ(serverErrors().size(), 1u);
}

TEST_P(ServerTest, OversizedFrameIsFrameSizeError) {
  startServer();
  peer_->clientHandshake();
  ASSERT_TRUE(peer_->send(peer_->headers(1, request("POST"), false) +
                          data(1, std::string(16385, 'x'), false)));
  auto g = peer_->waitFor(isGoAway);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->code(), static_cast<uint32_t>(NGHTTP2_FRAME_SIZE_ERROR));
  EXPECT_TRUE(peer_->drainToEof());
  ASSERT_EQ(serverErrors().size(), 1u);
}

TEST_P(ServerTest, GarbageHeaderBlockIsCompressionError) {
  startServer();
  peer_->clientHandshake();
  // An indexed field far beyond both tables.
  ASSERT_TRUE(peer_->send(frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM,
                                1, "\xff\xff\xff\xff\x0f")));
  auto g = peer_->waitFor(isGoAway);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->code(), static_cast<uint32_t>(NGHTTP2_COMPRESSION_ERROR));
  EXPECT_TRUE(peer_->drainToEof());
}

// Floods: the peer sends frames that each make us queue an answer, and never reads.
class FloodTest : public Http2Test {
protected:
  void startTight(Settings s) {
    // A small socket buffer on our side, so our answers pile up in the connection.
    int small = 4096;
    setsockopt(a_, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    startServer(s);
  }
  void expectCalmDown() {
    auto g = peer_->waitFor(isGoAway);
    ASSERT_TRUE(g);
    EXPECT_EQ(g->code(), static_cast<uint32_t>(NGHTTP2_ENHANCE_YOUR_CALM));
    EXPECT_TRUE(peer_->drainToEof());
  }
};
INSTANTIATE_TEST_SUITE_P(IoModels, FloodTest, kModels, kModelName);

TEST_P(FloodTest, PingFlood) {
  Settings s;
  s.max_outbound_control_frames = 100;
  startTight(s);
  peer_->clientHandshake();
  std::string pings;
  for (int i = 0; i < 50; i++) pings += ping(i);
  // Stop once our side gave up (the socket closes under us).
  for (int i = 0; i < 400 && peer_->trySend(pings); i++) {
  }
  expectCalmDown();
  auto errors = serverErrors();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].code(), absl::StatusCode::kResourceExhausted);
}

TEST_P(FloodTest, SettingsFlood) {
  Settings s;
  s.max_outbound_control_frames = 100;
  startTight(s);
  peer_->clientHandshake();
  std::string many;
  for (int i = 0; i < 50; i++) many += settings({{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}});
  for (int i = 0; i < 400 && peer_->trySend(many); i++) {
  }
  expectCalmDown();
  EXPECT_EQ(serverErrors().size(), 1u);
}

TEST_P(FloodTest, SmallDataFramesToAPeerThatDoesNotRead) {
  // Not control frames, and not a reaction to anything the peer sends: only our count of
  // frames waiting in the connection catches this.
  Settings s;
  s.max_outbound_frames = 100;
  ServerStream* held = nullptr;
  on_complete_ = [&](ServerStream& st) { held = &st; };
  startTight(s);
  peer_->clientHandshake();
  ASSERT_TRUE(peer_->send(peer_->headers(1, request(), true)));
  ASSERT_TRUE(until([&] { return held != nullptr; }));
  // One frame per call (outside dispatch each call is sent at once).
  run([&] {
    held->encoder->encodeHeaders(headers({{":status", "200"}}), false);
    for (int i = 0; i < 400 && held->encoder != nullptr; i++) {
      sendData(*held->encoder, "0123456789", false);
    }
  });
  ASSERT_TRUE(until([&] { return server_->codec_->connectionError() != 0; }));
  expectCalmDown();
  // The error was found while sending, not in dispatch(): the codec closed by itself.
  ASSERT_TRUE(until([&] { return server_->closed_; }));
  EXPECT_EQ(serverErrors().size(), 0u);
  run([&] {
    EXPECT_EQ(server_->codec_->connectionError(), static_cast<uint32_t>(NGHTTP2_ENHANCE_YOUR_CALM));
  });
}

TEST_P(ServerTest, RapidResetEndsTheConnection) {
  startServer(); // max_concurrent_streams 100: more than 200 resets trip it
  peer_->clientHandshake();
  std::string burst;
  for (uint32_t i = 0; i < 300; i++) {
    burst += peer_->headers(2 * i + 1, request("POST"), false);
    burst += rst(2 * i + 1, NGHTTP2_CANCEL);
  }
  peer_->send(burst);
  auto g = peer_->waitFor(isGoAway);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->code(), static_cast<uint32_t>(NGHTTP2_ENHANCE_YOUR_CALM));
  EXPECT_TRUE(peer_->drainToEof());
  auto errors = serverErrors();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].code(), absl::StatusCode::kResourceExhausted);
  EXPECT_LE(serverStreams(), 202u);
}

TEST_P(ServerTest, SomeResetsAreFine) {
  on_complete_ = [](ServerStream& s) { s.respond("200", "ok"); };
  startServer();
  peer_->clientHandshake();
  std::string burst;
  for (uint32_t i = 0; i < 150; i++) {
    burst += peer_->headers(2 * i + 1, request("POST"), false);
    burst += rst(2 * i + 1, NGHTTP2_CANCEL);
  }
  burst += peer_->headers(301, request(), true);
  ASSERT_TRUE(peer_->send(burst));
  auto d = peer_->waitFor([](const Frame& f) { return f.type == NGHTTP2_DATA && f.stream == 301; });
  ASSERT_TRUE(d);
  EXPECT_EQ(d->payload, "ok");
  for (const Frame& f : peer_->seen_) EXPECT_NE(f.type, NGHTTP2_GOAWAY);
}

TEST_P(ServerTest, EmptyDataFramesFlood) {
  startServer();
  peer_->clientHandshake();
  ASSERT_TRUE(peer_->send(peer_->headers(1, request("POST"), false) + data(1, "", false) +
                          data(1, "", false)));
  auto g = peer_->waitFor(isGoAway);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->code(), static_cast<uint32_t>(NGHTTP2_ENHANCE_YOUR_CALM));
  EXPECT_EQ(serverErrors().size(), 1u);
}

TEST_P(ServerTest, OversizedHeadersGet431) {
  Settings s;
  s.max_header_list_size_kb = 1;
  startServer(s);
  peer_->clientHandshake();
  Fields big = request();
  big.emplace_back("x-big", std::string(2000, 'a'));
  ASSERT_TRUE(peer_->send(peer_->headers(1, big, false)));
  auto h = peer_->waitFor([](const Frame& f) { return f.type == NGHTTP2_HEADERS; });
  ASSERT_TRUE(h);
  EXPECT_THAT(h->headers, ElementsAre(Pair(":status", "431")));
  EXPECT_TRUE(h->endStream());
  // The client was still sending: the stream is closed after the answer.
  auto r = peer_->waitFor([](const Frame& f) { return f.type == NGHTTP2_RST_STREAM; });
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code(), static_cast<uint32_t>(NGHTTP2_NO_ERROR));
  EXPECT_EQ(serverStreams(), 0u);
}

TEST_P(ServerTest, EarlyResponseEndsTheRequestWithNoError) {
  on_headers_ = [](ServerStream& s) { s.respond("413", ""); };
  startServer();
  peer_->clientHandshake();
  ASSERT_TRUE(peer_->send(peer_->headers(1, request("POST"), false) + data(1, "part", false)));
  auto h = peer_->waitFor([](const Frame& f) { return f.type == NGHTTP2_HEADERS; });
  ASSERT_TRUE(h);
  EXPECT_EQ(get(h->headers, ":status"), "413");
  auto r = peer_->waitFor([](const Frame& f) { return f.type == NGHTTP2_RST_STREAM; });
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code(), static_cast<uint32_t>(NGHTTP2_NO_ERROR));
  run([&] {
    EXPECT_TRUE(server_->streams_[0]->resets.empty());
    EXPECT_EQ(server_->streams_[0]->body, ""); // nothing after the response ended
  });
}

TEST_P(ServerTest, GoAwayDrainLetsInFlightStreamsFinish) {
  std::vector<ServerStream*> held;
  on_complete_ = [&](ServerStream& s) { held.push_back(&s); };
  startServer();
  peer_->clientHandshake();
  ASSERT_TRUE(peer_->send(peer_->headers(1, request("GET", "/1"), true)));
  ASSERT_TRUE(until([&] { return held.size() == 1; }));
  run([&] { server_->codec_->shutdownNotice(); });
  auto notice = peer_->waitFor(isGoAway);
  ASSERT_TRUE(notice);
  EXPECT_EQ(notice->lastStream(), 0x7fffffffu);
  EXPECT_EQ(notice->code(), static_cast<uint32_t>(NGHTTP2_NO_ERROR));
  run([&] { server_->codec_->goAway(); });
  auto g = peer_->waitFor(isGoAway);
  ASSERT_TRUE(g) << describe(peer_->seen_);
  EXPECT_EQ(g->lastStream(), 1u);
  EXPECT_EQ(g->code(), static_cast<uint32_t>(NGHTTP2_NO_ERROR));
  // A stream opened after the GOAWAY is ignored; the one before it completes.
  ASSERT_TRUE(peer_->send(peer_->headers(3, request("GET", "/3"), true)));
  peer_->sync();
  run([&] { held[0]->respond("200", "one"); });
  auto d = peer_->waitFor([](const Frame& f) { return f.type == NGHTTP2_DATA; });
  ASSERT_TRUE(d);
  EXPECT_EQ(d->stream, 1u);
  EXPECT_EQ(d->payload, "one");
  EXPECT_EQ(serverStreams(), 1u);
  run([&] { EXPECT_TRUE(server_->codec_->goAwaySent()); });
}

TEST_P(ServerTest, KeepaliveWithoutAckCloses) {
  Settings s;
  s.connection_keepalive_interval_ms = 20;
  s.connection_keepalive_timeout_ms = 100;
  startServer(s);
  peer_->clientHandshake();
  EXPECT_TRUE(peer_->drainToEof());
  int pings = 0;
  for (const Frame& f : peer_->seen_) {
    if (f.type == NGHTTP2_PING && !(f.flags & NGHTTP2_FLAG_ACK)) pings++;
  }
  EXPECT_EQ(pings, 1); // the next one waits for an ACK that never came
}

TEST_P(ServerTest, KeepaliveAckedKeepsTheConnection) {
  Settings s;
  s.connection_keepalive_interval_ms = 10;
  s.connection_keepalive_timeout_ms = 5000;
  startServer(s);
  peer_->clientHandshake();
  for (int i = 0; i < 3; i++) {
    auto p = peer_->waitFor([](const Frame& f) {
      return f.type == NGHTTP2_PING && !(f.flags & NGHTTP2_FLAG_ACK);
    });
    ASSERT_TRUE(p) << "ping " << i;
    ASSERT_TRUE(peer_->send(frame(NGHTTP2_PING, NGHTTP2_FLAG_ACK, 0, p->payload)));
  }
  run([&] { EXPECT_FALSE(server_->closed_); });
}

// --- HTTP/1.1 upgrade (h2c, RFC 7540 3.2) ---------------------------------------------

// An HTTP2-Settings value: `entries` as a SETTINGS payload, base64url without padding.
std::string http2Settings(const std::vector<std::pair<uint16_t, uint32_t>>& entries) {
  return absl::WebSafeBase64Escape(settings(entries).substr(9));
}

// The HTTP/1.1 request that asked, as the HTTP/1 codec hands it over.
http::HeaderMapPtr upgradeRequest(const std::string& http2_settings, Fields extra = {}) {
  auto h = std::make_unique<http::HeaderMap>();
  Fields f = {{":method", "GET"}, {":path", "/up"}, {":scheme", "http"}, {":authority", "h"},
              {"connection", "Upgrade, HTTP2-Settings"}, {"upgrade", "h2c"},
              {"http2-settings", http2_settings}};
  f.insert(f.end(), extra.begin(), extra.end());
  for (const auto& [k, v] : f) h->add(k, v);
  return h;
}

TEST(Http2SettingsTest, DecodesBase64UrlWholeSettingsOnly) {
  std::string payload;
  ASSERT_TRUE(http::decodeHttp2Settings("AAMAAABkAARAAAAA", &payload));
  EXPECT_EQ(payload, settings({{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
                               {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 0x40000000}})
                         .substr(9));
  EXPECT_TRUE(http::decodeHttp2Settings("AAMAAABk", nullptr));
  EXPECT_TRUE(http::decodeHttp2Settings("AAMAAABkAARAAAAA==", nullptr)); // padding tolerated
  EXPECT_TRUE(http::decodeHttp2Settings("", nullptr));                   // no settings
  std::string all_bytes(252, '\0');
  for (size_t i = 0; i < all_bytes.size(); i++) all_bytes[i] = static_cast<char>(i);
  ASSERT_TRUE(http::decodeHttp2Settings(absl::WebSafeBase64Escape(all_bytes), &payload));
  EXPECT_EQ(payload, all_bytes); // '-' and '_' included
  for (const char* bad : {"AAMAAAB", "AAMAAABkAA", "A", "AAMA+ABk", "AAMA/ABk", "AAMA AABk",
                          " AAMAAABk", "AAMAAABk\n", "AA=MAABk", "!!!"}) {
    EXPECT_FALSE(http::decodeHttp2Settings(bad, nullptr)) << bad;
  }
}

TEST_P(ServerTest, UpgradeFromHttp1ServesTheRequestOnStream1) {
  on_complete_ = [](ServerStream& s) { s.respond("200", "hello world"); };
  startServer();
  // The client's SETTINGS apply from the start: a 4-byte window for our sending.
  std::string value = http2Settings({{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 4}});
  absl::Status st;
  ASSERT_TRUE(run([&] {
    st = server_->codec_->upgradeFromHttp1(
        value, upgradeRequest(value, {{"connection", "x-hop"}, // named: connection-specific
                                      {"keep-alive", "timeout=5"},
                                      {"x-hop", "1"},
                                      {"te", "trailers"},
                                      {"x-a", "b"}}));
  }));
  ASSERT_TRUE(st.ok()) << st;
  peer_->clientHandshake();
  auto h = peer_->waitFor([](const Frame& f) { return f.type == NGHTTP2_HEADERS; });
  ASSERT_TRUE(h) << describe(peer_->seen_);
  EXPECT_EQ(h->stream, 1u);
  EXPECT_EQ(get(h->headers, ":status"), "200");
  auto d = peer_->waitFor([](const Frame& f) { return f.type == NGHTTP2_DATA; });
  ASSERT_TRUE(d);
  EXPECT_EQ(d->payload, "hell");
  EXPECT_FALSE(d->endStream());
  ASSERT_TRUE(peer_->send(frame(NGHTTP2_WINDOW_UPDATE, 0, 1, u32(100))));
  d = peer_->waitFor([](const Frame& f) { return f.type == NGHTTP2_DATA; });
  ASSERT_TRUE(d);
  EXPECT_EQ(d->stream, 1u);
  EXPECT_EQ(d->payload, "o world");
  EXPECT_TRUE(d->endStream());
  ServerStream got;
  run([&] {
    ASSERT_EQ(server_->streams_.size(), 1u);
    got.headers = server_->streams_[0]->headers;
    got.complete = server_->streams_[0]->complete;
  });
  EXPECT_THAT(got.headers, ElementsAre(Pair(":method", "GET"), Pair(":path", "/up"),
                                       Pair(":scheme", "http"), Pair(":authority", "h"),
                                       Pair("te", "trailers"), Pair("x-a", "b")));
  EXPECT_TRUE(got.complete);
  // The connection goes on as any other: the client's next stream is 3.
  ASSERT_TRUE(peer_->send(peer_->headers(3, request("GET", "/next"), true)));
  h = peer_->waitFor([](const Frame& f) { return f.type == NGHTTP2_HEADERS; });
  ASSERT_TRUE(h) << describe(peer_->seen_);
  EXPECT_EQ(h->stream, 3u);
  EXPECT_EQ(get(h->headers, ":status"), "200");
  ASSERT_TRUE(until([&] { return server_->streams_.size() == 2; }));
  run([&] {
    EXPECT_EQ(get(server_->streams_[1]->headers, ":path"), "/next");
    EXPECT_TRUE(server_->errors_.empty());
  });
}

TEST_P(ServerTest, UpgradeFromHttp1RefusesMalformedSettingsAndChangesNothing) {
  on_complete_ = [](ServerStream& s) { s.respond("200", "plain"); };
  startServer();
  for (const char* bad : {"!!!", "AAAA", "AAMA AABk"}) {
    absl::Status st;
    ASSERT_TRUE(run([&] { st = server_->codec_->upgradeFromHttp1(bad, upgradeRequest(bad)); }));
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(serverStreams(), 0u);
  run([&] { EXPECT_EQ(server_->codec_->activeStreams(), 0u); });
  // Stream 1 is still free for a client that speaks HTTP/2 directly.
  peer_->clientHandshake();
  ASSERT_TRUE(peer_->send(peer_->headers(1, request(), true)));
  auto h = peer_->waitFor([](const Frame& f) { return f.type == NGHTTP2_HEADERS; });
  ASSERT_TRUE(h) << describe(peer_->seen_);
  EXPECT_EQ(h->stream, 1u);
  EXPECT_EQ(get(h->headers, ":status"), "200");
}

TEST_P(ServerTest, UpgradeWithAnInvalidSettingValueIsAConnectionError) {
  startServer();
  // As in a SETTINGS frame (RFC 7540 3.2.1): ENABLE_PUSH may only be 0 or 1.
  std::string value = http2Settings({{NGHTTP2_SETTINGS_ENABLE_PUSH, 2}});
  absl::Status st;
  ASSERT_TRUE(run([&] { st = server_->codec_->upgradeFromHttp1(value, upgradeRequest(value)); }));
  EXPECT_TRUE(st.ok()) << st; // well-formed: the switch happened, then the error
  auto g = peer_->waitFor(isGoAway);
  ASSERT_TRUE(g) << describe(peer_->seen_);
  EXPECT_EQ(g->code(), static_cast<uint32_t>(NGHTTP2_PROTOCOL_ERROR));
  EXPECT_TRUE(peer_->drainToEof());
}

TEST_P(ServerTest, UpgradedHeadRequest) {
  on_complete_ = [](ServerStream& s) { s.respond("200", "", {{"content-length", "5"}}); };
  startServer();
  std::string value = http2Settings({});
  absl::Status st;
  ASSERT_TRUE(run([&] {
    auto req = upgradeRequest(value);
    req->set(":method", "HEAD");
    st = server_->codec_->upgradeFromHttp1(value, std::move(req));
  }));
  ASSERT_TRUE(st.ok()) << st;
  peer_->clientHandshake();
  auto h = peer_->waitFor([](const Frame& f) { return f.type == NGHTTP2_HEADERS; });
  ASSERT_TRUE(h) << describe(peer_->seen_);
  EXPECT_EQ(h->stream, 1u);
  EXPECT_EQ(get(h->headers, "content-length"), "5");
  EXPECT_TRUE(h->endStream());
  run([&] { EXPECT_EQ(get(server_->streams_.at(0)->headers, ":method"), "HEAD"); });
}

// --- Client codec against a raw server ------------------------------------------------

TEST_P(ClientTest, RequestFieldsAreTranslated) {
  startClient();
  ClientStream* s = nullptr;
  run([&] {
    s = &client_->start({{":method", "GET"}, {":path", "/p"}, {"host", "example.com"},
                         {"connection", "keep-alive, x-hop"}, {"keep-alive", "5"},
                         {"proxy-connection", "keep-alive"}, {"transfer-encoding", "chunked"},
                         {"upgrade", "websocket"}, {"te", "trailers"}, {"x-hop", "1"},
                         {"x-a", "b"}},
                        true);
  });
  peer_->serverHandshake();
  auto h = peer_->waitFor([](const Frame& f) { return f.type == NGHTTP2_HEADERS; });
  ASSERT_TRUE(h);
  EXPECT_EQ(h->stream, 1u);
  EXPECT_TRUE(h->endStream());
  EXPECT_THAT(h->headers, ElementsAre(Pair(":method", "GET"), Pair(":scheme", "http"),
                                      Pair(":authority", "example.com"), Pair(":path", "/p"),
                                      Pair("te", "trailers"), Pair("x-a", "b")));
  // And the response comes back, 1xx first.
  std::string resp = peer_->headers(1, {{":status", "103"}, {"link", "</a>"}}, false);
  resp += peer_->headers(1, {{":status", "200"}}, false);
  resp += data(1, "body", false);
  resp += peer_->headers(1, {{"x-t", "1"}}, true);
  ASSERT_TRUE(peer_->send(resp));
  ASSERT_TRUE(until([&] { return s->complete; }));
  run([&] {
    ASSERT_EQ(s->informational.size(), 1u);
    EXPECT_EQ(get(s->informational[0], ":status"), "103");
    EXPECT_EQ(get(s->headers, ":status"), "200");
    EXPECT_EQ(s->body, "body");
    EXPECT_THAT(s->trailers, ElementsAre(Pair("x-t", "1")));
  });
}

TEST_P(ClientTest, PeerMaxConcurrentStreamsIsHonored) {
  startClient();
  peer_->serverHandshake({{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 2}});
  ASSERT_TRUE(until([&] { return client_->codec_->peerMaxConcurrentStreams() == 2; }));
  run([&] {
    EXPECT_TRUE(client_->codec_->canCreateStream());
    client_->start(request(), true);
    EXPECT_TRUE(client_->codec_->canCreateStream());
    client_->start(request(), true);
    EXPECT_FALSE(client_->codec_->canCreateStream());
    EXPECT_TRUE(client_->codec_->reusable());
    EXPECT_EQ(client_->codec_->activeStreams(), 2u);
  });
  ASSERT_TRUE(peer_->send(peer_->headers(1, {{":status", "200"}}, true)));
  ASSERT_TRUE(until([&] { return client_->codec_->canCreateStream(); }));
  run([&] {
    EXPECT_TRUE(client_->streams_[0]->complete);
    EXPECT_EQ(client_->codec_->activeStreams(), 1u);
  });
}

TEST_P(ClientTest, GoAwayRefusesLaterStreamsAndLetsEarlierOnesFinish) {
  startClient();
  peer_->serverHandshake();
  run([&] {
    client_->start(request("GET", "/1"), true);
    client_->start(request("GET", "/3"), true);
  });
  ASSERT_TRUE(peer_->waitFor([](const Frame& f) { return f.type == NGHTTP2_HEADERS && f.stream == 3; }));
  ASSERT_TRUE(peer_->send(goaway(1, NGHTTP2_NO_ERROR)));
  ASSERT_TRUE(until([&] { return !client_->goaways_.empty(); }));
  run([&] {
    EXPECT_THAT(client_->goaways_, ElementsAre(static_cast<uint32_t>(NGHTTP2_NO_ERROR)));
    EXPECT_FALSE(client_->codec_->reusable());
    EXPECT_FALSE(client_->codec_->canCreateStream());
    // Stream 3 is beyond the GOAWAY's last stream: refused unprocessed, safe to retry.
    EXPECT_THAT(client_->streams_[1]->resets, ElementsAre(http::StreamResetReason::RefusedStream));
    EXPECT_TRUE(client_->streams_[0]->resets.empty());
  });
  ASSERT_TRUE(peer_->send(peer_->headers(1, {{":status", "200"}}, false) + data(1, "one", true)));
  ASSERT_TRUE(until([&] { return client_->streams_[0]->complete; }));
  run([&] { EXPECT_EQ(client_->streams_[0]->body, "one"); });
}

TEST_P(ClientTest, ServerResetAndOwnerReset) {
  startClient();
  peer_->serverHandshake();
  run([&] {
    client_->start(request("POST", "/1"), false);
    client_->start(request("POST", "/3"), false);
  });
  ASSERT_TRUE(peer_->waitFor([](const Frame& f) { return f.type == NGHTTP2_HEADERS && f.stream == 3; }));
  ASSERT_TRUE(peer_->send(rst(1, NGHTTP2_REFUSED_STREAM)));
  ASSERT_TRUE(until([&] { return !client_->streams_[0]->resets.empty(); }));
  run([&] {
    EXPECT_THAT(client_->streams_[0]->resets, ElementsAre(http::StreamResetReason::RefusedStream));
    ClientStream& s = *client_->streams_[1];
    s.encoder->removeCallbacks(s);
    s.encoder->resetStream(http::StreamResetReason::LocalReset);
  });
  auto r = peer_->waitFor([](const Frame& f) { return f.type == NGHTTP2_RST_STREAM; });
  ASSERT_TRUE(r);
  EXPECT_EQ(r->stream, 3u);
  EXPECT_EQ(r->code(), static_cast<uint32_t>(NGHTTP2_CANCEL));
  ASSERT_TRUE(until([&] { return client_->codec_->activeStreams() == 0; }));
  run([&] { EXPECT_TRUE(client_->streams_[1]->resets.empty()); }); // its owner reset it
}

TEST_P(ClientTest, MalformedResponseIsAConnectionError) {
  startClient();
  peer_->serverHandshake();
  run([&] { client_->start(request(), true); });
  ASSERT_TRUE(peer_->waitFor([](const Frame& f) { return f.type == NGHTTP2_HEADERS; }));
  ASSERT_TRUE(peer_->send(peer_->headers(1, {{":status", "200"}, {"Bad", "x"}}, true)));
  auto g = peer_->waitFor(isGoAway);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->code(), static_cast<uint32_t>(NGHTTP2_PROTOCOL_ERROR));
  ASSERT_TRUE(until([&] { return !client_->errors_.empty(); }));
  run([&] {
    EXPECT_THAT(client_->streams_[0]->resets, ElementsAre(http::StreamResetReason::ProtocolError));
    EXPECT_FALSE(client_->streams_[0]->complete);
    EXPECT_FALSE(client_->codec_->reusable());
  });
}

// --- Our client and our server ------------------------------------------------------------

TEST_P(PairTest, GetAndPostWithTrailers) {
  on_complete_ = [](ServerStream& s) {
    if (get(s.headers, ":method") == "GET") {
      s.respond("200", "", {{"x-path", get(s.headers, ":path")}});
      return;
    }
    s.encoder->encodeHeaders(headers({{":status", "201"}}), false);
    sendData(*s.encoder, s.body + "!", false);
    s.encoder->encodeTrailers(headers({{"x-sum", std::to_string(s.body.size())}}));
    s.encoder->removeCallbacks(s);
  };
  startPair();
  ClientStream* get_s = nullptr;
  ClientStream* post_s = nullptr;
  run([&] {
    get_s = &client_->start(request("GET", "/g"), true);
    post_s = &client_->start(request("POST", "/p"), false);
    sendData(*post_s->encoder, "abc", false);
    post_s->encoder->encodeTrailers(headers({{"x-req", "1"}}));
  });
  ASSERT_TRUE(until([&] { return get_s->complete && post_s->complete; }));
  run([&] {
    EXPECT_EQ(get(get_s->headers, ":status"), "200");
    EXPECT_EQ(get(get_s->headers, "x-path"), "/g");
    EXPECT_EQ(get(post_s->headers, ":status"), "201");
    EXPECT_EQ(post_s->body, "abc!");
    EXPECT_THAT(post_s->trailers, ElementsAre(Pair("x-sum", "3")));
    ASSERT_EQ(server_->streams_.size(), 2u);
    EXPECT_THAT(server_->streams_[1]->trailers, ElementsAre(Pair("x-req", "1")));
    EXPECT_EQ(server_->codec_->protocol(), http::Protocol::Http2);
  });
}

TEST_P(PairTest, HundredConcurrentStreams) {
  std::vector<ServerStream*> held;
  size_t most_active = 0;
  on_complete_ = [&](ServerStream& s) {
    held.push_back(&s);
    most_active = std::max(most_active, server_->codec_->activeStreams());
    if (held.size() == 100) {
      // All requests are open at once before any is answered.
      for (ServerStream* h : held) h->respond("200", get(h->headers, ":path"));
    }
  };
  startPair();
  run([&] {
    for (int i = 0; i < 100; i++) client_->start(request("GET", absl::StrCat("/", i)), true);
  });
  ASSERT_TRUE(until([&] {
    for (auto& s : client_->streams_) {
      if (!s->complete) return false;
    }
    return true;
  }));
  run([&] {
    EXPECT_EQ(most_active, 100u);
    for (int i = 0; i < 100; i++) {
      EXPECT_EQ(client_->streams_[i]->body, absl::StrCat("/", i));
      EXPECT_TRUE(client_->streams_[i]->resets.empty());
    }
    EXPECT_EQ(client_->codec_->activeStreams(), 0u);
    EXPECT_EQ(server_->codec_->activeStreams(), 0u);
  });
}

// Sends `total` bytes on a stream as fast as its write watermarks allow.
struct Pump {
  ClientStream* s{nullptr};
  size_t sent{0};
  size_t total{0};
  void run() {
    while (s->encoder != nullptr && sent < total && s->above == s->below) {
      size_t n = std::min<size_t>(64 * 1024, total - sent);
      std::string chunk(n, '\0');
      for (size_t i = 0; i < n; i++) chunk[i] = static_cast<char>('a' + (sent + i) % 26);
      sent += n;
      sendData(*s->encoder, chunk, sent == total);
    }
  }
};

bool isPattern(const std::string& body) {
  for (size_t i = 0; i < body.size(); i++) {
    if (body[i] != static_cast<char>('a' + i % 26)) return false;
  }
  return true;
}

TEST_P(PairTest, SlowReaderStallsOnlyItsOwnStream) {
  const size_t kBig = 10 * 1024 * 1024;
  on_headers_ = [](ServerStream& s) {
    if (get(s.headers, ":path") == "/slow") s.encoder->readDisable(true);
  };
  on_complete_ = [](ServerStream& s) { s.respond("200", std::to_string(s.body.size())); };
  startPair();
  Pump pump;
  ClientStream* fast = nullptr;
  run([&] {
    ClientStream& slow = client_->start(request("POST", "/slow"), false);
    pump.s = &slow;
    pump.total = kBig;
    slow.on_below = [&pump] { pump.run(); };
    pump.run();
  });
  // The slow stream's window closes; its sender is told to stop.
  ASSERT_TRUE(until([&] { return pump.s->above > pump.s->below; }));
  // Meanwhile another stream carries a megabyte both ways.
  run([&] {
    fast = &client_->start(request("POST", "/fast"), false);
    sendData(*fast->encoder, std::string(1 << 20, 'f'), true);
  });
  ASSERT_TRUE(until([&] { return fast->complete; }));
  size_t slow_received = 1;
  run([&] {
    EXPECT_EQ(fast->body, std::to_string(1 << 20));
    ASSERT_EQ(server_->streams_.size(), 2u);
    slow_received = server_->streams_[0]->body.size();
    EXPECT_LT(pump.sent, kBig);
  });
  EXPECT_EQ(slow_received, 0u); // nothing delivered while its reader is paused
  run([&] { server_->streams_[0]->encoder->readDisable(false); });
  ASSERT_TRUE(until([&] { return pump.s->complete; }));
  run([&] {
    EXPECT_EQ(pump.sent, kBig);
    EXPECT_EQ(pump.s->body, std::to_string(kBig));
    EXPECT_TRUE(isPattern(server_->streams_[0]->body));
    EXPECT_GT(pump.s->below, 0);
  });
}

TEST_P(PairTest, ResetsBothWays) {
  std::vector<ServerStream*> held;
  on_headers_ = [&](ServerStream& s) { held.push_back(&s); };
  startPair();
  ClientStream* one = nullptr;
  ClientStream* two = nullptr;
  run([&] {
    one = &client_->start(request("POST", "/1"), false);
    two = &client_->start(request("POST", "/2"), false);
  });
  ASSERT_TRUE(until([&] { return held.size() == 2; }));
  run([&] {
    one->encoder->removeCallbacks(*one);
    one->encoder->resetStream(http::StreamResetReason::LocalReset);
    http::StreamEncoder* e = held[1]->encoder;
    e->removeCallbacks(*held[1]);
    e->resetStream(http::StreamResetReason::LocalReset);
  });
  ASSERT_TRUE(until([&] { return !held[0]->resets.empty() && !two->resets.empty(); }));
  run([&] {
    EXPECT_THAT(held[0]->resets, ElementsAre(http::StreamResetReason::RemoteReset));
    EXPECT_THAT(two->resets, ElementsAre(http::StreamResetReason::RemoteReset));
    EXPECT_TRUE(one->resets.empty());
    EXPECT_TRUE(held[1]->resets.empty());
  });
  ASSERT_TRUE(until([&] {
    return client_->codec_->activeStreams() == 0 && server_->codec_->activeStreams() == 0;
  }));
}

TEST_P(PairTest, DrainWithGoAway) {
  std::vector<ServerStream*> held;
  on_complete_ = [&](ServerStream& s) { held.push_back(&s); };
  startPair();
  ClientStream* s = nullptr;
  run([&] { s = &client_->start(request("GET", "/in-flight"), true); });
  ASSERT_TRUE(until([&] { return held.size() == 1; }));
  run([&] { server_->codec_->goAway(); });
  ASSERT_TRUE(until([&] { return !client_->goaways_.empty(); }));
  run([&] {
    EXPECT_FALSE(client_->codec_->reusable());
    EXPECT_FALSE(client_->codec_->canCreateStream());
    EXPECT_TRUE(s->resets.empty());
    held[0]->respond("200", "finished");
  });
  ASSERT_TRUE(until([&] { return s->complete; }));
  run([&] { EXPECT_EQ(s->body, "finished"); });
}

TEST_P(PairTest, ServerMaxConcurrentStreamsReachesTheClient) {
  Settings server_settings;
  server_settings.max_concurrent_streams = 3;
  std::vector<ServerStream*> held;
  on_complete_ = [&](ServerStream& st) { held.push_back(&st); };
  startPair(server_settings);
  ASSERT_TRUE(until([&] { return client_->codec_->peerMaxConcurrentStreams() == 3; }));
  run([&] {
    for (int i = 0; i < 3; i++) client_->start(request(), true);
    EXPECT_FALSE(client_->codec_->canCreateStream());
  });
  ASSERT_TRUE(until([&] { return held.size() == 3; }));
  run([&] { held[0]->respond("200", ""); });
  ASSERT_TRUE(until([&] { return client_->codec_->canCreateStream(); }));
}

TEST_P(PairTest, ConnectionCloseTerminatesEveryStream) {
  std::vector<ServerStream*> held;
  on_headers_ = [&](ServerStream& s) { held.push_back(&s); };
  startPair();
  run([&] {
    for (int i = 0; i < 3; i++) client_->start(request("POST"), false);
  });
  ASSERT_TRUE(until([&] { return held.size() == 3; }));
  run([&] { conn_a_->close(network::ConnectionCloseType::NoFlush); });
  ASSERT_TRUE(until([&] { return client_->closed_; }));
  run([&] {
    for (auto& c : client_->streams_) {
      EXPECT_THAT(c->resets, ElementsAre(http::StreamResetReason::ConnectionTermination));
    }
    for (ServerStream* s : held) {
      EXPECT_THAT(s->resets, ElementsAre(http::StreamResetReason::ConnectionTermination));
    }
    EXPECT_EQ(client_->codec_->activeStreams(), 0u);
    EXPECT_FALSE(client_->codec_->reusable());
  });
}

} // namespace
} // namespace http2
} // namespace tern
