// libFuzzer target for the HTTP/2 codec (extensions/codecs/http2), server side by default.
//
// Input layout: byte 0 picks the options, byte 1 seeds how the rest is cut into reads;
// the rest is the bytes from the peer.
//   bit 0   prepend the client preface and an empty SETTINGS (reach frames sooner)
//   bit 1   stream_error_on_invalid_http_messaging
//   bit 2   small limits (headers, concurrency, outbound frames)
//   bit 3   the connection's write buffer is "full" until drained between reads
//   bits 4-5  what the server's owner does with a request (answer at its end, at its
//           headers with a body and trailers, pause reading, reset it)
//   bit 7   client side instead: three requests are sent, the input is the server's answer
//
// The codec runs on a fake connection and dispatcher (timers fire between reads, deferred
// deletes run between reads, as an event loop would). Besides not crashing (ASan/UBSan in
// the libFuzzer build), it must keep its contract with the owner: headers once and first,
// nothing after end of stream or after a reset, a dispatch() error only together with a
// GOAWAY carrying that error code in what it wrote. A broken rule aborts with a description.
//
// Built two ways: tools/fuzz (clang, -fsanitize=fuzzer,address,undefined), and
// //test/fuzz:http2_server_fuzz_replay (replays test/fuzz/corpus/http2_server).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "extensions/codecs/http2/codec_impl.h"
#include "source/common/buffer/block_pool.h"
#include "source/common/buffer/buffer.h"

namespace tern {
namespace http2 {
namespace {

std::string g_input;

[[noreturn]] void fail(const std::string& what) {
  fprintf(stderr, "http2_server_fuzz: %s\ninput: \"%s\"\n", what.c_str(),
          absl::CEscape(g_input).c_str());
  abort();
}

class FakeTimer : public event::Timer {
public:
  explicit FakeTimer(event::TimerCb cb) : cb_(std::move(cb)) {}
  void enableTimer(std::chrono::milliseconds) override { enabled_ = true; }
  void disableTimer() override { enabled_ = false; }
  bool enabled() const override { return enabled_; }
  void fire() {
    enabled_ = false;
    cb_();
  }

private:
  event::TimerCb cb_;
  bool enabled_{false};
};

// Timers are fired by the harness between reads; nothing else of a loop is needed.
class FakeDispatcher : public event::Dispatcher {
public:
  const std::string& name() const override { return name_; }
  event::FileEventPtr createFileEvent(int, event::FileReadyCb, uint32_t) override { return nullptr; }
  event::TimerPtr createTimer(event::TimerCb cb) override {
    auto t = std::make_unique<TimerHandle>(*this, std::move(cb));
    return t;
  }
  void deferredDelete(event::DeferredDeletablePtr obj) override { deferred_.push_back(std::move(obj)); }
  void post(std::function<void()> cb) override { posted_.push_back(std::move(cb)); }
  event::MonotonicTime now() const override { return event::MonotonicTime(); }
  buffer::BlockPool& blockPool() override { return pool_; }
  bool isThreadSafe() const override { return true; }

  // One turn of a loop: enabled timers fire (once each), then deferred deletes run.
  void turn() {
    std::vector<TimerHandle*> due;
    for (TimerHandle* t : timers_) {
      if (t->enabled()) due.push_back(t);
    }
    for (TimerHandle* t : due) {
      if (std::find(timers_.begin(), timers_.end(), t) != timers_.end() && t->enabled()) t->fire();
    }
    auto posted = std::move(posted_);
    posted_.clear();
    for (auto& cb : posted) cb();
    deferred_.clear();
  }
  void clear() {
    deferred_.clear();
    posted_.clear();
  }

private:
  class TimerHandle : public FakeTimer {
  public:
    TimerHandle(FakeDispatcher& d, event::TimerCb cb) : FakeTimer(std::move(cb)), d_(d) {
      d_.timers_.push_back(this);
    }
    ~TimerHandle() override { d_.timers_.erase(std::find(d_.timers_.begin(), d_.timers_.end(), this)); }

  private:
    FakeDispatcher& d_;
  };

  std::string name_{"fuzz"};
  buffer::BlockPool pool_{256};
  std::vector<TimerHandle*> timers_;
  std::vector<event::DeferredDeletablePtr> deferred_;
  std::vector<std::function<void()>> posted_;
};

// Collects what the codec writes; "full" (above its high watermark) on request.
class FakeConnection : public network::Connection {
public:
  explicit FakeConnection(FakeDispatcher& d) : dispatcher_(d), out_(&d.blockPool()) {}

  uint64_t id() const override { return 1; }
  event::Dispatcher& dispatcher() override { return dispatcher_; }
  void addConnectionCallbacks(network::ConnectionCallbacks&) override {}
  void removeConnectionCallbacks(network::ConnectionCallbacks&) override {}
  void addReadFilter(network::ReadFilterSharedPtr) override {}
  void addWriteFilter(network::WriteFilterSharedPtr) override {}
  bool initializeReadFilters() override { return false; }
  void close(network::ConnectionCloseType) override {
    if (state_ == State::Open) {
      state_ = State::Closed;
      closed_now_ = true;
    }
  }
  State state() const override { return state_; }
  void readDisable(bool) override {}
  bool readEnabled() const override { return true; }
  void write(buffer::Buffer& data, bool) override {
    if (state_ != State::Open) {
      data.clear();
      return;
    }
    written_ += data.toString();
    out_.move(data);
    if (limit_small_ && out_.length() > 1024) above_ = true;
  }
  void setBufferLimits(uint32_t) override {}
  uint32_t bufferLimit() const override { return 1024; }
  void enableHalfClose(bool) override {}
  bool aboveHighWatermark() const override { return above_; }
  const network::Address& remoteAddress() const override { return address_; }
  const network::Address& localAddress() const override { return address_; }
  void setConnectionStats(const network::ConnectionStats&) override {}
  const char* closeReason() const override { return ""; }
  void setCloseReason(const char*) override {}
  uint64_t bytesBuffered() const override { return out_.length(); }

  // The socket took everything; returns whether the connection just left its high mark.
  bool drain() {
    out_.clear();
    bool was = above_;
    above_ = false;
    return was;
  }

  FakeDispatcher& dispatcher_;
  buffer::Buffer out_;
  std::string written_;
  network::Address address_;
  State state_{State::Open};
  bool limit_small_{false};
  bool above_{false};
  bool closed_now_{false};
};

// Checks the owner-facing contract of one stream.
class FuzzStream : public http::StreamDecoder, public http::StreamCallbacks {
public:
  FuzzStream(int behavior, bool client) : behavior_(behavior), client_(client) {}
  void attach(http::StreamEncoder& encoder) {
    encoder_ = &encoder;
    encoder.addCallbacks(*this);
  }

  void decode1xxHeaders(http::HeaderMapPtr h) override {
    if (!client_) fail("1xx headers on the server side");
    check("1xx headers");
    if (got_headers_) fail("1xx headers after the final headers");
    if (h->status().empty() || h->status()[0] != '1') fail("1xx headers without a 1xx status");
  }
  void decodeHeaders(http::HeaderMapPtr h, bool end_stream) override {
    check("headers");
    if (got_headers_) fail("headers twice");
    got_headers_ = true;
    if (client_) {
      if (h->status().empty()) fail("response without :status");
    } else {
      if (h->method().empty()) fail("request without :method");
      if (h->has("host")) fail("host reached the owner");
      for (const auto& [k, v] : h->entries()) {
        for (char c : k) {
          if (c >= 'A' && c <= 'Z') fail("uppercase field name reached the owner");
        }
        if (k == "connection" || k == "transfer-encoding") fail("connection-specific field reached the owner");
      }
    }
    if (end_stream) ended_ = true;
    if (!client_) onRequestHeaders();
    if (ended_) onEnd();
  }
  void decodeData(buffer::Buffer& data, bool end_stream) override {
    check("data");
    if (!got_headers_) fail("data before headers");
    if (paused_) fail("data while reading is disabled");
    if (data.empty() && !end_stream) fail("empty data without end of stream");
    bytes_ += data.length();
    data.drain(data.length());
    if (end_stream) {
      ended_ = true;
      onEnd();
    }
  }
  void decodeTrailers(http::HeaderMapPtr t) override {
    check("trailers");
    if (!got_headers_) fail("trailers before headers");
    if (paused_) fail("trailers while reading is disabled");
    for (const auto& [k, v] : t->entries()) {
      if (!k.empty() && k[0] == ':') fail("pseudo-header in trailers");
    }
    ended_ = true;
    onEnd();
  }
  void onResetStream(http::StreamResetReason) override {
    if (reset_) fail("reset twice");
    reset_ = true;
    encoder_ = nullptr;
  }

  void resume() {
    if (paused_ && encoder_ != nullptr) {
      paused_ = false;
      encoder_->readDisable(false);
    }
  }
  void finish() {
    if (encoder_ != nullptr) {
      encoder_->removeCallbacks(*this);
      encoder_ = nullptr;
    }
  }

private:
  void check(const char* what) {
    if (reset_) fail(absl::StrCat(what, " after a reset"));
    if (ended_) fail(absl::StrCat(what, " after end of stream"));
    if (!client_ && responded_) fail(absl::StrCat(what, " after the response ended"));
  }
  void onRequestHeaders();
  void onEnd();
  void respond(bool with_body) {
    if (encoder_ == nullptr || responded_) return;
    responded_ = true;
    http::HeaderMap h;
    h.add(":status", "200");
    h.add("connection", "close"); // must be dropped on the way out
    encoder_->encodeHeaders(h, !with_body);
    if (with_body && encoder_ != nullptr) {
      buffer::Buffer b;
      b.add(std::string(3000, 'b'));
      encoder_->encodeData(b, false);
      http::HeaderMap t;
      t.add("x-trailer", "1");
      if (encoder_ != nullptr) encoder_->encodeTrailers(t);
    }
    finish();
  }

  http::StreamEncoder* encoder_{nullptr};
  const int behavior_;
  const bool client_;
  bool got_headers_{false};
  bool ended_{false};
  bool reset_{false};
  bool responded_{false};
  bool paused_{false};
  size_t bytes_{0};
};

class Owner : public http::ServerConnectionCallbacks {
public:
  explicit Owner(int behavior) : behavior_(behavior) {}
  http::StreamDecoder& newStream(http::StreamEncoder& encoder) override {
    streams_.push_back(std::make_unique<FuzzStream>(behavior_, false));
    streams_.back()->attach(encoder);
    return *streams_.back();
  }
  void resumeAll() {
    for (auto& s : streams_) s->resume();
  }

  int behavior_;
  std::vector<std::unique_ptr<FuzzStream>> streams_;
};

void FuzzStream::onRequestHeaders() {
  switch (behavior_) {
  case 1: respond(true); break;
  case 2:
    paused_ = true;
    encoder_->readDisable(true);
    break;
  case 3: {
    http::StreamEncoder* e = encoder_;
    finish();
    reset_ = true; // nothing may reach this stream any more, not even onResetStream
    e->resetStream(http::StreamResetReason::LocalReset);
    break;
  }
  default: break;
  }
}

void FuzzStream::onEnd() {
  if (client_) {
    finish();
    return;
  }
  respond(behavior_ == 0);
}

// Frames in what the codec wrote: well formed, and the GOAWAY error code if any.
uint32_t lastGoAwayError(const std::string& out, bool server) {
  size_t at = server ? 0 : 24; // a client starts with the preface
  if (!server && out.compare(0, 24, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") != 0) fail("no client preface");
  uint32_t code = 0;
  while (at + 9 <= out.size()) {
    size_t len = static_cast<uint8_t>(out[at]) << 16 | static_cast<uint8_t>(out[at + 1]) << 8 |
                 static_cast<uint8_t>(out[at + 2]);
    uint8_t type = out[at + 3];
    if (len > 16384) fail("we sent a frame over the default size");
    if (at + 9 + len > out.size()) fail("we sent a truncated frame");
    if (type == 7 && len >= 8) {
      auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(out[at + 9 + 4 + i])); };
      code = b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
    }
    at += 9 + len;
  }
  if (at != out.size()) fail("we sent a partial frame header");
  return code;
}

std::vector<size_t> cuts(uint8_t seed, size_t total) {
  std::vector<size_t> out;
  uint32_t x = seed * 2654435761u + 12345;
  size_t at = 0;
  while (at < total) {
    x = x * 1103515245u + 12345;
    size_t n = (x >> 16) % 4 == 0 ? 1 + (x >> 8) % 2048 : 1 + (x >> 20) % 64;
    n = std::min(n, total - at);
    out.push_back(n);
    at += n;
  }
  return out;
}

void run(uint8_t mode, uint8_t seed, const std::string& input) {
  const bool client = (mode & 0x80) != 0;
  Settings settings;
  settings.stream_error_on_invalid_http_messaging = (mode & 2) != 0;
  if (mode & 4) {
    settings.max_headers_count = 8;
    settings.max_header_list_size_kb = 1;
    settings.max_concurrent_streams = 4;
    settings.max_outbound_frames = 50;
    settings.max_outbound_control_frames = 20;
  }
  FakeDispatcher dispatcher;
  {
    FakeConnection conn(dispatcher);
    conn.limit_small_ = (mode & 8) != 0;
    Owner owner((mode >> 4) & 3);
    std::vector<std::unique_ptr<FuzzStream>> requests;
    std::unique_ptr<ConnectionBase> holder;
    http::CodecConnection* codec = nullptr;
    ConnectionBase* base = nullptr;
    if (client) {
      auto c = std::make_unique<ClientConnection>(conn, settings);
      for (int i = 0; i < 3; i++) {
        requests.push_back(std::make_unique<FuzzStream>(0, true));
        http::StreamEncoder& enc = c->newStream(*requests.back());
        requests.back()->attach(enc);
        http::HeaderMap h;
        h.add(":method", i == 1 ? "POST" : "GET");
        h.add(":path", "/");
        h.add("host", "fuzz");
        enc.encodeHeaders(h, i != 1);
        if (i == 1) {
          buffer::Buffer b;
          b.add("body");
          enc.encodeData(b, true);
        }
      }
      codec = c.get();
      base = c.get();
      holder = std::move(c);
    } else {
      auto s = std::make_unique<ServerConnection>(conn, owner, settings);
      codec = s.get();
      base = s.get();
      holder = std::move(s);
    }

    std::string bytes = input;
    if (mode & 1) {
      std::string settings_frame("\0\0\0\4\0\0\0\0\0", 9);
      bytes = (client ? settings_frame : "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + settings_frame) + input;
    }
    bool failed = false;
    size_t at = 0;
    for (size_t n : cuts(seed, bytes.size())) {
      buffer::Buffer in(&dispatcher.blockPool());
      in.add(bytes.substr(at, n));
      at += n;
      absl::Status st = codec->dispatch(in);
      if (!in.empty()) fail("dispatch left input behind");
      if (!st.ok()) {
        uint32_t sent = lastGoAwayError(conn.written_, !client);
        if (sent == 0 || sent != base->connectionError()) {
          fail(absl::StrCat("dispatch error without a matching GOAWAY: ", st.ToString()));
        }
        failed = true;
        break;
      }
      // Between reads: the socket drains, timers fire, paused readers resume now and then.
      if (conn.drain()) base->onBelowWriteBufferLowWatermark();
      if ((at / 997) % 2 == 1) owner.resumeAll();
      dispatcher.turn();
      if (conn.closed_now_) break;
    }
    lastGoAwayError(conn.written_, !client);
    if (!failed) {
      owner.resumeAll();
      dispatcher.turn();
    }
    base->onConnectionClosed();
    dispatcher.turn();
    holder.reset();
    owner.streams_.clear();
    requests.clear();
  }
  dispatcher.clear();
}

} // namespace
} // namespace http2
} // namespace tern

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  tern::http2::g_input.assign(reinterpret_cast<const char*>(data), size);
  tern::http2::run(data[0], data[1], std::string(reinterpret_cast<const char*>(data) + 2, size - 2));
  return 0;
}
